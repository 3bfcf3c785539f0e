"""cgroupd wiring: the cgroup filesystem (kernel or the named simulation), the
flag gate, the store, the reconciler and event loops, servicer and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import asyncpg
import grpc
from prometheus_client import CollectorRegistry

from npanel.common.db import open_pool
from npanel.common.flagclient import FlagClient
from npanel.common.settings import CgroupdSettings, ServiceSettings, SettingsError

from .accounts import Accounts, Gate
from .fs import CgroupFs, KernelFs, SimulatedFs, find_cgroup2_mount
from .groups import Cgroups
from .metrics import CgroupdMetrics
from .model import parse_packages
from .servicer import CgroupServicer
from .store import CgroupStore
from .v1 import cgroupd_pb2, cgroupd_pb2_grpc

log = logging.getLogger(__name__)
FLAG_WAIT_S = 5.0


def open_fs(settings: CgroupdSettings, mountinfo: Path = Path("/proc/self/mountinfo")
            ) -> tuple[CgroupFs, Path]:
    """The filesystem and root; refuses a non-cgroup2 root unless simulation is asked for."""
    root = Path(settings.root).absolute()
    if settings.mode == "simulation":
        log.warning("SIMULATION MODE: cgroups are simulated in the directory %s; no limit is enforced, "
                    "no process is confined. Never use this in production.", root)
        return SimulatedFs(root.parent), root
    mount = find_cgroup2_mount(root, mountinfo.read_text())
    if mount is None:
        raise SettingsError([f"NPANEL_CGROUP_ROOT={settings.root!r}: not on a cgroup2 mount; run on a "
                             "host with cgroup v2, or set NPANEL_CGROUPD_MODE=simulation for a "
                             "development stack that enforces nothing"])
    return KernelFs(mount), root


class CgroupdService:
    def __init__(self, settings: ServiceSettings, cgroupd: CgroupdSettings, *,
                 gate: Gate | None = None, fs: tuple[CgroupFs, Path] | None = None) -> None:
        self._settings = settings
        self.config = cgroupd
        try:
            packages = parse_packages(cgroupd.packages_json)
        except (ValueError, TypeError) as exc:
            raise SettingsError([f"NPANEL_CGROUP_PACKAGES: {exc}"]) from exc
        cgfs, root = fs if fs is not None else open_fs(cgroupd)
        self._flags: FlagClient | None = None
        self._gate = gate
        self.store = CgroupStore()
        self.groups = Cgroups(cgfs, root)
        self.accounts = Accounts(self.store, self.groups, _LateGate(self), packages,
                                 timeout_s=cgroupd.operation_timeout_s)
        self._known: list[str] = []
        self._pool: asyncpg.Pool | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def grpc_service_names(self) -> Sequence[str]:
        return (cgroupd_pb2.DESCRIPTOR.services_by_name["CgroupService"].full_name,)

    def register(self, server: grpc.aio.Server, registry: CollectorRegistry) -> None:
        self.metrics = CgroupdMetrics(registry, self.groups, lambda: self._known)
        if self._gate is None:
            self._flags = FlagClient(self.config.flagd_address, registry)
        cgroupd_pb2_grpc.add_CgroupServiceServicer_to_server(CgroupServicer(self.accounts), server)

    def gate(self) -> Gate:
        gate = self._gate or self._flags
        assert gate is not None, "register() runs before any call"
        return gate

    async def start(self) -> None:
        if self._settings.listen.startswith("unix:"):
            socket_path = Path(self._settings.listen[5:])
            await asyncio.to_thread(restrict_socket, socket_path, self.config.socket_owner)
        if self._flags is not None:
            self._flags.start()
            if not await self._flags.wait_ready(FLAG_WAIT_S):
                log.warning("no flags from flagd at %s yet: cgroups_isolation counts as disabled until "
                            "they arrive", self.config.flagd_address)
        self._pool = await open_pool(self._settings.database, "npanel-cgroupd")
        self.store.attach(self._pool)
        self._known = [a.account_id for a in await self.store.list_accounts()]
        self._tasks = [
            asyncio.create_task(self._every(self.config.reconcile_interval_s, self.reconcile),
                                name="reconcile"),
            asyncio.create_task(self._every(self.config.event_interval_s, self.sample), name="events"),
        ]

    async def reconcile(self) -> None:
        report = await self.accounts.reconcile()
        if report is not None:
            self.metrics.reconcile_seconds.set(report.elapsed_s)
            self.metrics.unknown_groups.set(len(report.unknown))
            self.metrics.reconcile_drift.labels("recreated").inc(len(report.recreated))
            self.metrics.reconcile_drift.labels("rewritten").inc(len(report.rewritten))

    async def sample(self) -> None:
        self._known = [a.account_id for a in await self.store.list_accounts()]
        for event in await self.accounts.sample_events():
            self.metrics.events.labels(event.kind, event.resource).inc()

    @staticmethod
    async def _every(interval_s: float, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await step()
            except Exception:  # a failed pass is logged and retried on the next tick
                log.exception("background pass failed; retrying in %g s", interval_s)
            await asyncio.sleep(interval_s)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._flags is not None:
            await self._flags.close()
        if self._pool is not None:
            await self._pool.close()


class _LateGate:
    """The flag client exists only after register(); calls come later still."""

    def __init__(self, service: CgroupdService) -> None:
        self._service = service

    def is_enabled(self, flag: str, account_id: str | None = None) -> bool:
        return self._service.gate().is_enabled(flag, account_id)


def build(settings: ServiceSettings) -> CgroupdService:
    return CgroupdService(settings, CgroupdSettings.from_environ())


def restrict_socket(path: Path, owner: str) -> None:
    """Whoever reaches this socket can move and kill processes: mode 0600, owned by
    root or by NPANEL_CGROUPD_SOCKET_OWNER (the gateway's user) when set."""
    path.chmod(0o600)
    if owner:
        try:
            account = pwd.getpwnam(owner)
        except KeyError as exc:
            raise SettingsError([f"NPANEL_CGROUPD_SOCKET_OWNER={owner!r}: no such user"]) from exc
        os.chown(path, account.pw_uid, account.pw_gid)
