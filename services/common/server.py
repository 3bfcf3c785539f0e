"""The grpc.aio server bootstrap every npanel service runs on.

Lifecycle, as one async context manager (`running`):
1. build the server with the observability interceptor, the standard health
   service (everything NOT_SERVING) and server reflection; bind; start;
2. start the /metrics endpoint;
3. run the service's own start-up (database pool, dependencies); only then turn
   health SERVING, so a probe never routes traffic to a half-started service;
4. on stop (SIGTERM/SIGINT in `serve_forever`): health NOT_SERVING first and
   ignoring further changes (`enter_graceful_shutdown`), then `server.stop(grace)`
   so in-flight calls finish, then the service's own shut-down.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from . import logs
from .interceptors import InFlight, ObservabilityInterceptor
from .metrics import GrpcServerMetrics, MetricsEndpoint
from .settings import ServiceSettings

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Service(Protocol):
    """What a service plugs into the bootstrap."""

    @property
    def grpc_service_names(self) -> Sequence[str]:
        """Full proto names of the services it registers (for health and reflection)."""
        ...

    def register(self, server: grpc.aio.Server, registry: CollectorRegistry) -> None:
        """Add its servicers (and its own metrics to `registry`)."""

    async def start(self) -> None:
        """Connect to the database and dependencies; return when ready to serve."""

    async def stop(self) -> None:
        """Release what `start` acquired; called after the server stopped."""


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: HealthServicer
    in_flight: InFlight
    port: int
    metrics_port: int
    settings: ServiceSettings
    _stop_requested: asyncio.Event

    @property
    def address(self) -> str:
        if self.settings.listen.startswith("unix:"):
            return self.settings.listen
        host = self.settings.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    def request_stop(self) -> None:
        self._stop_requested.set()

    async def wait_for_stop_request(self) -> None:
        await self._stop_requested.wait()


def build_server(
    service: Service, registry: CollectorRegistry, in_flight: InFlight
) -> tuple[grpc.aio.Server, HealthServicer]:
    server = grpc.aio.server(
        interceptors=[ObservabilityInterceptor(GrpcServerMetrics.create(registry), in_flight)],
        options=[
            ("grpc.so_reuseport", 0),
            # Clients send keepalive pings to notice a dead or frozen peer: the flag
            # client every 10 s, watchdogd's probes every second (check.keepalive_s).
            # gRPC's default (one ping per 5 min on an idle stream) would answer
            # those with GOAWAY "too_many_pings" after two, cutting the stream.
            # More than one ping per 500 ms is still refused (ping flood).
            ("grpc.http2.min_ping_interval_without_data_ms", 500),
            ("grpc.keepalive_permit_without_calls", 1),
        ],
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    service.register(server, registry)
    names = (*service.grpc_service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
    reflection.enable_server_reflection((*names, reflection.SERVICE_NAME), server)
    return server, health


async def set_health(health: HealthServicer, service: Service, status: int) -> None:
    for name in ("", *service.grpc_service_names):
        await health.set(name, status)


@asynccontextmanager
async def running(
    service: Service, settings: ServiceSettings, registry: CollectorRegistry | None = None
) -> AsyncIterator[RunningServer]:
    registry = registry if registry is not None else CollectorRegistry()
    in_flight = InFlight()
    server, health = build_server(service, registry, in_flight)
    await set_health(health, service, NOT_SERVING)
    if settings.listen.startswith("unix:"):
        Path(settings.listen[5:]).parent.mkdir(parents=True, exist_ok=True)
    port = server.add_insecure_port(settings.listen)
    await server.start()
    metrics = MetricsEndpoint(settings.metrics_listen, registry)
    handle = RunningServer(server, health, in_flight, port, metrics.port, settings, asyncio.Event())
    log.info("%s listening on %s, metrics on port %d", settings.name, handle.address, metrics.port)
    try:
        await service.start()
        await set_health(health, service, SERVING)
        log.info("%s ready: health SERVING", settings.name)
        yield handle
    finally:
        await shutdown(handle, service)
        metrics.close()


async def shutdown(handle: RunningServer, service: Service) -> None:
    """Turn health NOT_SERVING, let in-flight calls finish, then stop the service.

    New calls are refused from the start of `server.stop`; unary calls already
    running get up to the grace period; open streams are then cancelled.
    """
    grace = handle.settings.shutdown_grace_s
    log.info("%s shutting down: health NOT_SERVING, %d calls in flight, %g s grace",
             handle.settings.name, handle.in_flight.count, grace)
    await handle.health.enter_graceful_shutdown()
    stopping = asyncio.create_task(handle.server.stop(grace))
    if not await handle.in_flight.wait_idle(grace):
        log.warning("%d calls still running after %g s grace; cancelling them",
                    handle.in_flight.count, grace)
    await handle.server.stop(0)
    await stopping
    await service.stop()
    log.info("%s stopped", handle.settings.name)


async def serve_forever(service: Service, settings: ServiceSettings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    logs.configure(settings.name, level=settings.log_level, fmt=settings.log_format)
    async with running(service, settings) as handle:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, handle.request_stop)
        await handle.wait_for_stop_request()
