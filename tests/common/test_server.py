"""The shared server bootstrap, exercised through the test-only echo service.

Real sockets and, for shutdown, a real process receiving a real SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import CollectorRegistry

from npanel.common.channels import keepalive
from npanel.common.server import RunningServer, running
from npanel.common.settings import ServiceSettings
from npanel.testing.echo import EchoService
from npanel.testing.v1 import testing_pb2, testing_pb2_grpc

pytestmark = pytest.mark.integration
ECHO = "npanel.testing.v1.EchoService"
Health = health_pb2.HealthCheckResponse


def _settings(**env: str) -> ServiceSettings:
    return ServiceSettings.read("echo", {
        "NPANEL_ECHO_LISTEN": "127.0.0.1:0",
        "NPANEL_ECHO_METRICS_LISTEN": "127.0.0.1:0",
        **env,
    })


@pytest_asyncio.fixture
async def echo() -> AsyncIterator[tuple[RunningServer, CollectorRegistry]]:
    registry = CollectorRegistry()
    async with running(EchoService(), _settings(), registry) as handle:
        yield handle, registry


async def _health(address: str, service: str = "") -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        return int(response.status)


@pytest.mark.asyncio
async def test_health_is_not_serving_until_start_up_finishes() -> None:
    service = EchoService(start_delay_s=1.0)
    port = _free_port()
    ctx = running(service, _settings(NPANEL_ECHO_LISTEN=f"127.0.0.1:{port}"))
    entering = asyncio.create_task(ctx.__aenter__())
    await asyncio.sleep(0.3)
    # The port is bound before start-up completes, and says so honestly.
    assert await _health(f"127.0.0.1:{port}") == Health.NOT_SERVING
    handle = await entering
    try:
        assert await _health(handle.address) == Health.SERVING
        assert await _health(handle.address, ECHO) == Health.SERVING
    finally:
        await ctx.__aexit__(None, None, None)
    assert service.stopped


@pytest.mark.asyncio
async def test_reflection_lists_the_services(echo: tuple[RunningServer, CollectorRegistry]) -> None:
    handle, _ = echo
    async with grpc.aio.insecure_channel(handle.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        names = set()
        async for response in stub.ServerReflectionInfo(iter([request]), timeout=2):
            names |= {s.name for s in response.list_services_response.service}
    assert {ECHO, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


@pytest.mark.asyncio
async def test_request_id_is_propagated_or_generated(
    echo: tuple[RunningServer, CollectorRegistry],
) -> None:
    handle, _ = echo
    async with grpc.aio.insecure_channel(handle.address) as channel:
        stub = testing_pb2_grpc.EchoServiceStub(channel)
        given = await stub.Echo(testing_pb2.EchoRequest(message="hi"),
                                metadata=(("x-request-id", "req-123"),), timeout=2)
        generated = await stub.Echo(testing_pb2.EchoRequest(message="hi"), timeout=2)
    assert given.request_id == "req-123"
    assert len(generated.request_id) == 32 and generated.request_id != "req-123"


@pytest.mark.asyncio
async def test_metrics_count_calls_by_status_code(
    echo: tuple[RunningServer, CollectorRegistry],
) -> None:
    handle, registry = echo
    async with grpc.aio.insecure_channel(handle.address) as channel:
        stub = testing_pb2_grpc.EchoServiceStub(channel)
        for _ in range(3):
            await stub.Echo(testing_pb2.EchoRequest(message="ok"), timeout=2)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Echo(testing_pb2.EchoRequest(fail_with_code=5), timeout=2)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    labels = {"grpc_type": "unary_unary", "grpc_service": ECHO, "grpc_method": "Echo"}
    assert registry.get_sample_value("grpc_server_started_total", labels) == 4
    assert registry.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": "OK"}) == 3
    assert registry.get_sample_value(
        "grpc_server_handled_total", {**labels, "grpc_code": "NOT_FOUND"}) == 1
    assert registry.get_sample_value("grpc_server_handling_seconds_count", labels) == 4
    # The same numbers are served over HTTP on the service's own /metrics.
    url = f"http://127.0.0.1:{handle.metrics_port}/metrics"
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=2).read().decode())
    assert 'grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="Echo"' in body


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start_echo_process(grace: str) -> tuple[asyncio.subprocess.Process, str]:
    port = _free_port()
    env = {**os.environ, "NPANEL_ECHO_LISTEN": f"127.0.0.1:{port}",
           "NPANEL_ECHO_METRICS_LISTEN": "127.0.0.1:0", "NPANEL_SHUTDOWN_GRACE": grace}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "npanel.testing.echo", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if await _health(address) == Health.SERVING:
                return proc, address
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError(f"echo process never became SERVING: {await proc.communicate()}")


@pytest.mark.asyncio
async def test_sigterm_turns_health_off_first_and_lets_calls_finish() -> None:
    proc, address = await _start_echo_process(grace="5")
    events: list[tuple[str, float]] = []
    async with grpc.aio.insecure_channel(address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())

        async def watch_health() -> None:
            async for update in watch:
                events.append((Health.ServingStatus.Name(update.status), time.monotonic()))

        watcher = asyncio.create_task(watch_health())
        stub = testing_pb2_grpc.EchoServiceStub(channel)
        slow = asyncio.ensure_future(
            stub.Echo(testing_pb2.EchoRequest(message="in flight", delay_ms=1500), timeout=10))
        await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        response = await slow
        finished = time.monotonic()
        await asyncio.wait_for(proc.wait(), 10)
        watcher.cancel()
    assert response.message == "in flight"
    assert proc.returncode == 0
    statuses = [name for name, _ in events]
    assert statuses[:2] == ["SERVING", "NOT_SERVING"]
    assert events[1][1] < finished  # NOT_SERVING was announced before the call ended


@pytest.mark.asyncio
async def test_open_streams_do_not_hold_shutdown_for_the_whole_grace() -> None:
    proc, address = await _start_echo_process(grace="20")
    async with grpc.aio.insecure_channel(address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == Health.SERVING
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        took = time.monotonic() - started
    assert proc.returncode == 0
    assert took < 5, f"shutdown waited {took:.1f} s for an idle health Watch stream"


@pytest.mark.asyncio
async def test_new_calls_are_refused_after_shutdown(
    echo: tuple[RunningServer, CollectorRegistry],
) -> None:
    handle, _ = echo
    handle.request_stop()
    await handle.health.enter_graceful_shutdown()
    await handle.server.stop(0)
    async with grpc.aio.insecure_channel(handle.address) as channel:
        stub = testing_pb2_grpc.EchoServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Echo(testing_pb2.EchoRequest(message="late"), timeout=1)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.asyncio
async def test_keepalive_pings_every_second_are_allowed_on_an_idle_stream(
        echo: tuple[RunningServer, CollectorRegistry]) -> None:
    """watchdogd's probes ping every second; gRPC's default server policy would
    answer the third ping on an idle stream with GOAWAY "too_many_pings"."""
    handle, _ = echo
    async with grpc.aio.insecure_channel(handle.address, options=keepalive(1.0)) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        first = await stream.read()
        assert first.status == Health.SERVING
        # Five pings with no data on the stream: it must still be open.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5.5):
                await stream.read()
        assert channel.get_state() == grpc.ChannelConnectivity.READY
        stream.cancel()
