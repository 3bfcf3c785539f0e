"""Forwarding to the backends: one channel each, a deadline on every call.

Payloads stay bytes: the gateway never parses what it only forwards. A backend
that is down becomes UNAVAILABLE naming the backend (never a hang), and reads
declared free of side effects are retried once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from npanel.common.channels import fast_reconnect
from npanel.common.interceptors import ACTOR_KEY, REQUEST_ID_KEY

from .metrics import ApiMetrics
from .routes import Route
from .tokens import Token

LocalMethod = Callable[[Any, Token], Awaitable[Message]]
# Services declaring this backend are served inside the gateway (TokenService).
LOCAL_BACKEND = "gateway"
# Reconnect soon after a backend comes back (not min_reconnect_backoff_ms: see
# npanel.common.channels; at 100 ms a slow first connection failed a write with
# "tcp handshaker shutdown"). Each call's deadline bounds the wait; a refused
# connection still fails at once.
CHANNEL_OPTIONS = fast_reconnect(1000)


class BackendError(Exception):
    """A status from (or about) a backend, passed on to the caller as is."""

    def __init__(self, code: grpc.StatusCode, details: str, backend: str) -> None:
        self.code = code
        self.details = details
        self.backend = backend
        super().__init__(f"{code.name}: {details}")


@dataclass(frozen=True)
class CallMeta:
    token: Token
    request_id: str
    timeout_s: float | None  # what is left of the caller's own deadline


class Dispatcher:
    def __init__(self, addresses: Mapping[str, str], local: Mapping[str, LocalMethod],
                 deadline_s: float, metrics: ApiMetrics) -> None:
        self._metrics = metrics
        self._addresses = dict(addresses)
        self._channels = {name: grpc.aio.insecure_channel(addr, options=CHANNEL_OPTIONS)
                          for name, addr in addresses.items()}
        self._local = local
        self._deadline_s = deadline_s
        # One multicallable per method, built on first use (not on every call).
        self._unary: dict[str, Any] = {}

    def _timeout(self, meta: CallMeta) -> float:
        return self._deadline_s if meta.timeout_s is None else min(self._deadline_s, meta.timeout_s)

    def _metadata(self, meta: CallMeta) -> tuple[tuple[str, str], ...]:
        return ((ACTOR_KEY, meta.token.name), (REQUEST_ID_KEY, meta.request_id))

    def _channel(self, route: Route) -> grpc.aio.Channel:
        channel = self._channels.get(route.backend)
        if channel is None:
            raise BackendError(grpc.StatusCode.UNIMPLEMENTED,
                               f"no address configured for backend {route.backend!r}", route.backend)
        return channel

    def _error(self, route: Route, exc: grpc.aio.AioRpcError) -> BackendError:
        code, details = exc.code(), exc.details() or ""
        self._metrics.backend_errors.labels(route.backend, code.name).inc()
        if code == grpc.StatusCode.UNAVAILABLE:
            details = (f"backend {route.backend} at {self._addresses[route.backend]} is unavailable "
                       f"({details}); retry later")
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            details = f"backend {route.backend} did not answer in time ({details})"
        return BackendError(code, details, route.backend)

    async def unary(self, route: Route, payload: bytes, meta: CallMeta) -> bytes:
        if route.backend == LOCAL_BACKEND:
            return await self._call_local(route, payload, meta)
        call = self._unary.get(route.full_method)
        if call is None:
            # No serializers: the payload is forwarded as the bytes it came in as.
            call = self._unary[route.full_method] = self._channel(route).unary_unary(
                route.full_method, None, None)
        attempts = 2 if route.idempotent else 1
        for attempt in range(attempts):
            try:
                response: bytes = await call(payload, timeout=self._timeout(meta),
                                             metadata=self._metadata(meta))
                return response
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt + 1 == attempts:
                    raise self._error(route, exc) from exc
        raise AssertionError("unreachable")

    async def stream(self, route: Route, payload: bytes, meta: CallMeta) -> AsyncIterator[bytes]:
        call = self._channel(route).unary_stream(route.full_method, None, None)
        try:
            # Streams run until either side ends them: no deadline unless the caller set one.
            async for message in call(payload, timeout=meta.timeout_s, metadata=self._metadata(meta)):
                yield message
        except grpc.aio.AioRpcError as exc:
            raise self._error(route, exc) from exc

    async def _call_local(self, route: Route, payload: bytes, meta: CallMeta) -> bytes:
        method = self._local[route.full_method]
        request = route.request_type.FromString(payload)
        return (await method(request, meta.token)).SerializeToString()

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(None)
