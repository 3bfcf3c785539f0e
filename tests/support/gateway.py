"""A running gateway in front of real backends, with a token for each role."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
from google.protobuf.descriptor import FileDescriptor
from prometheus_client import CollectorRegistry

from npanel.common.server import RunningServer, running
from npanel.common.settings import GatewaySettings, ServiceSettings
from npanel.gateway.main import GatewayService
from npanel.testing.echo import EchoService
from npanel.testing.v1 import testing_pb2

ROLES = ("viewer", "operator", "admin")


@dataclass
class Gateway:
    service: GatewayService
    handle: RunningServer
    registry: CollectorRegistry
    tokens: dict[str, str]  # role -> secret
    names: dict[str, str]  # role -> token name
    channel: grpc.aio.Channel

    @property
    def grpc_address(self) -> str:
        return self.handle.address

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.service.http_port}"

    def auth(self, role: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[role]}"),)


@asynccontextmanager
async def start_echo() -> AsyncIterator[RunningServer]:
    settings = ServiceSettings.read("echo", {"NPANEL_ECHO_LISTEN": "127.0.0.1:0",
                                             "NPANEL_ECHO_METRICS_LISTEN": "127.0.0.1:0"})
    async with running(EchoService(), settings) as handle:
        yield handle


@asynccontextmanager
async def start_gateway(
    database_url: str, backends: Mapping[str, str], *, ip_per_min: int = 10_000,
    token_per_min: int = 10_000, deadline_s: float = 5.0, max_body: int = 1 << 20,
    extra_files: Sequence[FileDescriptor] = (testing_pb2.DESCRIPTOR,),
) -> AsyncIterator[Gateway]:
    settings = ServiceSettings.read("gateway", {
        "NPANEL_DATABASE_URL": database_url, "NPANEL_GATEWAY_LISTEN": "127.0.0.1:0",
        "NPANEL_GATEWAY_METRICS_LISTEN": "127.0.0.1:0", "NPANEL_SHUTDOWN_GRACE": "1"})
    gateway = GatewaySettings(
        http_listen="127.0.0.1:0", backends=dict(backends), rate_limit_ip_per_min=ip_per_min,
        rate_limit_token_per_min=token_per_min, max_body_bytes=max_body, deadline_s=deadline_s,
        flag_wait_s=5.0)
    service = GatewayService(settings, gateway, extra_files)
    registry = CollectorRegistry()
    async with running(service, settings, registry) as handle, \
            grpc.aio.insecure_channel(handle.address) as channel:
        names = {role: f"{role}-{uuid.uuid4().hex[:8]}" for role in ROLES}
        tokens = {role: (await service.tokens.create(names[role], role, 0, "test"))[1] for role in ROLES}
        yield Gateway(service, handle, registry, tokens, names, channel)
