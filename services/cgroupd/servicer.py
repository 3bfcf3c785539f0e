"""npanel.cgroupd.v1.CgroupService: proto <-> model, nothing else.

Domain errors are raised and mapped to status codes by the shared interceptor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from npanel.common.errors import InvalidArgument, Unavailable
from npanel.common.logs import actor_var

from .accounts import Accounts
from .bus import Lagged
from .convert import account_pb, event_pb, patch_from_pb, stats_pb
from .model import Account, check_account_id
from .v1 import cgroupd_pb2 as pb
from .v1 import cgroupd_pb2_grpc

Ctx = grpc.aio.ServicerContext[Any, Any]


class CgroupServicer(cgroupd_pb2_grpc.CgroupServiceServicer):
    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    def _pb(self, account: Account) -> pb.Account:
        path = str(self._accounts.groups.root / account.account_id)
        return account_pb(account, path, self._accounts.simulated)

    async def CreateAccount(self, request: pb.CreateAccountRequest, context: Ctx) -> pb.Account:
        check_account_id(request.account_id)
        account = await self._accounts.create(request.account_id, request.package,
                                              patch_from_pb(request.limits), _actor(request))
        return self._pb(account)

    async def UpdateLimits(self, request: pb.UpdateLimitsRequest, context: Ctx) -> pb.Account:
        check_account_id(request.account_id)
        account = await self._accounts.update(request.account_id, patch_from_pb(request.limits),
                                              _actor(request))
        return self._pb(account)

    async def DeleteAccount(self, request: pb.DeleteAccountRequest, context: Ctx) -> pb.DeleteAccountResponse:
        killed = await self._accounts.delete(request.account_id, _actor(request))
        return pb.DeleteAccountResponse(account_id=request.account_id, killed=killed,
                                        simulated=self._accounts.simulated)

    async def MoveProcesses(self, request: pb.MoveProcessesRequest, context: Ctx) -> pb.MoveProcessesResponse:
        moved, vanished = await self._accounts.move(request.account_id, list(request.pids),
                                                    request.include_descendants, _actor(request))
        return pb.MoveProcessesResponse(moved=moved, vanished=vanished, simulated=self._accounts.simulated)

    async def Freeze(self, request: pb.FreezeRequest, context: Ctx) -> pb.Account:
        return self._pb(await self._accounts.set_frozen(request.account_id, True, _actor(request)))

    async def Thaw(self, request: pb.ThawRequest, context: Ctx) -> pb.Account:
        return self._pb(await self._accounts.set_frozen(request.account_id, False, _actor(request)))

    async def GetStats(self, request: pb.GetStatsRequest, context: Ctx) -> pb.GetStatsResponse:
        found = await self._accounts.stats(list(request.account_ids))
        return pb.GetStatsResponse(stats=[stats_pb(s) for s in found], simulated=self._accounts.simulated)

    async def ListAccounts(self, request: pb.ListAccountsRequest, context: Ctx) -> pb.ListAccountsResponse:
        accounts = await self._accounts.store.list_accounts()
        known = {a.account_id for a in accounts}
        unknown = [g for g in self._accounts.groups.groups() if g not in known]
        return pb.ListAccountsResponse(accounts=[self._pb(a) for a in accounts],
                                       simulated=self._accounts.simulated, unknown_groups=unknown)

    async def WatchEvents(self, request: pb.WatchEventsRequest, context: Ctx) -> AsyncIterator[pb.Event]:
        if request.account_id:
            check_account_id(request.account_id)
        if request.since_id < 0:
            raise InvalidArgument("since_id", request.since_id, "must be 0 (live only) or an event id seen")
        wanted = request.account_id or None
        simulated = self._accounts.simulated
        with self._accounts.bus.subscribe() as subscription:
            last = request.since_id
            if last:
                # Subscribed first, so nothing falls between the replay and the live stream.
                for event in await self._accounts.store.events_after(last, wanted):
                    last = event.id
                    yield event_pb(event, simulated)
            while True:
                try:
                    event = await subscription.next()
                except Lagged as exc:
                    raise Unavailable(f"{exc} (last id {last})") from exc
                if event.id > last and (wanted is None or event.account_id == wanted):
                    last = event.id
                    yield event_pb(event, simulated)


def _actor(request: Any) -> str:
    """The gateway's authenticated caller when there is one (its token's name)."""
    return actor_var.get() or str(request.actor)
