"""cgroupd's operations: validation, the flag gate, the store and the kernel.

No grpc here (servicer.py converts). Kernel work runs in a worker thread; the
database transaction of a change stays open around it, so a kernel failure
rolls the change back and a database failure is undone in the kernel.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Protocol

from npanel.common.errors import FailedPrecondition, InvalidArgument

from . import events as limit_events
from .bus import EventBus
from .groups import Cgroups
from .model import (
    Account,
    Event,
    Limits,
    LimitsPatch,
    account_not_found,
    check_account_id,
    check_actor,
    package_limits,
    validate,
)
from .reconcile import Report, reconcile
from .sampler import read_stats
from .stats import GroupStats
from .store import CgroupStore

log = logging.getLogger(__name__)
FLAG = "cgroups_isolation"


class Gate(Protocol):
    def is_enabled(self, flag: str, account_id: str | None = None) -> bool: ...


class Accounts:
    def __init__(self, store: CgroupStore, groups: Cgroups, gate: Gate, packages: Mapping[str, Limits],
                 *, cpus: int | None = None, timeout_s: float = 10.0) -> None:
        self.store = store
        self.groups = groups
        self.gate = gate
        self.packages = packages
        self.cpus = cpus or os.cpu_count() or 1
        self.timeout_s = timeout_s
        self.bus = EventBus()
        self._counters: dict[str, dict[str, int]] = {}
        self._hot: dict[str, frozenset[str]] = {}

    @property
    def simulated(self) -> bool:
        return self.groups.fs.simulated

    def _require_flag(self) -> None:
        if not self.gate.is_enabled(FLAG):
            raise FailedPrecondition(f"feature flag {FLAG} is disabled: account cgroups cannot be changed "
                                     f"(enable it with `npanel flags enable {FLAG}`)")

    async def create(self, account_id: str, package: str, patch: LimitsPatch, actor: str) -> Account:
        check_account_id(account_id)
        check_actor(actor)
        limits = validate(patch.apply(package_limits(self.packages, package)), self.cpus)
        self._require_flag()

        created: list[bool] = []

        async def kernel(_: Account | None) -> None:
            if await asyncio.to_thread(self.groups.exists, account_id):
                raise FailedPrecondition(f"a group {self.groups.path(account_id)} already exists without a "
                                         "configuration (an unknown group); remove it or pick another id")
            await asyncio.to_thread(self.groups.create, account_id, limits)
            created.append(True)

        try:
            account, event = await self.store.create(account_id, package or "default", limits, actor, kernel)
        except BaseException:
            if created:  # the kernel part succeeded, the transaction did not
                await self._undo_create(account_id)
            raise
        self._counters[account_id] = {}
        self.bus.publish([event])
        return account

    async def _undo_create(self, account_id: str) -> None:
        try:
            await asyncio.to_thread(self.groups.delete, account_id, self.timeout_s)
        except Exception:  # the original error is what the caller must see
            log.exception("could not undo the group of failed create %s", account_id)

    async def update(self, account_id: str, patch: LimitsPatch, actor: str) -> Account:
        check_account_id(account_id)
        check_actor(actor)
        if patch.is_empty():
            raise InvalidArgument("limits", "{}", "set at least one limit to change")
        base = await self.store.get(account_id)
        limits = validate(patch.apply(base.limits), self.cpus)
        self._require_flag()

        async def kernel(before: Account | None) -> None:
            assert before is not None
            try:
                await asyncio.to_thread(self.groups.apply, account_id, limits, before.limits)
            except BaseException:
                await asyncio.to_thread(self.groups.apply, account_id, before.limits, limits)
                raise

        account, event = await self.store.change(account_id, actor, "updated", kernel, limits=limits)
        self.bus.publish([event])
        return account

    async def delete(self, account_id: str, actor: str) -> int:
        check_account_id(account_id)
        check_actor(actor)
        self._require_flag()

        async def kernel(_: Account | None) -> int:
            return await asyncio.to_thread(self.groups.delete, account_id, self.timeout_s)

        event = await self.store.delete(account_id, actor, kernel)
        self._counters.pop(account_id, None)
        self._hot.pop(account_id, None)
        self.bus.publish([event])
        killed = event.details.get("killed", 0)
        return killed if isinstance(killed, int) else 0

    async def set_frozen(self, account_id: str, frozen: bool, actor: str) -> Account:
        check_account_id(account_id)
        check_actor(actor)
        self._require_flag()

        async def kernel(before: Account | None) -> None:
            await asyncio.to_thread(self.groups.set_frozen, account_id, frozen, self.timeout_s)

        kind = "frozen" if frozen else "thawed"
        account, event = await self.store.change(account_id, actor, kind, kernel, frozen=frozen)
        self.bus.publish([event])
        return account

    async def move(self, account_id: str, pids: Sequence[int], descendants: bool, actor: str
                   ) -> tuple[list[int], list[int]]:
        check_account_id(account_id)
        check_actor(actor)
        if not pids:
            raise InvalidArgument("pids", [], "give at least one PID")
        for pid in pids:
            if pid <= 1:
                raise InvalidArgument("pids", pid, "must be a process id greater than 1")
        self._require_flag()
        await self.store.get(account_id)
        moved, vanished = await asyncio.to_thread(self.groups.move, account_id, pids, descendants)
        await self.store.audit_only(account_id, actor, "moved", {"moved": moved, "vanished": vanished})
        return moved, vanished

    async def stats(self, account_ids: Sequence[str]) -> list[GroupStats]:
        for account_id in account_ids:
            check_account_id(account_id, "account_ids")
        known = {a.account_id for a in await self.store.list_accounts()}
        for account_id in account_ids:
            if account_id not in known:
                raise account_not_found(account_id)
        wanted = list(account_ids) or sorted(known)
        return await asyncio.to_thread(self._read_all, wanted)

    def _read_all(self, account_ids: Sequence[str]) -> list[GroupStats]:
        found = []
        for account_id in account_ids:
            group = self.groups.path(account_id)
            if self.groups.fs.exists(group):
                found.append(read_stats(self.groups.fs, group, account_id))
        return found

    async def reconcile(self, limit_s: float = 60.0) -> Report | None:
        """One pass; None while the flag is off (existing groups are left as they are)."""
        if not self.gate.is_enabled(FLAG):
            log.info("reconciler paused: feature flag %s is disabled", FLAG)
            return None
        accounts = await self.store.list_accounts()
        report = await asyncio.to_thread(reconcile, self.groups, accounts, limit_s=limit_s,
                                         progress=lambda r: log.info("%s", r.summary()))
        if report.unknown:
            log.warning("groups under %s that no account owns (left alone): %s", self.groups.root,
                        ", ".join(report.unknown))
        return report

    async def sample_events(self) -> list[Event]:
        """Read every group's counters, store and publish the events the deltas show."""
        accounts = [a.account_id for a in await self.store.list_accounts()]
        samples = await asyncio.to_thread(self._read_all, accounts)
        found: list[Event] = []
        for sample in samples:
            counters = sample.counters()
            before = self._counters.get(sample.account_id)
            self._counters[sample.account_id] = counters
            if before is None:
                continue  # first sight after a restart: a baseline, not a hit
            new, self._hot[sample.account_id] = limit_events.derive(
                sample.account_id, before, counters, self._hot.get(sample.account_id, frozenset()))
            found += new
        stored = await self.store.add_events(found)
        self.bus.publish(stored)
        return stored
