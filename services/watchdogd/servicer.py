"""npanel.watchdogd.v1.WatchdogService: proto <-> model, nothing else.

Changes are written (with their audit row) first, then applied to the running
supervisor, so an acknowledged change is both stored and in effect. Domain
errors are raised and mapped to status codes by the shared interceptor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from npanel.common.errors import InvalidArgument, Unavailable
from npanel.common.logs import actor_var

from .convert import incident_pb, target_from_pb, target_pb
from .model import IncidentQuery, check_name
from .store import WatchdogStore
from .supervisor import Supervisor
from .v1 import watchdogd_pb2 as pb
from .v1 import watchdogd_pb2_grpc

Ctx = grpc.aio.ServicerContext[Any, Any]


def check_target_filter(target: str) -> None:
    """A request's `target` filter, refused under that field's name (check_name says "name")."""
    if not target:
        return
    try:
        check_name(target)
    except InvalidArgument:
        raise InvalidArgument("target", target, "a target name (lowercase letters, digits, _ and -, "
                              "max 64), or empty for every target") from None


def incident_query(request: pb.ListIncidentsRequest) -> IncidentQuery:
    check_target_filter(request.target)
    before_id = None
    if request.page_token:
        if not request.page_token.isdigit():
            raise InvalidArgument("page_token", request.page_token, "pass next_page_token unchanged")
        before_id = int(request.page_token)
    return IncidentQuery(target=request.target or None, page_size=request.page_size or 50,
                         before_id=before_id, unresolved_only=request.unresolved_only)


class WatchdogServicer(watchdogd_pb2_grpc.WatchdogServiceServicer):
    def __init__(self, store: WatchdogStore, supervisor: Supervisor) -> None:
        self._store = store
        self._supervisor = supervisor

    def _target(self, name: str) -> pb.Target:
        check_name(name)
        return target_pb(self._supervisor.status(name))

    async def ListTargets(self, request: pb.ListTargetsRequest, context: Ctx) -> pb.ListTargetsResponse:
        return pb.ListTargetsResponse(targets=[self._target(n) for n in self._supervisor.names()])

    async def GetTarget(self, request: pb.GetTargetRequest, context: Ctx) -> pb.Target:
        return self._target(request.name)

    async def PutTarget(self, request: pb.PutTargetRequest, context: Ctx) -> pb.Target:
        target = target_from_pb(request.target)

        async def put() -> None:
            stored = await self._store.put_target(target, _actor(request), request.reason)
            if stored is not None:
                await self._supervisor.apply(stored, fresh=True)
            elif target.name not in self._supervisor.names():  # stored, but its runner was lost
                await self._supervisor.apply(await self._store.get_target(target.name))

        await self._supervisor.change(put)
        return self._target(target.name)

    async def RemoveTarget(self, request: pb.RemoveTargetRequest, context: Ctx) -> pb.RemoveTargetResponse:
        check_name(request.name)

        async def remove() -> None:
            await self._store.remove_target(request.name, _actor(request), request.reason)
            await self._supervisor.remove(request.name)

        await self._supervisor.change(remove)
        return pb.RemoveTargetResponse()

    async def _pause(self, request: pb.TargetActionRequest, paused: bool) -> pb.Target:
        check_name(request.name)

        async def pause() -> None:
            target = await self._store.set_paused(request.name, paused, _actor(request), request.reason)
            self._supervisor.set_target(target)

        await self._supervisor.change(pause)
        return self._target(request.name)

    async def PauseTarget(self, request: pb.TargetActionRequest, context: Ctx) -> pb.Target:
        return await self._pause(request, True)

    async def ResumeTarget(self, request: pb.TargetActionRequest, context: Ctx) -> pb.Target:
        return await self._pause(request, False)

    async def ResetTarget(self, request: pb.TargetActionRequest, context: Ctx) -> pb.Target:
        async def reset() -> None:
            before = self._target(request.name).state
            await self._store.reset_target(request.name, _actor(request), request.reason, before)
            self._supervisor.reset(request.name)

        await self._supervisor.change(reset)
        return self._target(request.name)

    async def ListIncidents(self, request: pb.ListIncidentsRequest, context: Ctx) -> pb.ListIncidentsResponse:
        query = incident_query(request)
        incidents = await self._store.list_incidents(query)
        token = str(incidents[-1].id) if len(incidents) == query.page_size else ""
        return pb.ListIncidentsResponse(incidents=map(incident_pb, incidents), next_page_token=token)

    async def WatchIncidents(self, request: pb.WatchIncidentsRequest, context: Ctx
                             ) -> AsyncIterator[pb.Incident]:
        check_target_filter(request.target)
        with self._supervisor.broadcast.subscribe() as queue:
            while True:
                incident = await queue.get()
                if incident is None:
                    raise Unavailable("WatchIncidents fell behind and was dropped; "
                                      "reconnect and use ListIncidents for what was missed")
                if not request.target or incident.target == request.target:
                    yield incident_pb(incident)


def _actor(request: Any) -> str:
    """The gateway's authenticated caller when there is one (its token's name)."""
    return actor_var.get() or str(request.actor)
