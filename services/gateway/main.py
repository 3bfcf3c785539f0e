"""gateway wiring: routes from descriptors, policy, dispatcher, gRPC and HTTP front doors."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import grpc
from aiohttp import web
from google.protobuf.descriptor import FileDescriptor
from prometheus_client import CollectorRegistry

from npanel.common.db import open_pool
from npanel.common.flagclient import FlagClient
from npanel.common.settings import GatewaySettings, ServiceSettings

from . import openapi
from .backends import Dispatcher
from .exposed import exposed_files
from .grpc_proxy import ProxyHandler
from .http_api import HttpApi
from .metrics import ApiMetrics
from .ofrep_paths import OFREP_PATHS
from .policy import Policy
from .ratelimit import RateLimiter
from .routes import Route, build_routes
from .servicer import TokenMethods
from .store import TokenCache, TokenStore


class GatewayService:
    def __init__(self, settings: ServiceSettings, gateway: GatewaySettings,
                 extra_files: Sequence[FileDescriptor] = ()) -> None:
        self._settings = settings
        self.gateway = gateway
        self.routes: dict[str, Route] = build_routes([*exposed_files(), *extra_files])
        self.tokens = TokenStore()
        self._pool: asyncpg.Pool | None = None
        self._runner: web.AppRunner | None = None
        self.flags: FlagClient | None = None
        self.dispatcher: Dispatcher | None = None
        self.http_port = 0

    @property
    def grpc_service_names(self) -> Sequence[str]:
        return sorted({r.service for r in self.routes.values()})

    def register(self, server: grpc.aio.Server, registry: CollectorRegistry) -> None:
        self.flags = FlagClient(self.gateway.backends["flagd"], registry)
        self.metrics = ApiMetrics(registry)
        self.policy = Policy(TokenCache(self.tokens), self.flags,
                             RateLimiter(self.gateway.rate_limit_ip_per_min),
                             RateLimiter(self.gateway.rate_limit_token_per_min), registry)
        self.dispatcher = Dispatcher(self.gateway.backends, TokenMethods(self.tokens).table(),
                                     self.gateway.deadline_s, self.metrics)
        server.add_generic_rpc_handlers(
            (ProxyHandler(self.routes, self.policy, self.dispatcher, self.metrics),))

    def openapi(self) -> dict[str, Any]:
        return openapi.openapi_document(self.routes, title="npanel API", version="v1",
                                        extra_paths=OFREP_PATHS)

    async def start(self) -> None:
        assert self.flags is not None and self.dispatcher is not None
        self._pool = await open_pool(self._settings.database, "npanel-gateway")
        self.tokens.attach(self._pool)
        self.flags.start()
        # Without flagd, gated features stay off (the client's default) until it answers.
        await self.flags.wait_ready(self.gateway.flag_wait_s)
        api = HttpApi(self.routes, self.policy, self.dispatcher, self.metrics, self.openapi(),
                      self.gateway.max_body_bytes)
        # Open streams (NDJSON watches) get the same grace as gRPC calls, not aiohttp's 60 s.
        self._runner = web.AppRunner(api.app(), access_log=None,
                                     shutdown_timeout=self._settings.shutdown_grace_s)
        await self._runner.setup()
        host, _, port = self.gateway.http_listen.rpartition(":")
        site = web.TCPSite(self._runner, host.strip("[]"), int(port))
        await site.start()
        self.http_port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        for closer in (self.flags, self.dispatcher):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer.close()
        if self._pool is not None:
            await self._pool.close()


def build(settings: ServiceSettings) -> GatewayService:
    return GatewayService(settings, GatewaySettings.from_environ())
