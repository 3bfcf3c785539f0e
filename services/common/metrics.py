"""Prometheus metrics shared by every service, and the per-service /metrics endpoint.

Metric names for gRPC follow go-grpc-prometheus, so the usual dashboards work.
Every metric is created against an explicit registry, so tests build their own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from .settings import parse_address

# Seconds; spans sub-millisecond cache answers to slow database writes.
GRPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class GrpcServerMetrics:
    started: Counter
    handled: Counter
    handling: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> GrpcServerMetrics:
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        return cls(
            started=Counter(
                "grpc_server_started_total", "RPCs started on the server.",
                labels, registry=registry,
            ),
            handled=Counter(
                "grpc_server_handled_total", "RPCs completed on the server, by status code.",
                [*labels, "grpc_code"], registry=registry,
            ),
            handling=Histogram(
                "grpc_server_handling_seconds", "Time from receiving an RPC to its completion.",
                labels, buckets=GRPC_BUCKETS, registry=registry,
            ),
        )


class MetricsEndpoint:
    """The HTTP /metrics endpoint of one service, served from a daemon thread."""

    def __init__(self, address: str, registry: CollectorRegistry) -> None:
        host, _, port = parse_address(address).rpartition(":")
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(
            int(port), addr=host.strip("[]"), registry=registry
        )

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
