"""The gateway's API metrics (PHASE5-SPEC.md Task 1.6), for gRPC and HTTP calls alike."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Seconds: the API p95 alert fires at 150 ms and the p99 target is 200 ms.
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5, 5)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "npanel_api_requests_total", "API requests answered by the gateway.",
            ["method", "endpoint", "status_code"], registry=registry)
        self.response_time = Histogram(
            "npanel_api_response_time_seconds", "Time to answer an API request.",
            ["method", "endpoint"], buckets=API_BUCKETS, registry=registry)
        self.backend_errors = Counter(
            "npanel_api_backend_errors_total", "Calls a backend failed or could not take.",
            ["backend", "code"], registry=registry)

    def observe(self, method: str, endpoint: str, status: str, seconds: float) -> None:
        """`method` is the HTTP verb or GRPC; `endpoint` the route template or gRPC method."""
        self.requests.labels(method, endpoint, status).inc()
        self.response_time.labels(method, endpoint).observe(seconds)
