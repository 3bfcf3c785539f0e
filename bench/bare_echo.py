"""The floor of the Evaluate benchmark: grpc.aio with no npanel code on the call path.

Same Echo proto as npanel.testing.echo, but no interceptor, no metrics, no
request ids, so (npanel echo - this) is the shared bootstrap's per-call cost.
The health service is there only so the harness can wait for SERVING; Echo
calls never touch it. Usage: python bench/bare_echo.py 127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from npanel.testing.v1 import testing_pb2, testing_pb2_grpc


class BareEcho(testing_pb2_grpc.EchoServiceServicer):
    async def Echo(
        self, request: testing_pb2.EchoRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> testing_pb2.EchoResponse:
        return testing_pb2.EchoResponse(message=request.message)


async def serve(address: str) -> None:
    server = grpc.aio.server()
    testing_pb2_grpc.add_EchoServiceServicer_to_server(BareEcho(), server)
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)  # "" is SERVING by default
    server.add_insecure_port(address)
    await server.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop(1)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
