"""The flag client every service and the gateway use: answers from memory.

It follows flagd's WatchFlags stream and keeps every flag in a dict, so
`is_enabled` costs a dict lookup and one evaluation (the same `evaluate` flagd
runs, so answers agree). Behaviour when the stream is down (flagd stopped,
network cut): the last known values keep being served, `stale` turns True and
the gauge npanel_flag_client_stale reads 1, and the client reconnects with
short backoff, passing its last revision so it receives what it missed. A
flag it has never seen is disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge

from npanel.common.channels import fast_reconnect, keepalive
from npanel.flagd.convert import flag_from_pb
from npanel.flagd.evaluator import evaluate
from npanel.flagd.model import Flag
from npanel.flagd.v1 import flagd_pb2, flagd_pb2_grpc

log = logging.getLogger(__name__)

# Reconnect quickly: a toggle must reach every service within ~100 ms of flagd
# being reachable again, not after gRPC's default 1 s..120 s backoff.
CHANNEL_OPTIONS = (*fast_reconnect(2000), *keepalive(10.0, 5.0))


class FlagClient:
    def __init__(self, target: str, registry: CollectorRegistry | None = None) -> None:
        self._target = target
        self._flags: dict[str, Flag] = {}
        self.revision = 0
        self.stale = True
        self._ready = asyncio.Event()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        registry = registry if registry is not None else CollectorRegistry()
        self._stale_gauge = Gauge(
            "npanel_flag_client_stale",
            "1 while the flag client serves last known values because flagd's stream is down.",
            registry=registry)
        self._stale_gauge.set(1)
        self._reconnects = Counter(
            "npanel_flag_client_reconnects_total", "Times the flag stream was re-established.",
            registry=registry)

    def is_enabled(self, flag: str, account_id: str | None = None) -> bool:
        known = self._flags.get(flag)
        return known is not None and evaluate(known, account_id).value

    def get(self, flag: str) -> Flag | None:
        return self._flags.get(flag)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flag-client")

    async def wait_ready(self, limit_s: float) -> bool:
        """True once a first snapshot arrived within `limit_s` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), limit_s)
        return self._ready.is_set()

    async def wait_for_revision(self, revision: int, limit_s: float) -> bool:
        """True once the client has applied `revision` (tests, benchmarks)."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.revision >= revision), limit_s)
        return self.revision >= revision

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                async with grpc.aio.insecure_channel(self._target, options=CHANNEL_OPTIONS) as channel:
                    stub = flagd_pb2_grpc.FlagServiceStub(channel)
                    request = flagd_pb2.WatchFlagsRequest(since_revision=self.revision)
                    async for event in stub.WatchFlags(request):
                        await self._apply(event)
                        delay = 0.1
            except grpc.aio.AioRpcError as exc:
                if not self.stale:
                    log.warning("flag stream from %s lost (%s); serving last known flags",
                                self._target, exc.code().name)
            self._set_stale(True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _apply(self, event: flagd_pb2.FlagEvent) -> None:
        flags = {f.name: flag_from_pb(f) for f in event.flags}
        if event.kind == flagd_pb2.FlagEvent.SNAPSHOT:
            self._flags = flags
        else:
            self._flags = {**self._flags, **flags}
        if self.stale and self._ready.is_set():
            self._reconnects.inc()
        self.revision = event.revision
        self._set_stale(False)
        self._ready.set()
        async with self._changed:
            self._changed.notify_all()

    def _set_stale(self, stale: bool) -> None:
        self.stale = stale
        self._stale_gauge.set(1 if stale else 0)
