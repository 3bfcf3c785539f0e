"""Running flagd replicas on the shared bootstrap, against the test's database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from prometheus_client import CollectorRegistry

from npanel.common.server import RunningServer, running
from npanel.common.settings import ServiceSettings
from npanel.flagd.main import FlagdService
from npanel.flagd.v1 import flagd_pb2_grpc

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from npanel.flagd.v1.flagd_pb2_grpc import FlagServiceAsyncStub


@dataclass
class Replica:
    service: FlagdService
    handle: RunningServer
    registry: CollectorRegistry
    stub: FlagServiceAsyncStub
    channel: grpc.aio.Channel

    @property
    def address(self) -> str:
        return self.handle.address


@asynccontextmanager
async def start_replica(database_url: str, listen: str = "127.0.0.1:0") -> AsyncIterator[Replica]:
    settings = ServiceSettings.read("flagd", {
        "NPANEL_DATABASE_URL": database_url,
        "NPANEL_FLAGD_LISTEN": listen,
        "NPANEL_FLAGD_METRICS_LISTEN": "127.0.0.1:0",
        "NPANEL_SHUTDOWN_GRACE": "1",
        "NPANEL_DATABASE_CONNECT_TIMEOUT": "5",
    })
    service = FlagdService(settings)
    registry = CollectorRegistry()
    async with running(service, settings, registry) as handle, \
            grpc.aio.insecure_channel(handle.address) as channel:
        yield Replica(service, handle, registry, flagd_pb2_grpc.FlagServiceStub(channel), channel)

