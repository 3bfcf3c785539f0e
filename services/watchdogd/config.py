"""Targets from the configuration file (TOML) and the platform's default targets.

The file (NPANEL_WATCHDOGD_TARGETS_FILE) has one table per target; keys are
those of npanel.watchdogd.model (CheckSpec, DriverSpec, Policy):

    [targets.flagd]
    check = { kind = "grpc", address = "127.0.0.1:50051", interval_s = 6, timeout_s = 3 }
    driver = { kind = "systemd", unit = "npanel-flagd.service" }
    policy = { max_restarts_per_hour = 5 }
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from npanel.common.errors import InvalidArgument
from npanel.common.settings import DEFAULT_LISTEN, SERVICE_PORTS

from .model import CheckSpec, DriverSpec, Target, target_from_doc


class ConfigError(ValueError):
    """The targets file cannot be used; the message names the file and the problem."""


def load_file(path: str) -> list[Target]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"targets file {path}: {exc}") from exc
    return parse(data, path)


def parse(data: dict[str, object], origin: str) -> list[Target]:
    tables = data.get("targets", {})
    if not isinstance(tables, dict) or set(data) - {"targets"}:
        raise ConfigError(f"{origin}: expected only [targets.<name>] tables")
    targets = []
    for name, doc in tables.items():
        if not isinstance(doc, dict):
            raise ConfigError(f"{origin}: targets.{name} must be a table")
        try:
            targets.append(target_from_doc(name, doc, source="config"))
        except InvalidArgument as exc:
            raise ConfigError(f"{origin}: targets.{name}: {exc}") from exc
    return targets


def default_targets(kind: str) -> list[Target]:
    """The platform's own services, watched through systemd (kind "systemd") or not at all."""
    if kind != "systemd":
        return []
    return [
        Target(name, CheckSpec("grpc", address=_address(name)),
               DriverSpec("systemd", unit=f"npanel-{name}.service"), source="default")
        for name in ("gateway", "flagd", "cgroupd", "ratelimitd")
    ]


def _address(name: str) -> str:
    """Where the service listens by default (cgroupd: its Unix socket)."""
    return DEFAULT_LISTEN.get(name, f"127.0.0.1:{SERVICE_PORTS[name][0]}")
