"""Typed, validated settings read once from NPANEL_* environment variables.

No other module reads the environment. Every problem found is reported at once,
each naming the variable, the value and what is expected, so that an operator
fixes a unit file in one pass instead of one restart per typo.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

# Fixed ports of ARCHITECTURE.md: (gRPC, Prometheus /metrics).
SERVICE_PORTS: Mapping[str, tuple[int, int]] = {
    "gateway": (50050, 9101),
    "flagd": (50051, 9102),
    "cgroupd": (50052, 9103),
    "watchdogd": (50053, 9104),
    "ratelimitd": (50054, 9105),
}
# cgroupd can move and kill any process: by default it listens only on a Unix
# socket (mode 0600, owned by NPANEL_CGROUPD_SOCKET_OWNER, the gateway's user).
CGROUPD_SOCKET = "unix:/run/npanel-cgroupd/cgroupd.sock"
DEFAULT_LISTEN: Mapping[str, str] = {"cgroupd": CGROUPD_SOCKET}
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "text")


class SettingsError(ValueError):
    """One or more NPANEL_* variables are invalid; the message lists each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration:\n{lines}\nFix these variables and start again.")


class Env:
    """Reads variables from a mapping and collects every problem found."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.problems: list[str] = []

    def _get(self, name: str, default: T, parse: Callable[[str], T], expected: str) -> T:
        raw = self._environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError:
            self.problems.append(f"{name}={raw!r}: expected {expected}")
            return default

    def text(self, name: str, default: str) -> str:
        return self._get(name, default, lambda v: v, "a string")

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        def parse(v: str) -> int:
            n = int(v)
            if not low <= n <= high:
                raise ValueError(v)
            return n

        return self._get(name, default, parse, f"an integer from {low} to {high}")

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        def parse(v: str) -> float:
            x = float(v)
            if not low <= x <= high:
                raise ValueError(v)
            return x

        return self._get(name, default, parse, f"a number from {low} to {high}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        def parse(v: str) -> str:
            if v.lower() not in choices:
                raise ValueError(v)
            return v.lower()

        return self._get(name, default, parse, f"one of {', '.join(choices)}")

    def address(self, name: str, default: str) -> str:
        return self._get(name, default, parse_address, "host:port, [v6]:port or unix:/absolute/path")

    def database_url(self, name: str, default: str) -> str:
        return self._get(name, default, parse_database_url, "postgresql://user:password@host:port/db")

    def check(self) -> None:
        if self.problems:
            raise SettingsError(self.problems)


def parse_address(value: str) -> str:
    """Validate a gRPC/HTTP listen address and return it unchanged."""
    if value.startswith("unix:"):
        if not value[5:].startswith("/"):
            raise ValueError(value)
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(value)
    return value


def parse_database_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ValueError(value)
    return value


def redact_url(url: str) -> str:
    """The URL with its password replaced, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@dataclass(frozen=True)
class DatabaseSettings:
    url: str
    pool_min: int
    pool_max: int
    # How long start-up waits for PostgreSQL to accept connections.
    connect_timeout_s: float

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> DatabaseSettings:
        env = Env(os.environ if environ is None else environ)
        settings = cls.read(env)
        env.check()
        return settings

    @classmethod
    def read(cls, env: Env) -> DatabaseSettings:
        return cls(
            url=env.database_url("NPANEL_DATABASE_URL", "postgresql://npanel@127.0.0.1:5432/npanel"),
            pool_min=env.integer("NPANEL_DATABASE_POOL_MIN", 1, low=0, high=100),
            pool_max=env.integer("NPANEL_DATABASE_POOL_MAX", 10, low=1, high=500),
            connect_timeout_s=env.number("NPANEL_DATABASE_CONNECT_TIMEOUT", 30.0, low=0.1, high=3600),
        )


@dataclass(frozen=True)
class CliSettings:
    """Where the operator commands send their calls."""

    flagd_address: str
    watchdogd_address: str = "127.0.0.1:50053"
    cgroupd_address: str = CGROUPD_SOCKET
    gateway_address: str = "127.0.0.1:50050"
    token: str = ""
    token_file: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> CliSettings:
        env = Env(os.environ if environ is None else environ)
        settings = cls(flagd_address=env.address("NPANEL_FLAGD_ADDRESS", "127.0.0.1:50051"),
                       watchdogd_address=env.address("NPANEL_WATCHDOGD_ADDRESS", "127.0.0.1:50053"),
                       cgroupd_address=env.address("NPANEL_CGROUPD_ADDRESS", CGROUPD_SOCKET),
                       gateway_address=env.address("NPANEL_GATEWAY_ADDRESS", "127.0.0.1:50050"),
                       token=env.text("NPANEL_TOKEN", ""),
                       token_file=env.text("NPANEL_TOKEN_FILE", ""))
        env.check()
        return settings


WATCHDOG_DEFAULT_TARGETS = ("none", "systemd")


@dataclass(frozen=True)
class WatchdogdSettings:
    """watchdogd's own settings, besides ServiceSettings.

    NOTIFY_SOCKET and WATCHDOG_USEC are systemd's names for the sd_notify socket
    and the WatchdogSec= interval; they are set only when run under systemd.
    """

    flagd_address: str
    targets_file: str
    default_targets: str
    docker_socket: str
    systemctl: str
    notify_socket: str
    watchdog_usec: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> WatchdogdSettings:
        env = Env(os.environ if environ is None else environ)
        settings = cls(
            flagd_address=env.address("NPANEL_FLAGD_ADDRESS", "127.0.0.1:50051"),
            targets_file=env.text("NPANEL_WATCHDOGD_TARGETS_FILE", ""),
            default_targets=env.choice("NPANEL_WATCHDOGD_DEFAULT_TARGETS", "systemd",
                                       WATCHDOG_DEFAULT_TARGETS),
            docker_socket=env.text("NPANEL_DOCKER_SOCKET", "/var/run/docker.sock"),
            systemctl=env.text("NPANEL_WATCHDOGD_SYSTEMCTL", "systemctl"),
            notify_socket=env.text("NOTIFY_SOCKET", ""),
            watchdog_usec=env.integer("WATCHDOG_USEC", 0, low=0, high=2**63 - 1),
        )
        env.check()
        return settings


@dataclass(frozen=True)
class GatewaySettings:
    http_listen: str
    backends: Mapping[str, str]  # backend name -> gRPC address
    rate_limit_ip_per_min: int
    rate_limit_token_per_min: int
    max_body_bytes: int
    deadline_s: float
    flag_wait_s: float  # how long start-up waits for flagd's first snapshot

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> GatewaySettings:
        env = Env(os.environ if environ is None else environ)
        backends = {name: env.address(f"NPANEL_{name.upper()}_ADDRESS",
                                      DEFAULT_LISTEN.get(name, f"127.0.0.1:{ports[0]}"))
                    for name, ports in SERVICE_PORTS.items() if name != "gateway"}
        settings = cls(
            http_listen=env.address("NPANEL_GATEWAY_HTTP_LISTEN", "127.0.0.1:8080"),
            backends=backends,
            rate_limit_ip_per_min=env.integer("NPANEL_GATEWAY_RATE_LIMIT_IP", 100, low=1, high=10**7),
            rate_limit_token_per_min=env.integer("NPANEL_GATEWAY_RATE_LIMIT_TOKEN", 1000, low=1,
                                                 high=10**7),
            max_body_bytes=env.integer("NPANEL_GATEWAY_MAX_BODY", 1 << 20, low=1024, high=1 << 30),
            deadline_s=env.number("NPANEL_GATEWAY_DEADLINE", 5.0, low=0.1, high=300),
            flag_wait_s=env.number("NPANEL_GATEWAY_FLAG_WAIT", 5.0, low=0, high=300),
        )
        env.check()
        return settings


@dataclass(frozen=True)
class ServiceSettings:
    """What every service needs: where to listen, the database, logging, shutdown."""

    name: str
    listen: str
    metrics_listen: str
    database: DatabaseSettings
    log_level: str
    log_format: str
    shutdown_grace_s: float

    @classmethod
    def read(cls, name: str, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        env = Env(os.environ if environ is None else environ)
        settings = cls.from_env(name, env)
        env.check()
        return settings

    @classmethod
    def from_env(cls, name: str, env: Env) -> ServiceSettings:
        grpc_port, metrics_port = SERVICE_PORTS.get(name, (0, 0))
        prefix = f"NPANEL_{name.upper()}"
        return cls(
            name=name,
            listen=env.address(f"{prefix}_LISTEN", DEFAULT_LISTEN.get(name, f"127.0.0.1:{grpc_port}")),
            metrics_listen=env.address(f"{prefix}_METRICS_LISTEN", f"127.0.0.1:{metrics_port}"),
            database=DatabaseSettings.read(env),
            log_level=env.choice("NPANEL_LOG_LEVEL", "info", LOG_LEVELS),
            log_format=env.choice("NPANEL_LOG_FORMAT", "json", LOG_FORMATS),
            shutdown_grace_s=env.number("NPANEL_SHUTDOWN_GRACE", 10.0, low=0, high=300),
        )


CGROUPD_MODES = ("kernel", "simulation")


@dataclass(frozen=True)
class CgroupdSettings:
    """cgroupd's own settings, besides ServiceSettings("cgroupd")."""

    # "kernel" refuses to start unless the root is on a cgroup2 mount;
    # "simulation" (asked for by name only) runs over a plain directory tree.
    mode: str
    root: str
    flagd_address: str
    socket_owner: str  # who may connect to the Unix socket besides root ("": nobody)
    reconcile_interval_s: float
    event_interval_s: float
    # JSON package overrides (see npanel.cgroupd.model.parse_packages).
    packages_json: str
    operation_timeout_s: float

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> CgroupdSettings:
        env = Env(os.environ if environ is None else environ)
        mode = env.choice("NPANEL_CGROUPD_MODE", "kernel", CGROUPD_MODES)
        default_root = ("/sys/fs/cgroup/npanel.slice" if mode == "kernel"
                        else ".npanel/cgroup-sim/npanel.slice")
        settings = cls(
            mode=mode,
            root=env.text("NPANEL_CGROUP_ROOT", default_root),
            flagd_address=env.address("NPANEL_FLAGD_ADDRESS", "127.0.0.1:50051"),
            socket_owner=env.text("NPANEL_CGROUPD_SOCKET_OWNER", ""),
            reconcile_interval_s=env.number("NPANEL_CGROUPD_RECONCILE_INTERVAL", 60.0, low=1, high=86400),
            event_interval_s=env.number("NPANEL_CGROUPD_EVENT_INTERVAL", 2.0, low=0.05, high=3600),
            packages_json=env.text("NPANEL_CGROUP_PACKAGES", ""),
            operation_timeout_s=env.number("NPANEL_CGROUPD_OPERATION_TIMEOUT", 10.0, low=0.1, high=600),
        )
        env.check()
        return settings
