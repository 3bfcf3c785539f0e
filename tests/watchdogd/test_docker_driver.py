"""The docker recovery driver against the real Docker Engine, on its Unix socket.

Every container is started here from the offline `npanel:dev` image, under a
unique name, with no restart policy of Docker's own (so any new start is the
driver's), its port published on 127.0.0.1 only, and it is removed in teardown
whatever the outcome. The end-to-end test runs a full watchdogd (real PostgreSQL,
real flagd) whose target is such a container, kills it with SIGKILL and expects
the docker driver to bring it back within 10 s with a complete incident.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import docker
import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from npanel.watchdogd.drivers import LOG_LINES, DockerDriver, DriverError
from npanel.watchdogd.model import DriverSpec
from tests.support.flagd import Replica
from tests.watchdogd.support import (
    ACTOR,
    Watchdog,
    free_port,
    incidents,
    set_agent_watchdog,
    start_watchdog,
    until,
)

from npanel.watchdogd.v1 import watchdogd_pb2 as pb  # isort: skip

pytestmark = pytest.mark.integration

IMAGE = "npanel:dev"  # entrypoint `npanel`, user npanel: the command is overridden below
ECHO_PORT = 50051  # inside the container
ECHO_ENV = {"NPANEL_ECHO_LISTEN": f"0.0.0.0:{ECHO_PORT}", "NPANEL_ECHO_METRICS_LISTEN": "127.0.0.1:0",
            "NPANEL_LOG_FORMAT": "text", "NPANEL_SHUTDOWN_GRACE": "1"}
IGNORES_SIGTERM = ("import signal, time\n"
                   "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                   "print('ignoring SIGTERM', flush=True)\n"
                   "time.sleep(3600)\n")


def docker_socket() -> str:
    """The Engine's Unix socket: DOCKER_HOST when it names one, else the usual path."""
    host = os.environ.get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"


@dataclass
class Box:
    """A container under test, as the Engine reports it."""

    name: str
    port: int  # on 127.0.0.1 (0: none published)
    container: Any

    def state(self) -> dict[str, Any]:
        self.container.reload()
        state: dict[str, Any] = self.container.attrs["State"]
        return state

    def started_at(self) -> str:
        return str(self.state()["StartedAt"])

    def running(self) -> bool:
        return bool(self.state()["Running"])

    def logs(self) -> list[str]:
        raw: bytes = self.container.logs()
        return raw.decode(errors="replace").splitlines()


@pytest.fixture
def engine() -> Iterator[Any]:
    client = docker.DockerClient(base_url=f"unix://{docker_socket()}", timeout=60)
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def container(engine: Any, command: list[str], *, publish: bool = False) -> Iterator[Box]:
    name = f"npanel-test-dockerdriver-{uuid.uuid4().hex[:12]}"
    port = free_port() if publish else 0
    created = engine.containers.create(
        IMAGE, command, entrypoint=["python"], name=name, environment=ECHO_ENV,
        ports={f"{ECHO_PORT}/tcp": ("127.0.0.1", port)} if publish else None,
        restart_policy={"Name": "no"}, labels={"npanel.test": "watchdogd-docker-driver"})
    try:
        created.start()
        yield Box(name, port, created)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            created.remove(force=True)


def echo_container(engine: Any) -> contextlib.AbstractContextManager[Box]:
    return container(engine, ["-m", "npanel.testing.echo"], publish=True)


async def serving(port: int) -> bool:
    """The container's gRPC health Check answers SERVING through the published port."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.aio.AioRpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def driver(name: str, stop_timeout_s: float = 3.0, socket: str = "") -> DockerDriver:
    return DockerDriver(DriverSpec(kind="docker", container=name, stop_timeout_s=stop_timeout_s),
                        socket or docker_socket())


# --- the driver alone ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_restart_gives_the_container_a_new_start_and_it_serves_again(engine: Any) -> None:
    with echo_container(engine) as box:
        await until(lambda: serving(box.port), 30, every_s=0.2)
        before = box.started_at()
        started = time.monotonic()
        await driver(box.name, stop_timeout_s=10).restart()
        took = time.monotonic() - started
        assert box.running()
        assert box.started_at() != before
        # The echo service stops on SIGTERM by itself: the 10 s grace is not waited out.
        assert took < 10, f"a graceful stop took {took:.1f} s"
        await until(lambda: serving(box.port), 10, every_s=0.2)
        logs = box.logs()
        assert any("echo shutting down" in line for line in logs)
        assert sum("echo listening on" in line for line in logs) == 2


@pytest.mark.asyncio
async def test_a_container_ignoring_sigterm_is_killed_after_the_bounded_stop_timeout(engine: Any) -> None:
    with container(engine, ["-c", IGNORES_SIGTERM]) as box:
        await until(lambda: asyncio.to_thread(lambda: "ignoring SIGTERM" in box.logs()), 30, every_s=0.2)
        before = box.started_at()
        started = time.monotonic()
        await driver(box.name, stop_timeout_s=2).restart()
        took = time.monotonic() - started
        # SIGTERM, 2 s of grace, SIGKILL, start: bounded by the grace plus the Engine's own work.
        assert 1.9 <= took < 8, f"restart took {took:.1f} s with a 2 s stop timeout"
        assert box.running()
        assert box.started_at() != before
        await until(lambda: asyncio.to_thread(lambda: box.logs().count("ignoring SIGTERM") == 2), 10)


@pytest.mark.asyncio
async def test_last_logs_returns_the_containers_own_last_lines(engine: Any) -> None:
    # The Engine timestamps each stream as it reads it: the pause orders stderr after stdout.
    program = ("import sys, time\n"
               "for i in range(150): print(f'line {i}', flush=True)\n"
               "time.sleep(0.5)\n"
               "print('to stderr', file=sys.stderr, flush=True)\n"
               "time.sleep(3600)\n")
    expected = [f"line {i}" for i in range(51, 150)] + ["to stderr"]
    with container(engine, ["-c", program]) as box:
        dd = driver(box.name)

        async def complete() -> bool:
            return await dd.last_logs() == expected

        await until(complete, 30, every_s=0.2)
        assert len(await dd.last_logs()) == LOG_LINES


@pytest.mark.asyncio
async def test_the_echo_services_start_up_lines_are_its_last_logs(engine: Any) -> None:
    with echo_container(engine) as box:
        await until(lambda: serving(box.port), 30, every_s=0.2)
        lines = await driver(box.name).last_logs()
        assert any("echo listening on 0.0.0.0:50051" in line for line in lines)
        assert any("echo ready: health SERVING" in line for line in lines)


@pytest.mark.asyncio
async def test_a_missing_container_is_a_driver_error_naming_it() -> None:
    name = f"npanel-test-dockerdriver-absent-{uuid.uuid4().hex[:12]}"
    dd = driver(name)
    with pytest.raises(DriverError, match=re.escape(repr(name))) as raised:
        await dd.restart()
    assert "No such container" in str(raised.value)
    (line,) = await dd.last_logs()
    assert line.startswith("[watchdogd] ") and name in line and "No such container" in line


@pytest.fixture
def collect_leaked_sockets() -> Iterator[None]:
    """docker-py leaves the Unix socket whose connect() failed to the garbage collector:
    collect it at this test's teardown, quietly, rather than warn in whichever test is next."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.mark.asyncio
@pytest.mark.usefixtures("collect_leaked_sockets")
async def test_an_unusable_socket_is_a_driver_error_not_a_crash(tmp_path: Any) -> None:
    socket = str(tmp_path / "no-engine.sock")
    dd = driver("npanel-anything", socket=socket)
    with pytest.raises(DriverError, match="npanel-anything") as raised:
        await dd.restart()
    assert socket in str(raised.value)
    (line,) = await dd.last_logs()
    assert line.startswith("[watchdogd] ") and "npanel-anything" in line and socket in line


# --- a full watchdogd --------------------------------------------------------------------------


@pytest_asyncio.fixture
async def watchdog(database_url: str, flagd: Replica) -> AsyncIterator[Watchdog]:
    await set_agent_watchdog(flagd)
    async with start_watchdog(database_url, flagd.address,
                              extra={"NPANEL_DOCKER_SOCKET": docker_socket()}) as wd:
        yield wd


def docker_target(box: Box) -> pb.Target:
    return pb.Target(
        name="echo-docker",
        check=pb.Check(kind="grpc", address=f"127.0.0.1:{box.port}", interval_seconds=1.0,
                       timeout_seconds=0.5, failures=2),
        driver=pb.Driver(kind="docker", container=box.name, stop_timeout_seconds=1.0),
        policy=pb.Policy(max_restarts_per_hour=5, backoff_initial_seconds=0.2, start_timeout_seconds=10))


@pytest.mark.asyncio
async def test_a_killed_container_is_restarted_by_watchdogd_within_10_s_with_a_complete_incident(
        engine: Any, watchdog: Watchdog) -> None:
    with echo_container(engine) as box:
        target = docker_target(box)
        await watchdog.stub.PutTarget(pb.PutTargetRequest(target=target, **ACTOR), timeout=5)

        async def healthy() -> bool:
            return (await watchdog.target(target.name)).state == "HEALTHY"

        await until(healthy, 30)
        # Blocking Engine calls go to a thread: watchdogd runs on this event loop.
        before = await asyncio.to_thread(box.started_at)
        await asyncio.to_thread(box.container.kill)  # SIGKILL to PID 1: the container exits
        killed = time.monotonic()
        await until(lambda: asyncio.to_thread(lambda: not box.running()), 5)

        async def back() -> bool:
            restarted = await asyncio.to_thread(lambda: box.running() and box.started_at() != before)
            return restarted and await healthy()

        await until(back, 10, every_s=0.1)
        assert time.monotonic() - killed < 10
        assert await serving(box.port)
        # Docker's own restart policy is "no": the new start was the driver's.
        assert box.container.attrs["RestartCount"] == 0
        assert box.container.attrs["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")

        async def resolved() -> bool:
            found = await incidents(watchdog, target.name)
            return bool(found) and found[0].resolved

        await until(resolved, 5)
        (incident,) = await incidents(watchdog, target.name)
        assert incident.failure_type == "crash", incident
        assert f"127.0.0.1:{box.port}" in incident.evidence, incident
        # Read from the Engine while the container lay dead: its own start-up lines.
        assert any("echo listening on" in line for line in incident.last_log_lines), incident
        assert not any(line.startswith("[watchdogd]") for line in incident.last_log_lines)
        assert incident.restart_count >= 1
        assert incident.resolved and not incident.gave_up
        assert 0 < incident.recovery_seconds < 10
        assert incident.recovered_at.ToDatetime() >= incident.detected_at.ToDatetime()
        assert watchdog.metric("npanel_agent_recovery_total", target=target.name, result="restarted") >= 1
        assert watchdog.metric("npanel_agent_recovery_total", target=target.name, result="recovered") == 1
        assert watchdog.metric("npanel_agent_health_status", target=target.name) == 1
