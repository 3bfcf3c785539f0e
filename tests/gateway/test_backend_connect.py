"""The gateway's connection to a backend may be slow to set up (a loaded machine, a busy backend).

A call must wait for it, within its own deadline: a write is never retried by the gateway, so a
connection attempt given less time than the call would fail it to the user (UNAVAILABLE, "tcp
handshaker shutdown" or "connect() timed out" from grpc-core).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from npanel.flagd.v1 import flagd_pb2 as fpb
from npanel.testing.v1 import testing_pb2 as tpb
from tests.support.flagd import Replica
from tests.support.gateway import start_echo, start_gateway
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
ECHO = "/npanel.testing.v1.EchoService/Echo"  # a write to the gateway: not NO_SIDE_EFFECTS
SETUP_S = 0.5


class SlowSetup:
    """A loopback proxy that holds every new connection SETUP_S before it passes bytes either way.

    To the gateway's channel the backend's HTTP/2 SETTINGS arrive SETUP_S late, as they can
    when a loaded machine schedules the connecting threads late.
    """

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host, int(port))
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.address = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writers = [writer]
        try:
            await asyncio.sleep(SETUP_S)
            up_reader, up_writer = await asyncio.open_connection(*self._target)
            writers.append(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for each in writers:
                each.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()  # one side ended: end the other

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SlowSetup]:
        def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.ensure_future(self._handle(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            yield self
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.mark.asyncio
async def test_a_write_waits_for_a_backend_connection_that_is_slow_to_set_up(
    database_url: str, flagd: Replica
) -> None:
    async with start_echo() as echo, SlowSetup(echo.address).running() as slow, \
            start_gateway(database_url, {"flagd": flagd.address, "echo": slow.address}) as gw:
        await flagd.stub.SetFlag(fpb.SetFlagRequest(name="soak_testing", enabled=True, actor="t",
                                                    reason="t"), timeout=5)
        assert await eventually(lambda: gw.service.flags is not None
                                and gw.service.flags.is_enabled("soak_testing"), 5)
        assert gw.service.routes[ECHO].idempotent is False  # the gateway will not retry it
        call = gw.channel.unary_unary(ECHO, None, None)
        started = time.monotonic()
        answer: bytes | grpc.aio.AioRpcError
        try:
            answer = await call(tpb.EchoRequest(message="once").SerializeToString(),
                                metadata=gw.auth("operator"), timeout=10)
        except grpc.aio.AioRpcError as exc:
            answer = exc
        took = time.monotonic() - started
        assert not isinstance(answer, grpc.aio.AioRpcError), \
            f"{answer.code().name} after {took:.3f} s: {answer.details()}"
        assert tpb.EchoResponse.FromString(answer).message == "once"
        # It went over the gateway's first, slow connection (not a later, quicker one).
        assert slow.accepted == 1 and took >= SETUP_S
