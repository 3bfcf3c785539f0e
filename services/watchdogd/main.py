"""watchdogd wiring: store, flag client, supervisor, servicer, sd_notify on the shared bootstrap.

Start-up order: database (migrated), targets from the configuration file and the
defaults written to it (audited as actor "watchdogd"), the flag client, then
every stored target supervised, then READY=1 to systemd.

The agent_watchdog flag decides whether failures lead to restarts. It is read
from the flag client's memory: while flagd is unreachable the last value seen is
used; if flagd was never reached since start, the flag counts as off (restarts
are suppressed, checks and incidents go on, `npanel_agent_watchdog_enabled` is
0). A process target's first start is supervision, not recovery, so it happens
whatever the flag says.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg
import grpc
from prometheus_client import CollectorRegistry

from npanel.common.db import open_pool
from npanel.common.flagclient import FlagClient
from npanel.common.settings import ServiceSettings, WatchdogdSettings

from . import config
from .metrics import WatchdogMetrics
from .model import Target
from .notify import Notifier
from .servicer import WatchdogServicer
from .store import WatchdogStore
from .supervisor import Supervisor
from .v1 import watchdogd_pb2, watchdogd_pb2_grpc

log = logging.getLogger(__name__)
FLAG = "agent_watchdog"
FLAG_WAIT_S = 2.0
SYSTEM_ACTOR = "watchdogd"


class WatchdogdService:
    def __init__(self, settings: ServiceSettings, own: WatchdogdSettings) -> None:
        self._settings = settings
        self._own = own
        self.store = WatchdogStore()
        self._pool: asyncpg.Pool | None = None
        self.notifier = Notifier(own.notify_socket, own.watchdog_usec)
        self.flags: FlagClient | None = None
        self.supervisor: Supervisor | None = None

    @property
    def grpc_service_names(self) -> Sequence[str]:
        return (watchdogd_pb2.DESCRIPTOR.services_by_name["WatchdogService"].full_name,)

    def register(self, server: grpc.aio.Server, registry: CollectorRegistry) -> None:
        self.metrics = WatchdogMetrics(registry)
        self.metrics.flag_enabled.set_function(lambda: 1.0 if self.restarts_enabled() else 0.0)
        self.flags = FlagClient(self._own.flagd_address, registry)
        self.supervisor = Supervisor(self.store, self.metrics, self.restarts_enabled,
                                     systemctl=self._own.systemctl, docker_socket=self._own.docker_socket)
        watchdogd_pb2_grpc.add_WatchdogServiceServicer_to_server(
            WatchdogServicer(self.store, self.supervisor), server)

    def restarts_enabled(self) -> bool:
        return self.flags is not None and self.flags.is_enabled(FLAG)

    async def start(self) -> None:
        assert self.flags is not None and self.supervisor is not None, "register() comes first"
        own = config.default_targets(self._own.default_targets)
        if self._own.targets_file:
            own += config.load_file(self._own.targets_file)
        self._pool = await open_pool(self._settings.database, "npanel-watchdogd")
        self.store.attach(self._pool)
        await self._store_own_targets(own)
        self.flags.start()
        if not await self.flags.wait_ready(FLAG_WAIT_S):
            log.warning("flagd at %s not reachable yet: %s counts as off until it is",
                        self._own.flagd_address, FLAG)
        supervisor = self.supervisor

        async def apply_stored() -> None:  # serialised with API changes arriving meanwhile
            for target in await self.store.list_targets():
                await supervisor.apply(target)

        await supervisor.change(apply_stored)
        log.info("watching %d target(s); restarts %s", len(self.supervisor.names()),
                 "enabled" if self.restarts_enabled() else f"suppressed ({FLAG} is off)")
        self.notifier.ready()

    async def _store_own_targets(self, targets: list[Target]) -> None:
        origin = self._own.targets_file or "defaults"
        for target in targets:
            if await self.store.put_target(target, SYSTEM_ACTOR, f"loaded from {origin}") is not None:
                log.info("target %s stored from %s", target.name, origin)

    async def stop(self) -> None:
        await self.notifier.stopping()
        if self.supervisor is not None:
            await self.supervisor.close()
        if self.flags is not None:
            await self.flags.close()
        if self._pool is not None:
            await self._pool.close()


def build(settings: ServiceSettings) -> WatchdogdService:
    return WatchdogdService(settings, WatchdogdSettings.from_environ())
