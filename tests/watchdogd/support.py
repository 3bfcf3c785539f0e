"""A running watchdogd (in this process, on the shared bootstrap) and supervised echo services."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from prometheus_client import CollectorRegistry

from npanel.common.server import RunningServer, running
from npanel.common.settings import ServiceSettings, WatchdogdSettings
from npanel.flagd.v1 import flagd_pb2
from npanel.watchdogd.main import WatchdogdService
from npanel.watchdogd.v1 import watchdogd_pb2 as pb
from npanel.watchdogd.v1 import watchdogd_pb2_grpc
from tests.support.flagd import Replica

if TYPE_CHECKING:
    from npanel.watchdogd.v1.watchdogd_pb2_grpc import WatchdogServiceAsyncStub

ACTOR = {"actor": "tester", "reason": "test"}


async def set_agent_watchdog(flagd: Replica, enabled: bool = True) -> None:
    """The agent_watchdog flag: on, watchdogd restarts; off, it only checks and records."""
    await flagd.stub.SetFlag(flagd_pb2.SetFlagRequest(
        name="agent_watchdog", enabled=enabled, actor="tester", reason="test"), timeout=5)


@dataclass
class Watchdog:
    service: WatchdogdService
    handle: RunningServer
    registry: CollectorRegistry
    stub: WatchdogServiceAsyncStub

    async def target(self, name: str) -> pb.Target:
        return await self.stub.GetTarget(pb.GetTargetRequest(name=name), timeout=5)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@asynccontextmanager
async def start_watchdog(database_url: str, flagd_address: str,
                         extra: dict[str, str] | None = None) -> AsyncIterator[Watchdog]:
    settings = ServiceSettings.read("watchdogd", {
        "NPANEL_DATABASE_URL": database_url,
        "NPANEL_WATCHDOGD_LISTEN": "127.0.0.1:0",
        "NPANEL_WATCHDOGD_METRICS_LISTEN": "127.0.0.1:0",
        "NPANEL_SHUTDOWN_GRACE": "1",
        "NPANEL_DATABASE_CONNECT_TIMEOUT": "5",
    })
    own = WatchdogdSettings.from_environ({
        "NPANEL_FLAGD_ADDRESS": flagd_address, "NPANEL_WATCHDOGD_DEFAULT_TARGETS": "none", **(extra or {})})
    service = WatchdogdService(settings, own)
    registry = CollectorRegistry()
    async with running(service, settings, registry) as handle, \
            grpc.aio.insecure_channel(handle.address) as channel:
        yield Watchdog(service, handle, registry, watchdogd_pb2_grpc.WatchdogServiceStub(channel))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def echo_target(name: str, port: int, *, interval: float = 1.0, timeout: float = 0.5,
                max_restarts: int = 5) -> pb.Target:
    """The test-only echo gRPC service as a process target, with short test intervals."""
    return pb.Target(
        name=name,
        check=pb.Check(kind="grpc", address=f"127.0.0.1:{port}", interval_seconds=interval,
                       timeout_seconds=timeout, failures=2),
        driver=pb.Driver(kind="process", command=[sys.executable, "-m", "npanel.testing.echo"],
                         env={"NPANEL_ECHO_LISTEN": f"127.0.0.1:{port}",
                              "NPANEL_ECHO_METRICS_LISTEN": "127.0.0.1:0",
                              "NPANEL_SHUTDOWN_GRACE": "1", "NPANEL_LOG_FORMAT": "text"},
                         stop_timeout_seconds=1.0),
        policy=pb.Policy(max_restarts_per_hour=max_restarts, backoff_initial_seconds=0.2,
                         start_timeout_seconds=10))


async def until(predicate: Callable[[], Awaitable[bool]], limit_s: float, every_s: float = 0.05) -> float:
    """Seconds until `predicate()` held; raises AssertionError after `limit_s`."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(every_s)
    raise AssertionError(f"condition not met within {limit_s} s")


async def in_state(wd: Watchdog, name: str, state: str, *, not_pid: int = -1) -> bool:
    target = await wd.target(name)
    return target.state == state and target.pid != not_pid


async def incidents(wd: Watchdog, name: str) -> list[pb.Incident]:
    response = await wd.stub.ListIncidents(pb.ListIncidentsRequest(target=name), timeout=5)
    return list(response.incidents)
