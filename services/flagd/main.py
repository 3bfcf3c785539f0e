"""flagd wiring: store, cache, sync, servicers and metrics on the shared bootstrap."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import asyncpg
import grpc
from prometheus_client import CollectorRegistry

from npanel.common.db import open_pool
from npanel.common.settings import ServiceSettings

from . import openfeature
from .cache import FlagCache
from .metrics import FlagMetrics
from .openfeature import OpenFeatureServicer
from .servicer import FlagServicer
from .store import FlagStore
from .sync import DatabaseSync
from .v1 import flagd_pb2, flagd_pb2_grpc


class FlagdService:
    def __init__(self, settings: ServiceSettings) -> None:
        self._settings = settings
        self.cache = FlagCache()
        self.store = FlagStore()
        self._pool: asyncpg.Pool | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self.sync: DatabaseSync | None = None

    @property
    def grpc_service_names(self) -> Sequence[str]:
        return (flagd_pb2.DESCRIPTOR.services_by_name["FlagService"].full_name, *openfeature.SERVICE_NAMES)

    def register(self, server: grpc.aio.Server, registry: CollectorRegistry) -> None:
        self.metrics = FlagMetrics(registry, self.cache)
        flagd_pb2_grpc.add_FlagServiceServicer_to_server(
            FlagServicer(self.store, self.cache, self.metrics), server)
        openfeature.add_to_server(OpenFeatureServicer(self.cache, self.metrics.record), server)

    async def start(self) -> None:
        self._pool = await open_pool(self._settings.database, "npanel-flagd")
        self.store.attach(self._pool)
        self.sync = DatabaseSync(self._settings.database, self.store, self.cache,
                                 on_connected=lambda up: self.metrics.sync_up.set(1 if up else 0))
        await self.sync.load()
        self._sync_task = asyncio.create_task(self.sync.run(), name="flag-sync")

    async def stop(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        if self._pool is not None:
            await self._pool.close()


def build(settings: ServiceSettings) -> FlagdService:
    return FlagdService(settings)
