"""A tiny service on the shared bootstrap, for tests and as a benchmark baseline.

No production deployment registers it. It needs no database, so it exercises
the bootstrap (health, reflection, metrics, request ids, shutdown) alone.
Run it in its own process: `python -m npanel.testing.echo` (listens where
NPANEL_ECHO_LISTEN says, metrics on NPANEL_ECHO_METRICS_LISTEN).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence

import grpc
from prometheus_client import CollectorRegistry

from npanel.common.logs import request_id_var
from npanel.common.server import serve_forever
from npanel.common.settings import ServiceSettings
from npanel.testing.v1 import testing_pb2, testing_pb2_grpc

_CODES = {c.value[0]: c for c in grpc.StatusCode}


class EchoServicer(testing_pb2_grpc.EchoServiceServicer):
    async def Echo(
        self, request: testing_pb2.EchoRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> testing_pb2.EchoResponse:
        if request.delay_ms:
            await asyncio.sleep(request.delay_ms / 1000)
        if request.fail_with_code:
            code = _CODES.get(request.fail_with_code, grpc.StatusCode.UNKNOWN)
            await context.abort(code, f"failing on request with {code.name}")
        return testing_pb2.EchoResponse(message=request.message, request_id=request_id_var.get())


class EchoService:
    """The Service of npanel.common.server; `started` lets tests hold start-up."""

    def __init__(self, start_delay_s: float = 0.0, *, hang_on_sigusr1: bool = False) -> None:
        self.start_delay_s = start_delay_s
        self.hang_on_sigusr1 = hang_on_sigusr1
        self.stopped = False

    @property
    def grpc_service_names(self) -> Sequence[str]:
        return (testing_pb2.DESCRIPTOR.services_by_name["EchoService"].full_name,)

    def register(self, server: grpc.aio.Server, registry: CollectorRegistry) -> None:
        testing_pb2_grpc.add_EchoServiceServicer_to_server(EchoServicer(), server)

    async def start(self) -> None:
        if self.hang_on_sigusr1:
            # SIGUSR1 hangs the application for good: its event loop blocks, while
            # gRPC's C core goes on answering pings and accepting connections. This
            # is the hang only a Check with a deadline can see (watchdogd tests).
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _hang_forever)
        await asyncio.sleep(self.start_delay_s)

    async def stop(self) -> None:
        self.stopped = True


def _hang_forever() -> None:
    while True:
        time.sleep(3600)


def main() -> None:
    asyncio.run(serve_forever(EchoService(hang_on_sigusr1=True), ServiceSettings.read("echo")))


if __name__ == "__main__":
    main()
