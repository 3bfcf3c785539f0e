"""The gateway's gRPC front door: every exposed method, forwarded as bytes.

Registered as a generic handler, so the exposed services keep their own names
(a client calls npanel.flagd.v1.FlagService on :50050 as it would on flagd).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import grpc

from npanel.common.errors import DomainError, ResourceExhausted
from npanel.common.interceptors import status_for
from npanel.common.logs import request_id_var

from .backends import BackendError, CallMeta, Dispatcher
from .metrics import ApiMetrics
from .policy import Policy
from .routes import Route
from .tokens import Token

Ctx = grpc.aio.ServicerContext[Any, Any]


def peer_ip(context: Ctx) -> str:
    """'ipv4:127.0.0.1:5000' -> '127.0.0.1'; '[::1]' for IPv6; the whole peer otherwise."""
    kind, _, rest = context.peer().partition(":")
    return rest.rpartition(":")[0] if kind in ("ipv4", "ipv6") else context.peer()


def account_of(route: Route, payload: bytes) -> str | None:
    """The request's account_id, when the method is gated and has one (per-account rollout)."""
    if not route.feature_flag or "account_id" not in route.request_type.DESCRIPTOR.fields_by_name:
        return None
    return str(getattr(route.request_type.FromString(payload), "account_id", "")) or None


if TYPE_CHECKING:  # generic only in the type stubs
    _GenericRpcHandler = grpc.GenericRpcHandler[Any, Any]
else:
    _GenericRpcHandler = grpc.GenericRpcHandler


class ProxyHandler(_GenericRpcHandler):
    def __init__(self, routes: Mapping[str, Route], policy: Policy, dispatcher: Dispatcher,
                 metrics: ApiMetrics) -> None:
        self._routes = routes
        self._policy = policy
        self._dispatcher = dispatcher
        self._metrics = metrics
        # Built once per method: service() runs for every call.
        self._handlers = {name: self._handler(route) for name, route in routes.items()}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        return self._handlers.get(details.method)

    def _handler(self, route: Route) -> grpc.RpcMethodHandler[Any, Any]:
        if route.server_streaming:
            return grpc.unary_stream_rpc_method_handler(self._streamer(route))
        return grpc.unary_unary_rpc_method_handler(self._caller(route))

    async def _admit(self, route: Route, payload: bytes, context: Ctx) -> CallMeta:
        metadata = dict(context.invocation_metadata() or ())
        token: Token = await self._policy.admit(
            route, str(metadata.get("authorization", "")), peer_ip(context), account_of(route, payload))
        return CallMeta(token, request_id_var.get(), context.time_remaining())

    @asynccontextmanager
    async def _outcome(self, route: Route, context: Ctx) -> AsyncIterator[None]:
        started, status = time.perf_counter(), "OK"
        try:
            yield
        except ResourceExhausted as exc:
            status = "RESOURCE_EXHAUSTED"
            context.set_trailing_metadata((("retry-after", str(math.ceil(exc.retry_after_s))),))
            raise
        except DomainError as exc:
            mapped = status_for(exc)
            status = mapped[0].name if mapped else "UNKNOWN"
            raise
        except BackendError as exc:
            status = exc.code.name
            await context.abort(exc.code, exc.details)
        finally:
            self._metrics.observe("GRPC", route.full_method, status, time.perf_counter() - started)

    def _caller(self, route: Route) -> Any:
        async def call(payload: bytes, context: Ctx) -> bytes:
            async with self._outcome(route, context):
                meta = await self._admit(route, payload, context)
                return await self._dispatcher.unary(route, payload, meta)
            raise AssertionError("unreachable: _outcome re-raises or aborts")
        return call

    def _streamer(self, route: Route) -> Any:
        async def stream(payload: bytes, context: Ctx) -> AsyncIterator[bytes]:
            async with self._outcome(route, context):
                meta = await self._admit(route, payload, context)
                async for message in self._dispatcher.stream(route, payload, meta):
                    yield message
        return stream
