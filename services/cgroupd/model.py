"""Accounts and their limits: plain values and the rules they obey. No I/O.

Limits are a complete desired state (every field decided), because the
reconciler compares the kernel against it file by file; an unset optional
field means the kernel's own default ("max" or 100), not "leave alone".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from npanel.common.errors import InvalidArgument, NotFound

MiB = 1024 * 1024
MIN_MEMORY = 64 * MiB
MIN_PIDS = 10
MAX_WEIGHT = 10000
# Lowercase letter first, then lowercase letters, digits, '_' or '-'; at most 32.
# No '.', so a name can never be an interface file or systemd's user-<uid>.slice.
_ACCOUNT_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_DEVICE_NUMBER = re.compile(r"^(\d+):(\d+)$")
EVENT_KINDS = ("created", "updated", "deleted", "frozen", "thawed", "limit_exceeded", "oom_kill",
               "recovery", "unknown_group")
SEVERITIES = ("info", "warning", "error")
RESOURCES = ("memory", "pids", "cpu", "io", "")


def check_account_id(account_id: str, field_name: str = "account_id") -> str:
    """The id unchanged, or INVALID_ARGUMENT; ids are never rewritten."""
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise InvalidArgument(field_name, account_id,
                              "must start with a lowercase letter, then lowercase letters, digits, "
                              "'_' or '-', at most 32 characters")
    return account_id


def account_not_found(account_id: str) -> NotFound:
    return NotFound("account", account_id, "create it first (npanel accounts create)")


@dataclass(frozen=True)
class IoLimit:
    """Limits for one whole block disk, by device number; 0 = unlimited."""

    device: str  # MAJ:MIN
    rbps: int = 0
    wbps: int = 0
    riops: int = 0
    wiops: int = 0

    @property
    def unlimited(self) -> bool:
        return not (self.rbps or self.wbps or self.riops or self.wiops)


@dataclass(frozen=True)
class Limits:
    cpu_percent: int
    memory_max: int
    pids_max: int
    swap_max: int = 0
    cpu_weight: int | None = None
    memory_high: int | None = None
    io: tuple[IoLimit, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Limits:
        data: dict[str, Any] = json.loads(text)
        data["io"] = tuple(IoLimit(**entry) for entry in data.get("io", ()))
        return cls(**data)


@dataclass(frozen=True)
class LimitsPatch:
    """A partial change; None leaves a field as it is. io entries replace their
    device's entry; an all-zero entry removes it."""

    cpu_percent: int | None = None
    cpu_weight: int | None = None
    memory_max: int | None = None
    memory_high: int | None = None
    swap_max: int | None = None
    pids_max: int | None = None
    io: tuple[IoLimit, ...] = ()

    def is_empty(self) -> bool:
        return self == LimitsPatch()

    def apply(self, base: Limits) -> Limits:
        values = {k: v for k, v in asdict(self).items() if k != "io" and v is not None}
        merged = replace(base, **values)
        if values.get("cpu_weight") == 0:
            merged = replace(merged, cpu_weight=None)
        if values.get("memory_high") == 0:
            merged = replace(merged, memory_high=None)
        if self.io:
            devices = {entry.device: entry for entry in base.io}
            devices.update({entry.device: entry for entry in self.io})
            merged = replace(merged, io=tuple(sorted(
                (e for e in devices.values() if not e.unlimited), key=lambda e: e.device)))
        return merged


def validate(limits: Limits, cpus: int) -> Limits:
    """`limits` unchanged when every field is acceptable, else the first bad one."""
    if not 1 <= limits.cpu_percent <= cpus * 100:
        raise InvalidArgument("cpu_percent", limits.cpu_percent,
                              f"must be from 1 to {cpus * 100} ({cpus} CPUs x 100)")
    if limits.cpu_weight is not None and not 1 <= limits.cpu_weight <= MAX_WEIGHT:
        raise InvalidArgument("cpu_weight", limits.cpu_weight, f"must be from 1 to {MAX_WEIGHT}")
    if limits.memory_max < MIN_MEMORY:
        raise InvalidArgument("memory_max_bytes", limits.memory_max,
                              f"must be at least {MIN_MEMORY} (64 MiB)")
    if limits.memory_high is not None and not MIN_MEMORY <= limits.memory_high <= limits.memory_max:
        raise InvalidArgument("memory_high_bytes", limits.memory_high,
                              f"must be from {MIN_MEMORY} (64 MiB) to memory_max ({limits.memory_max})")
    if limits.swap_max < 0:
        raise InvalidArgument("swap_max_bytes", limits.swap_max, "must be 0 or more")
    if limits.pids_max < MIN_PIDS:
        raise InvalidArgument("pids_max", limits.pids_max, f"must be at least {MIN_PIDS}")
    for entry in limits.io:
        if not _DEVICE_NUMBER.fullmatch(entry.device):
            raise InvalidArgument("io.device", entry.device, "must be resolved to MAJ:MIN first")
        for name in ("rbps", "wbps", "riops", "wiops"):
            if getattr(entry, name) < 0:
                raise InvalidArgument(f"io.{name}", getattr(entry, name), "must be 0 (unlimited) or more")
    return limits


# PHASE5-SPEC.md Task 1.1: defaults, and the packages that override them.
DEFAULT_LIMITS = Limits(cpu_percent=50, memory_max=512 * MiB, swap_max=128 * MiB, pids_max=256)
DEFAULT_PACKAGES: Mapping[str, Limits] = {
    "default": DEFAULT_LIMITS,
    "basic": replace(DEFAULT_LIMITS, cpu_percent=25, memory_max=256 * MiB, swap_max=64 * MiB),
    "pro": replace(DEFAULT_LIMITS, cpu_percent=100, memory_max=1024 * MiB, swap_max=256 * MiB),
    "enterprise": replace(DEFAULT_LIMITS, cpu_percent=200, memory_max=2048 * MiB, swap_max=512 * MiB),
}


def parse_packages(text: str) -> dict[str, Limits]:
    """Packages from configuration (NPANEL_CGROUP_PACKAGES, JSON): a mapping of
    package name to fields overriding the defaults, e.g.
    {"basic": {"cpu_percent": 25, "memory_max": 268435456}}. Raises ValueError."""
    packages = dict(DEFAULT_PACKAGES)
    if not text:
        return packages
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object of package name -> limits")
    allowed = {"cpu_percent", "cpu_weight", "memory_max", "memory_high", "swap_max", "pids_max"}
    for name, fields in data.items():
        if not isinstance(fields, dict) or not set(fields) <= allowed:
            raise ValueError(f"package {name!r}: expected an object with keys from {sorted(allowed)}")
        packages[name] = replace(packages.get(name, DEFAULT_LIMITS), **fields)
    return packages


def package_limits(packages: Mapping[str, Limits], name: str) -> Limits:
    chosen = name or "default"
    if chosen not in packages:
        raise InvalidArgument("package", name, f"must be one of {', '.join(sorted(packages))}")
    return packages[chosen]


@dataclass(frozen=True)
class Account:
    account_id: str
    package: str
    limits: Limits
    frozen: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Event:
    account_id: str
    kind: str
    severity: str
    message: str
    resource: str = ""
    id: int = 0
    created_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def check_actor(actor: str) -> str:
    if not actor or len(actor) > 128:
        raise InvalidArgument("actor", actor, "say who makes the change (1..128 characters)")
    return actor
