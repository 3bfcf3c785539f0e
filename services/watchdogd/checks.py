"""Health checks: gRPC health, TCP connect, HTTP GET, Unix-socket request/response, exec.

Each check runs with its own deadline and says what kind of failure it saw:
`crash` (nothing listens: refused, no socket), `hang` (the deadline passed: a
process that accepts connections but does not answer) or `unhealthy` (it
answered, wrongly). The gRPC check also follows the `Watch` stream, which
reports NOT_SERVING or a dropped connection at once, between periodic checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from npanel.common.channels import fast_reconnect, keepalive

from .model import CheckSpec

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
# Reconnect within ~100 ms once the target is back, so recovery is measured
# rather than hidden behind gRPC's default 1 s (growing to 120 s) backoff.
PROBE_CHANNEL_OPTIONS = (*fast_reconnect(500), ("grpc.enable_retries", 0))


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    failure_type: str = ""  # crash | hang | unhealthy
    evidence: str = ""
    latency_s: float = 0.0


Poke = Callable[[str], None]  # called with the evidence of a failure seen between checks


class Probe(Protocol):
    async def check(self) -> CheckResult: ...

    def watch(self, poke: Poke) -> None:
        """Call `poke` as soon as the target is seen failing between checks (if it can)."""

    async def close(self) -> None: ...


async def _timed(spec: CheckSpec, what: str, run: Callable[[], Awaitable[CheckResult]]) -> CheckResult:
    """Run one attempt under the check's deadline, classifying the usual errors."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(spec.timeout_s):
            result = await run()
    except TimeoutError:
        result = CheckResult(False, "hang", f"{what}: no answer within {spec.timeout_s:g} s")
    except (ConnectionRefusedError, FileNotFoundError) as exc:
        result = CheckResult(False, "crash", f"{what}: nothing listening ({exc.strerror or exc})")
    except OSError as exc:
        result = CheckResult(False, "unhealthy", f"{what}: {exc!r}")
    return CheckResult(result.ok, result.failure_type, result.evidence, time.monotonic() - started)


def grpc_failure_type(exc: grpc.aio.AioRpcError) -> str:
    """hang: the deadline passed, or a connection was accepted but never spoke
    HTTP/2 (a frozen process: the kernel accepts for it); crash: nothing there."""
    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "hang"
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        details = exc.details() or ""
        return "hang" if "SETTINGS frame" in details or "ping timeout" in details else "crash"
    return "unhealthy"


class GrpcProbe:
    def __init__(self, spec: CheckSpec) -> None:
        self._spec = spec
        # Keepalive sees a frozen process (SIGSTOP, stuck in the kernel, a broken
        # path) between checks: the kernel still accepts its connections, but
        # nobody acks the pings. gRPC's C core answers pings on its own threads,
        # so an application hung while its transport lives is left to the Check.
        options = PROBE_CHANNEL_OPTIONS + keepalive(spec.keepalive_s)
        self._channel = grpc.aio.insecure_channel(spec.address, options=options)
        self._stub = health_pb2_grpc.HealthStub(self._channel)
        self._watcher: asyncio.Task[None] | None = None
        self._what = f"grpc.health.v1 Check {spec.address} service {spec.service!r}"

    async def check(self) -> CheckResult:
        started = time.monotonic()
        request = health_pb2.HealthCheckRequest(service=self._spec.service)
        try:
            response = await self._stub.Check(request, timeout=self._spec.timeout_s)
        except grpc.aio.AioRpcError as exc:
            evidence = f"{self._what}: {exc.code().name} ({exc.details()})"
            return CheckResult(False, grpc_failure_type(exc), evidence, time.monotonic() - started)
        latency = time.monotonic() - started
        if response.status != SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            return CheckResult(False, "unhealthy", f"{self._what}: {status}", latency)
        return CheckResult(True, latency_s=latency)

    def watch(self, poke: Poke) -> None:
        self._watcher = asyncio.create_task(self._watch(poke), name=f"watch {self._spec.address}")

    async def _watch(self, poke: Poke) -> None:
        delay, serving = 0.1, False
        request = health_pb2.HealthCheckRequest(service=self._spec.service)
        what = f"grpc.health.v1 Watch {self._spec.address} service {self._spec.service!r}"
        while True:
            ended = "the server ended the stream"
            try:
                async for response in self._stub.Watch(request):
                    if response.status == SERVING:
                        serving, delay = True, 0.1
                    elif serving:
                        serving = False
                        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                        poke(f"{what}: {status}")
            except grpc.aio.AioRpcError as exc:
                ended = f"{exc.code().name} ({exc.details()})"
            if serving:  # the stream dropped: the process died, froze, or the connection broke
                serving = False
                poke(f"{what} ended: {ended}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._channel.close(None)


class _OneShot:
    """A probe without a stream: every check is one attempt."""

    def __init__(self, spec: CheckSpec, what: str, attempt: Callable[[], Awaitable[CheckResult]]) -> None:
        self._spec, self._what, self._attempt = spec, what, attempt

    async def check(self) -> CheckResult:
        return await _timed(self._spec, self._what, self._attempt)

    def watch(self, poke: Poke) -> None:
        return None

    async def close(self) -> None:
        return None


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def tcp_probe(spec: CheckSpec) -> _OneShot:
    host, _, port = spec.address.rpartition(":")

    async def attempt() -> CheckResult:
        _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        await _close(writer)
        return CheckResult(True)

    return _OneShot(spec, f"TCP connect {spec.address}", attempt)


def http_probe(spec: CheckSpec) -> _OneShot:
    url = urlsplit(spec.address)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")

    async def attempt() -> CheckResult:
        reader, writer = await asyncio.open_connection(url.hostname, url.port or 80)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            status_line = (await reader.readline()).decode("latin-1").strip()
        finally:
            await _close(writer)
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if status != spec.expect_status:
            return CheckResult(False, "unhealthy",
                               f"GET {spec.address}: {status_line!r}, expected status {spec.expect_status}")
        return CheckResult(True)

    return _OneShot(spec, f"GET {spec.address}", attempt)


def unix_probe(spec: CheckSpec) -> _OneShot:
    async def attempt() -> CheckResult:
        reader, writer = await asyncio.open_unix_connection(spec.address)
        try:
            writer.write(spec.send.encode())
            await writer.drain()
            reply = b""
            while spec.expect.encode() not in reply and len(reply) < 65536:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                reply += chunk
        finally:
            await _close(writer)
        if spec.expect.encode() not in reply:
            return CheckResult(False, "unhealthy", f"unix {spec.address}: reply {reply[:200]!r} "
                                                   f"does not contain {spec.expect!r}")
        return CheckResult(True)

    return _OneShot(spec, f"unix {spec.address}", attempt)


def exec_probe(spec: CheckSpec) -> _OneShot:
    what = f"exec {' '.join(spec.command)}"

    async def attempt() -> CheckResult:
        process = await asyncio.create_subprocess_exec(
            *spec.command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        try:
            output, _ = await process.communicate()
        except asyncio.CancelledError:  # the deadline: do not leave it running
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            tail = output.decode(errors="replace").strip()[-300:]
            return CheckResult(False, "unhealthy", f"{what}: exit status {process.returncode}: {tail}")
        return CheckResult(True)

    return _OneShot(spec, what, attempt)


def make_probe(spec: CheckSpec) -> Probe:
    if spec.kind == "grpc":
        return GrpcProbe(spec)
    factory = {"tcp": tcp_probe, "http": http_probe, "unix": unix_probe, "exec": exec_probe}[spec.kind]
    return factory(spec)
