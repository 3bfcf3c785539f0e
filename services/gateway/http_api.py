"""The gateway's HTTP/JSON front door (aiohttp): transcoded routes, OFREP, OpenAPI.

Every route comes from the google.api.http annotations (routes.py); this module
only moves requests and answers between HTTP and the dispatcher, through the
same Policy as gRPC calls.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

import grpc
from aiohttp import web

from npanel.common.errors import DomainError, ResourceExhausted
from npanel.common.interceptors import status_for
from npanel.common.logs import request_id_var
from npanel.flagd.v1 import flagd_pb2 as pb

from . import ofrep
from .backends import BackendError, CallMeta, Dispatcher
from .metrics import ApiMetrics
from .policy import Policy
from .routes import Route, match_http
from .transcode import HTTP_STATUS, build_request, status_body, to_json

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EVALUATE = "/npanel.flagd.v1.FlagService/Evaluate"
EVALUATE_ALL = "/npanel.flagd.v1.FlagService/EvaluateAll"


def _error(code: grpc.StatusCode, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(status_body(code, message), status=HTTP_STATUS[code], headers=headers)


def error_response(exc: Exception) -> web.Response:
    if isinstance(exc, BackendError):
        return _error(exc.code, exc.details)
    mapped = status_for(exc)
    if mapped is None:
        raise exc
    headers = {"Retry-After": str(math.ceil(exc.retry_after_s))} \
        if isinstance(exc, ResourceExhausted) else None
    return _error(mapped[0], mapped[1], headers)


# The matched route template, set by the handler for the middleware's metrics
# (the handler runs in the middleware's task, so the middleware sees it).
_route_template: ContextVar[str] = ContextVar("npanel_http_route", default="")


def _endpoint(request: web.Request) -> str:
    """A bounded label: the route template, never the raw path."""
    if template := _route_template.get():
        return template
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else ""
    return canonical if canonical and "{tail}" not in canonical else "unmatched"


class HttpApi:
    def __init__(self, routes: Mapping[str, Route], policy: Policy, dispatcher: Dispatcher,
                 metrics: ApiMetrics, openapi: dict[str, Any], max_body: int) -> None:
        self._routes = routes
        self._policy = policy
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._openapi = openapi
        self._max_body = max_body

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self._max_body, middlewares=[self._observe])
        app.router.add_get("/openapi.json", self._openapi_json)
        app.router.add_post("/ofrep/v1/evaluate/flags/{key}", self._ofrep_one)
        app.router.add_post("/ofrep/v1/evaluate/flags", self._ofrep_all)
        # [\s\S], not '.': a path may hold a newline (%0A), and aiohttp's own 404 is not JSON.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._transcoded)
        return app

    @web.middleware
    async def _observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = request.headers.get("X-Request-Id", "")[:128] or os.urandom(16).hex()
        token = request_id_var.set(request_id)
        route_token = _route_template.set("")
        status = 500
        try:
            response = await self._answer(request, handler)
            status = response.status
            if not response.prepared:  # a stream sent its headers already
                response.headers["X-Request-Id"] = request_id
            return response
        finally:
            self._metrics.observe(request.method, _endpoint(request), str(status),
                                  time.perf_counter() - started)
            request_id_var.reset(token)
            _route_template.reset(route_token)

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return web.json_response(status_body(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request body is larger than {self._max_body} bytes"), status=413)
        except (DomainError, BackendError) as exc:
            return error_response(exc)

    async def _openapi_json(self, request: web.Request) -> web.Response:
        return web.json_response(self._openapi)

    async def _meta(self, request: web.Request, route: Route) -> CallMeta:
        token = await self._policy.admit(route, request.headers.get("Authorization", ""),
                                         request.remote or "unknown")
        return CallMeta(token, request_id_var.get(), None)

    async def _transcoded(self, request: web.Request) -> web.StreamResponse:
        found = match_http(self._routes, request.method, request.path)
        if found is None:
            return _error(grpc.StatusCode.NOT_FOUND, f"no route for {request.method} {request.path}; "
                          "see /openapi.json")
        route, params = found
        assert route.http is not None
        _route_template.set(route.http.template)
        # Admitted before the body is read or parsed: without a token, a bad body is still a 401.
        meta = await self._meta(request, route)
        message = build_request(route, params, dict(request.query), await request.read())
        payload = message.SerializeToString()
        if route.server_streaming:
            return await self._stream(request, route, payload, meta)
        answer = route.response_type.FromString(await self._dispatcher.unary(route, payload, meta))
        return web.json_response(to_json(answer))

    async def _stream(self, request: web.Request, route: Route, payload: bytes,
                      meta: CallMeta) -> web.StreamResponse:
        """Newline-delimited JSON, {"result": ...} per message, as grpc-gateway streams."""
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                               "X-Request-Id": meta.request_id})
        await response.prepare(request)
        try:
            async for raw in self._dispatcher.stream(route, payload, meta):
                line = {"result": to_json(route.response_type.FromString(raw))}
                await response.write(json.dumps(line).encode() + b"\n")
        except BackendError as exc:
            await response.write(json.dumps({"error": status_body(exc.code, exc.details)}).encode() + b"\n")
        return response

    async def _ofrep_one(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        route = self._routes[EVALUATE]
        meta = await self._meta(request, route)
        context = ofrep.context_of(await request.read())
        message = pb.EvaluateRequest(flag=key, context=pb.EvaluationContext(
            account_id=ofrep.account_of(context)))
        try:
            raw = await self._dispatcher.unary(route, message.SerializeToString(), meta)
        except BackendError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                return web.json_response(ofrep.not_found(key, exc.details), status=404)
            raise
        return web.json_response(ofrep.flag_result(pb.Evaluation.FromString(raw)))

    async def _ofrep_all(self, request: web.Request) -> web.Response:
        route = self._routes[EVALUATE_ALL]
        meta = await self._meta(request, route)
        context = ofrep.context_of(await request.read())
        message = pb.EvaluateAllRequest(context=pb.EvaluationContext(account_id=ofrep.account_of(context)))
        answer = pb.EvaluateAllResponse.FromString(
            await self._dispatcher.unary(route, message.SerializeToString(), meta))
        tag = ofrep.etag(answer.revision, context)
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers={"ETag": tag})
        body = {"flags": [ofrep.flag_result(e) for e in answer.evaluations],
                "metadata": {"revision": answer.revision}}
        return web.json_response(body, headers={"ETag": tag})
