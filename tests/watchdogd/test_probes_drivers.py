"""Checks against real sockets, the process driver with real children, sd_notify over a real socket.

No PostgreSQL is needed; these are integration tests because they do real I/O.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from npanel.watchdogd.checks import make_probe
from npanel.watchdogd.drivers import ProcessDriver, exit_text
from npanel.watchdogd.model import CheckSpec, DriverSpec
from npanel.watchdogd.notify import Notifier
from tests.support.waiting import eventually
from tests.watchdogd.support import free_port

pytestmark = pytest.mark.integration


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = await reader.readline()
    status = b"200 OK" if b" /ok " in line else b"503 Service Unavailable"
    writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    writer.close()


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # never answers; returns when the client leaves
    writer.close()


@pytest_asyncio.fixture
async def http_server() -> AsyncIterator[int]:
    server = await asyncio.start_server(_http, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.mark.asyncio
async def test_tcp_check_tells_a_crash_from_health(http_server: int) -> None:
    assert (await make_probe(CheckSpec("tcp", address=f"127.0.0.1:{http_server}")).check()).ok
    down = await make_probe(CheckSpec("tcp", address=f"127.0.0.1:{free_port()}")).check()
    assert not down.ok and down.failure_type == "crash"


@pytest.mark.asyncio
async def test_http_check_compares_the_status(http_server: int) -> None:
    ok = await make_probe(CheckSpec("http", address=f"http://127.0.0.1:{http_server}/ok")).check()
    assert ok.ok
    bad = await make_probe(CheckSpec("http", address=f"http://127.0.0.1:{http_server}/bad")).check()
    assert not bad.ok and bad.failure_type == "unhealthy" and "503" in bad.evidence


@pytest.mark.asyncio
async def test_unix_check_sends_and_expects_and_its_deadline_catches_a_hang(tmp_path: Path) -> None:
    async def pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if (await reader.readline()) == b"PING\n":
            writer.write(b"PONG\n")
        writer.close()

    path = str(tmp_path / "s.sock")
    async with await asyncio.start_unix_server(pong, path):
        assert (await make_probe(CheckSpec("unix", address=path, send="PING\n", expect="PONG")).check()).ok
        wrong = await make_probe(CheckSpec("unix", address=path, send="HI\n", expect="PONG")).check()
        assert wrong.failure_type == "unhealthy"
    hung_path = str(tmp_path / "h.sock")
    async with await asyncio.start_unix_server(_hang, hung_path):
        spec = CheckSpec("unix", address=hung_path, send="PING\n", expect="PONG", timeout_s=0.2)
        hung = await make_probe(spec).check()
        assert hung.failure_type == "hang" and 0.2 <= hung.latency_s < 1
    gone = await make_probe(CheckSpec("unix", address=str(tmp_path / "none"), expect="x")).check()
    assert gone.failure_type == "crash"


@pytest.mark.asyncio
async def test_exec_check_uses_the_exit_status_and_kills_on_the_deadline() -> None:
    assert (await make_probe(CheckSpec("exec", command=("true",))).check()).ok
    failed = await make_probe(CheckSpec("exec", command=("sh", "-c", "echo sick; exit 2"))).check()
    assert failed.failure_type == "unhealthy" and "exit status 2: sick" in failed.evidence
    started = time.monotonic()
    hung = await make_probe(CheckSpec("exec", command=("sleep", "30"), timeout_s=0.2)).check()
    assert hung.failure_type == "hang" and time.monotonic() - started < 2


@pytest.mark.asyncio
async def test_process_driver_keeps_the_last_100_lines_and_reports_the_exit(tmp_path: Path) -> None:
    exited: asyncio.Queue[int] = asyncio.Queue()
    log_file = tmp_path / "child.log"
    spec = DriverSpec("process", command=(sys.executable, "-c", "for i in range(150): print(i)"),
                      log_file=str(log_file))
    driver = ProcessDriver(spec, exited.put_nowait)
    await driver.start()
    assert await asyncio.wait_for(exited.get(), 10) == 0
    lines = await driver.last_logs()
    assert len(lines) == 100 and lines[0] == "51" and lines[-1] == exit_text(0).join(["[watchdogd] ", ""])
    await driver.stop()
    driver.close_log()
    assert log_file.read_text().splitlines()[0] == "0"


@pytest.mark.asyncio
async def test_process_driver_stop_is_graceful_then_bounded_then_kills() -> None:
    exited: list[int] = []
    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('up', flush=True); time.sleep(60)")
    driver = ProcessDriver(DriverSpec("process", command=(sys.executable, "-c", stubborn),
                                      stop_timeout_s=0.5), exited.append)
    await driver.start()
    assert await eventually(lambda: "up" in driver.lines, 10)  # its SIGTERM handler is set
    started = time.monotonic()
    await driver.stop()
    assert 0.5 <= time.monotonic() - started < 5
    assert driver.pid == 0 and exited == []  # its own stop is not reported as a crash
    assert any("SIGKILL" in line for line in await driver.last_logs())


@pytest.mark.asyncio
async def test_sd_notify_sends_ready_watchdog_pings_and_stopping(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.setblocking(False)
        loop = asyncio.get_running_loop()
        notifier = Notifier(path, watchdog_usec=100_000)
        notifier.ready()
        received = [await asyncio.wait_for(loop.sock_recv(listener, 1024), 5) for _ in range(3)]
        await notifier.stopping()
        last = await asyncio.wait_for(loop.sock_recv(listener, 1024), 5)
    assert received[0].startswith(b"READY=1")
    assert received[1:] == [b"WATCHDOG=1", b"WATCHDOG=1"]
    assert last == b"STOPPING=1"


def test_sd_notify_is_off_without_notify_socket() -> None:
    assert Notifier("").send("READY=1") is False
