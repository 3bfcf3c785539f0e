"""npanel.flagd.v1.FlagService: proto <-> model, nothing else.

Reads and evaluations answer from the replica's cache; writes go to the store
and are applied to the cache before they are acknowledged, so a client reads
its own writes from the replica it wrote through. Domain errors are raised and
mapped to status codes by the shared interceptor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import grpc

from npanel.common.errors import InvalidArgument, Unavailable
from npanel.common.logs import actor_var

from .cache import FlagCache, Lagged
from .convert import evaluation_pb, flag_pb, toggle_pb
from .evaluator import Evaluation, evaluate
from .metrics import FlagMetrics
from .model import Flag, FlagChange, ToggleQuery, check_name, flag_not_found
from .store import FlagStore
from .v1 import flagd_pb2 as pb
from .v1 import flagd_pb2_grpc

Ctx = grpc.aio.ServicerContext[Any, Any]


def toggle_query(request: pb.ListTogglesRequest) -> ToggleQuery:
    before_id = None
    if request.page_token:
        if not request.page_token.isdigit():
            raise InvalidArgument("page_token", request.page_token, "pass next_page_token unchanged")
        before_id = int(request.page_token)
    return ToggleQuery(
        flag=request.flag or None,
        since=request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None,
        until=request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else None,
        page_size=request.page_size or 50,
        before_id=before_id)


class FlagServicer(flagd_pb2_grpc.FlagServiceServicer):
    def __init__(self, store: FlagStore, cache: FlagCache, metrics: FlagMetrics) -> None:
        self._store = store
        self._cache = cache
        self._metrics = metrics

    def _get(self, name: str) -> Flag:
        check_name(name)
        flag = self._cache.get(name)
        if flag is None:
            raise flag_not_found(name)
        return flag

    async def ListFlags(self, request: pb.ListFlagsRequest, context: Ctx) -> pb.ListFlagsResponse:
        return pb.ListFlagsResponse(flags=[flag_pb(f) for f in self._cache.all()],
                                    revision=self._cache.revision)

    async def GetFlag(self, request: pb.GetFlagRequest, context: Ctx) -> pb.Flag:
        return flag_pb(self._get(request.name))

    async def SetFlag(self, request: pb.SetFlagRequest, context: Ctx) -> pb.Flag:
        change = FlagChange(
            name=request.name, actor=actor_var.get() or request.actor, reason=request.reason,
            enabled=request.enabled if request.HasField("enabled") else None,
            rollout_percent=request.rollout_percent if request.HasField("rollout_percent") else None)
        flag, action = await self._store.set_flag(change)
        self._cache.apply([flag])
        if action:
            self._metrics.toggled(flag.name, action)
        return flag_pb(flag)

    async def DisableAll(self, request: pb.DisableAllRequest, context: Ctx) -> pb.DisableAllResponse:
        flags = await self._store.disable_all(actor_var.get() or request.actor, request.reason)
        self._cache.apply(flags)
        for flag in flags:
            self._metrics.toggled(flag.name, "rollback")
        return pb.DisableAllResponse(disabled=[f.name for f in flags], revision=self._cache.revision)

    def _evaluate(self, flag: Flag, context: pb.EvaluationContext) -> Evaluation:
        evaluation = evaluate(flag, context.account_id or None)
        self._metrics.record(evaluation)
        return evaluation

    async def Evaluate(self, request: pb.EvaluateRequest, context: Ctx) -> pb.Evaluation:
        return evaluation_pb(self._evaluate(self._get(request.flag), request.context))

    async def EvaluateAll(self, request: pb.EvaluateAllRequest, context: Ctx) -> pb.EvaluateAllResponse:
        return pb.EvaluateAllResponse(
            evaluations=[evaluation_pb(self._evaluate(f, request.context)) for f in self._cache.all()],
            revision=self._cache.revision)

    async def WatchFlags(self, request: pb.WatchFlagsRequest, context: Ctx) -> AsyncIterator[pb.FlagEvent]:
        since = request.since_revision
        if since < 0:
            raise InvalidArgument("since_revision", since, "must be 0 (snapshot) or a revision seen before")
        with self._cache.subscribe() as subscription:
            # Subscribed before reading, so nothing falls between the two.
            if since == 0 or since > self._cache.revision:
                first = pb.FlagEvent(kind=pb.FlagEvent.SNAPSHOT, flags=map(flag_pb, self._cache.all()))
            else:
                first = pb.FlagEvent(kind=pb.FlagEvent.CATCH_UP,
                                     flags=map(flag_pb, self._cache.changed_since(since)))
            first.revision = last = self._cache.revision
            yield first
            while True:
                try:
                    flags, revision = await subscription.next()
                except Lagged as exc:
                    raise Unavailable(f"{exc} with since_revision={last}") from exc
                fresh = [flag_pb(f) for f in flags if f.revision > last]
                if fresh:
                    last = revision
                    yield pb.FlagEvent(kind=pb.FlagEvent.CHANGED, flags=fresh, revision=revision)

    async def ListToggles(self, request: pb.ListTogglesRequest, context: Ctx) -> pb.ListTogglesResponse:
        query = toggle_query(request)
        toggles = await self._store.list_toggles(query)
        token = str(toggles[-1].id) if len(toggles) == query.page_size else ""
        return pb.ListTogglesResponse(toggles=map(toggle_pb, toggles), next_page_token=token)

