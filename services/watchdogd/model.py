"""Watchdog targets, checks, drivers, policies and incidents: plain values. No I/O.

A target's check, driver and policy are stored as one JSON document (`to_doc` /
`target_from_doc`); this module is the one place that knows their shape and
validates it, for the API, the configuration file and the database alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from npanel.common.errors import InvalidArgument, NotFound
from npanel.common.settings import parse_address

CHECK_KINDS = ("grpc", "tcp", "http", "unix", "exec")
DRIVER_KINDS = ("process", "systemd", "docker", "none")
FAILURE_TYPES = ("crash", "hang", "unhealthy", "start_failure")
SOURCES = ("api", "config", "default")
MAX_REASON = 500
MAX_ACTOR = 128
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_UNIT = re.compile(r"^[A-Za-z0-9:_.@-]{1,200}\.(service|socket|target)$")
_CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class CheckSpec:
    kind: str
    address: str = ""
    service: str = ""
    expect_status: int = 200
    send: str = ""
    expect: str = ""
    command: tuple[str, ...] = ()
    interval_s: float = 6.0
    timeout_s: float = 3.0
    failures: int = 2
    keepalive_s: float = 1.0  # grpc: HTTP/2 ping period and ack deadline; 0 = no pings

    def validate(self) -> None:
        _choice("check.kind", self.kind, CHECK_KINDS)
        _range("check.interval_seconds", self.interval_s, 0.05, 3600)
        _range("check.timeout_seconds", self.timeout_s, 0.05, 600)
        _range("check.failures", self.failures, 1, 100)
        if self.keepalive_s != 0:
            _range("check.keepalive_seconds", self.keepalive_s, 1, 300)
        if self.kind in ("grpc", "tcp"):
            _address("check.address", self.address)
        elif self.kind == "http":
            if not self.address.startswith("http://"):
                raise InvalidArgument("check.address", self.address, "an http:// URL (no https)")
            _range("check.expect_status", self.expect_status, 100, 599)
        elif self.kind == "unix":
            if not self.address.startswith("/"):
                raise InvalidArgument("check.address", self.address, "an absolute Unix socket path")
            if not self.expect:
                raise InvalidArgument("check.expect", self.expect, "the text a healthy reply contains")
        elif not self.command:
            raise InvalidArgument("check.command", list(self.command), "the command to run (argv)")


@dataclass(frozen=True)
class DriverSpec:
    kind: str
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = ""
    log_file: str = ""
    unit: str = ""
    container: str = ""
    stop_timeout_s: float = 3.0

    def validate(self) -> None:
        _choice("driver.kind", self.kind, DRIVER_KINDS)
        _range("driver.stop_timeout_seconds", self.stop_timeout_s, 0.1, 300)
        if self.kind == "process" and not self.command:
            raise InvalidArgument("driver.command", list(self.command), "the command to run (argv)")
        if self.kind == "systemd" and not _UNIT.match(self.unit):
            raise InvalidArgument("driver.unit", self.unit, "a unit name such as npanel-flagd.service")
        if self.kind == "docker" and not _CONTAINER.match(self.container):
            raise InvalidArgument("driver.container", self.container, "a container name or id")
        for path_field, value in (("driver.cwd", self.cwd), ("driver.log_file", self.log_file)):
            if value and not value.startswith("/"):
                raise InvalidArgument(path_field, value, "an absolute path")


@dataclass(frozen=True)
class Policy:
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    max_restarts_per_hour: int = 5
    healthy_reset_s: float = 300.0
    start_timeout_s: float = 15.0

    def validate(self) -> None:
        _range("policy.backoff_initial_seconds", self.backoff_initial_s, 0, 3600)
        _range("policy.backoff_max_seconds", self.backoff_max_s, 0, 3600)
        _range("policy.max_restarts_per_hour", self.max_restarts_per_hour, 1, 1000)
        _range("policy.healthy_reset_seconds", self.healthy_reset_s, 0.1, 86400)
        _range("policy.start_timeout_seconds", self.start_timeout_s, 0.1, 3600)


@dataclass(frozen=True)
class Target:
    name: str
    check: CheckSpec
    driver: DriverSpec
    policy: Policy = Policy()
    source: str = "api"
    paused: bool = False
    updated_at: datetime | None = None

    def validate(self) -> None:
        check_name(self.name)
        _choice("source", self.source, SOURCES)
        self.check.validate()
        self.driver.validate()
        self.policy.validate()

    def spec_doc(self) -> dict[str, Any]:
        """check, driver and policy as the JSON document stored in watchdog_targets.spec."""
        doc = {"check": asdict(self.check), "driver": asdict(self.driver), "policy": asdict(self.policy)}
        doc["driver"]["env"] = dict(self.driver.env)
        return doc


def target_from_doc(name: str, doc: Mapping[str, Any], *, source: str = "api", paused: bool = False,
                    updated_at: datetime | None = None) -> Target:
    """A target from a spec document (database or configuration file), validated.

    Unknown keys are refused by name, so a typo in a configuration file is not
    silently ignored.
    """
    check = _build(CheckSpec, "check", doc.get("check", {}))
    driver = _build(DriverSpec, "driver", doc.get("driver", {"kind": "none"}))
    policy = _build(Policy, "policy", doc.get("policy", {}))
    extra = set(doc) - {"check", "driver", "policy"}
    if extra:
        key = sorted(extra)[0]
        raise InvalidArgument(key, doc[key], "unknown key; use check, driver, policy")
    target = Target(name, check, driver, policy, source, paused, updated_at)
    target.validate()
    return target


def _build(cls: Any, prefix: str, values: Any) -> Any:
    if not isinstance(values, Mapping):
        raise InvalidArgument(prefix, values, "a table of settings")
    known = set(cls.__dataclass_fields__)
    for key in values:
        if key not in known:
            expected = f"unknown; known: {', '.join(sorted(known))}"
            raise InvalidArgument(f"{prefix}.{key}", values[key], expected)
    data = dict(values)
    if "command" in data:
        data["command"] = tuple(str(a) for a in data["command"])
    try:
        return cls(**data)
    except TypeError as exc:  # a required field is missing
        raise InvalidArgument(prefix, dict(values), str(exc)) from exc


@dataclass(frozen=True)
class Incident:
    id: int
    target: str
    detected_at: datetime
    failure_type: str
    evidence: str
    last_log_lines: tuple[str, ...]
    restart_count: int
    recovered_at: datetime | None
    recovery_seconds: float | None
    resolved: bool
    gave_up: bool


@dataclass(frozen=True)
class SavedState:
    """A target's stored counters (watchdog_target_state), in wall-clock time."""

    gave_up: bool
    restarts: tuple[datetime, ...]  # of the last hour, oldest first
    attempt: int


@dataclass(frozen=True)
class IncidentQuery:
    target: str | None
    page_size: int
    before_id: int | None
    unresolved_only: bool = False

    def validate(self) -> None:
        if self.target is not None:
            check_name(self.target)
        _range("page_size", self.page_size, 1, 500)


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidArgument("name", name, "a target name is lowercase letters, digits, _ and - (max 64)")


def check_actor_reason(actor: str, reason: str) -> None:
    if not actor.strip() or len(actor) > MAX_ACTOR:
        raise InvalidArgument("actor", actor, f"who makes the change is required (1..{MAX_ACTOR} chars)")
    if not reason.strip() or len(reason) > MAX_REASON:
        raise InvalidArgument("reason", reason, f"a reason is required (1..{MAX_REASON} chars)")


def target_not_found(name: str) -> NotFound:
    return NotFound("target", name, "`npanel watchdog targets` shows the targets that exist")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidArgument(name, value, f"one of {', '.join(choices)}")


def _range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidArgument(name, value, f"a number from {low:g} to {high:g}")


def _address(name: str, value: str) -> None:
    try:
        parse_address(value)
    except ValueError:
        raise InvalidArgument(name, value, "host:port") from None
