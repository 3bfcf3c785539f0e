"""The server interceptor every service runs: request id, metrics, error logging.

It wraps each method's behaviour rather than the handler lookup, because only
the behaviour sees the call finish and knows its status code.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import Any, NoReturn

import asyncpg
import grpc
from grpc.aio import ServicerContext

from . import errors
from .logs import actor_var, request_id_var
from .metrics import GrpcServerMetrics

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
# Set by the gateway to the caller's token name. Backends are reachable only
# from the gateway (ARCHITECTURE.md), so they trust it as the actor of a change.
ACTOR_KEY = "x-npanel-actor"
_CODES_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}
Ctx = ServicerContext[Any, Any]


def status_of(context: Ctx, error: BaseException | None) -> grpc.StatusCode:
    """The status a finished call ends with, as the client will see it."""
    code: Any = context.code()
    if isinstance(code, int):
        code = _CODES_BY_VALUE.get(code)
    if isinstance(code, grpc.StatusCode):
        return code
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


_DOMAIN_CODES: tuple[tuple[type[errors.DomainError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
)
# Raised by asyncpg when PostgreSQL is down, restarting (SQLSTATE class 57:
# admin shutdown, cannot connect now) or the connection dropped mid-call.
_DATABASE_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                  asyncpg.exceptions.OperatorInterventionError)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The one mapping from domain (and database-down) errors to gRPC codes;
    None for anything else, which is a bug and surfaces as UNKNOWN."""
    for kind, code in _DOMAIN_CODES:
        if isinstance(exc, kind):
            return code, str(exc)
    if isinstance(exc, errors.DomainError):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, _DATABASE_DOWN):
        return grpc.StatusCode.UNAVAILABLE, (
            f"database unavailable ({type(exc).__name__}: {exc}); nothing was changed, retry later")
    return None


def _metadata(context: Ctx, key: str) -> str:
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return ""


class InFlight:
    """Counts calls that end with one response, so shutdown can wait for them.

    Server-streaming calls (health Watch, change streams) are not counted: they
    never end on their own, and their clients reconnect elsewhere when cancelled.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def exit(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, limit_s: float) -> bool:
        """True when every counted call finished within `limit_s` seconds."""
        try:
            await asyncio.wait_for(self._idle.wait(), limit_s)
        except TimeoutError:
            return False
        return True


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, metrics: GrpcServerMetrics, in_flight: InFlight) -> None:
        self._metrics = metrics
        self.in_flight = in_flight
        # method -> (the handler seen, its wrapped copy): wrapping is done once per method.
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(details)
        if handler is None:
            return handler
        cached = self._wrapped.get(details.method)
        if cached is not None and cached[0] is handler:
            wrapped: grpc.RpcMethodHandler[Any, Any] = cached[1]
            return wrapped
        service, _, method = details.method.lstrip("/").rpartition("/")
        wrapped = _wrap(handler, self._metrics, self.in_flight, service, method)
        self._wrapped[details.method] = (handler, wrapped)
        return wrapped


class _Scope:
    """One call's bookkeeping between _Observed.begin and _Observed.end."""

    __slots__ = ("actor_token", "error", "request_token", "started")

    def __init__(self, context: Ctx) -> None:
        self.request_token = request_id_var.set(_metadata(context, REQUEST_ID_KEY) or os.urandom(16).hex())
        self.actor_token = actor_var.set(_metadata(context, ACTOR_KEY))
        self.error: BaseException | None = None
        self.started = time.perf_counter()


class _Observed:
    """One method's metric children, bound once so that a call does no label lookups."""

    def __init__(self, metrics: GrpcServerMetrics, in_flight: InFlight, kind: str, service: str,
                 method: str) -> None:
        self._labels = (kind, service, method)
        self._started = metrics.started.labels(*self._labels)
        self._handling = metrics.handling.labels(*self._labels)
        self._handled_family = metrics.handled
        self._handled: dict[grpc.StatusCode, Any] = {}
        self._in_flight = in_flight if kind in ("unary_unary", "stream_unary") else None
        self.name = f"/{service}/{method}"

    def begin(self, context: Ctx) -> _Scope:
        if self._in_flight is not None:
            self._in_flight.enter()
        self._started.inc()
        return _Scope(context)

    async def fail(self, scope: _Scope, exc: BaseException, context: Ctx) -> NoReturn:
        """Map a domain (or database-down) error to its status; anything else propagates."""
        mapped = status_for(exc) if isinstance(exc, Exception) else None
        if mapped is None:
            scope.error = exc
            raise exc
        await context.abort(*mapped)

    def end(self, scope: _Scope, context: Ctx) -> None:
        code = status_of(context, scope.error)
        counter = self._handled.get(code)
        if counter is None:
            counter = self._handled[code] = self._handled_family.labels(*self._labels, code.name)
        counter.inc()
        self._handling.observe(time.perf_counter() - scope.started)
        if code is grpc.StatusCode.UNKNOWN and scope.error is not None:
            log.error("unhandled error in %s", self.name, exc_info=scope.error)
        if self._in_flight is not None:
            self._in_flight.exit()
        with suppress(ValueError):  # a stream closed from another context
            request_id_var.reset(scope.request_token)
        with suppress(ValueError):
            actor_var.reset(scope.actor_token)


def _wrap(handler: grpc.RpcMethodHandler[Any, Any], metrics: GrpcServerMetrics, in_flight: InFlight,
          service: str, method: str) -> Any:
    """A copy of `handler` whose behaviour is observed (metrics, ids, error mapping)."""
    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
        ("unary_stream", grpc.unary_stream_rpc_method_handler, True),
        ("stream_unary", grpc.stream_unary_rpc_method_handler, False),
        ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
    )
    for kind, make, streams_out in kinds:
        behaviour = getattr(handler, kind)
        if behaviour is None:
            continue
        observed = _Observed(metrics, in_flight, kind, service, method)
        if streams_out and inspect.isasyncgenfunction(behaviour):
            wrapped = _wrap_stream(behaviour, observed)
        else:
            wrapped = _wrap_call(behaviour, observed)
        return make(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


def _wrap_call(behaviour: Any, observed: _Observed) -> Any:
    # Also covers streaming methods written with `await context.write(...)`.
    async def call(request: Any, context: Ctx) -> Any:
        scope = observed.begin(context)
        try:
            result = behaviour(request, context)
            return await result if inspect.isawaitable(result) else result
        except BaseException as exc:
            await observed.fail(scope, exc, context)
        finally:
            observed.end(scope, context)

    return call


def _wrap_stream(behaviour: Any, observed: _Observed) -> Any:
    async def stream(request: Any, context: Ctx) -> AsyncIterator[Any]:
        scope = observed.begin(context)
        try:
            async for response in behaviour(request, context):
                yield response
        except BaseException as exc:
            await observed.fail(scope, exc, context)
        finally:
            observed.end(scope, context)

    return stream
