"""`npanel watchdog ...` as an operator runs it: through a real gateway (real tokens, real
roles) to a real watchdogd supervising the test-only echo service, on real PostgreSQL.

Connection options (--gateway, --token, --json) go before the subcommand:
`npanel watchdog --json targets`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from tests.support.flagd import Replica
from tests.support.gateway import Gateway, start_gateway
from tests.watchdogd.support import (
    ACTOR,
    Watchdog,
    echo_target,
    free_port,
    in_state,
    incidents,
    set_agent_watchdog,
    start_watchdog,
    until,
)

from npanel.watchdogd.v1 import watchdogd_pb2 as pb  # isort: skip

pytestmark = pytest.mark.integration

TARGETS_HEADER = ["NAME", "STATE", "CHECK", "DRIVER", "RESTARTS/H", "LAST", "FAILURE"]
INCIDENTS_HEADER = ["ID", "DETECTED", "TARGET", "TYPE", "RESTARTS", "OUTCOME", "EVIDENCE"]


@dataclass
class Stack:
    wd: Watchdog
    gw: Gateway
    echo: pb.Target  # "echo", HEALTHY, as GetTarget returned it
    port: int


@pytest_asyncio.fixture
async def stack(database_url: str, flagd: Replica) -> AsyncIterator[Stack]:
    await set_agent_watchdog(flagd)
    async with start_watchdog(database_url, flagd.address) as wd, \
            start_gateway(database_url, {"flagd": flagd.address, "watchdogd": wd.handle.address}) as gw:
        port = free_port()
        await wd.stub.PutTarget(pb.PutTargetRequest(target=echo_target("echo", port), **ACTOR), timeout=5)
        await until(lambda: in_state(wd, "echo", "HEALTHY"), 20)
        yield Stack(wd, gw, await wd.target("echo"), port)


async def npanel(gw: Gateway, *args: str, role: str = "admin", token: str | None = None,
                 gateway: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "npanel.cli", "watchdog", "--gateway", gateway or gw.grpc_address,
        "--token", gw.tokens[role] if token is None else token, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode(), err.decode()


def detail_lines(out: str) -> dict[str, str]:
    """`targets NAME`: one "key<padding> value" line per field (keys may contain a space)."""
    return {line[:13].strip(): line[14:].strip() for line in out.splitlines()}


async def audit_rows(conn: asyncpg.Connection, action: str) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT actor, target_type, details->>'reason' AS reason, details->>'state_before' AS before "
        "FROM audit_log WHERE action = $1 AND target_id = 'echo' ORDER BY id", action))


@pytest.mark.asyncio
async def test_targets_as_a_table_as_json_and_one_by_name(stack: Stack) -> None:
    echo, address = stack.echo, f"127.0.0.1:{stack.port}"
    # Reading needs only the viewer role.
    code, out, err = await npanel(stack.gw, "targets", role="viewer")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == TARGETS_HEADER
    (row,) = rows
    assert row.split()[:2] == ["echo", "HEALTHY"]
    assert f"grpc {address}" in row and f"process (pid {echo.pid})" in row

    code, out, err = await npanel(stack.gw, "--json", "targets", role="viewer")
    assert code == 0, err
    (listed,) = json.loads(out)["targets"]
    assert listed["name"] == "echo" and listed["state"] == "HEALTHY" and listed["paused"] is False
    assert listed["pid"] == echo.pid and listed["source"] == "api" and listed["restartsInWindow"] == 0
    assert listed["check"]["kind"] == "grpc" and listed["check"]["address"] == address
    assert listed["driver"]["kind"] == "process" and listed["lastFailure"] == ""

    code, out, err = await npanel(stack.gw, "targets", "echo", role="viewer")
    assert code == 0, err
    fields = detail_lines(out)
    assert list(fields) == ["name", "state", "check", "driver", "restarts/h", "last failure", "source"]
    assert fields["name"] == "echo" and fields["state"] == "HEALTHY" and fields["source"] == "api"
    assert fields["check"] == f"grpc {address}" and fields["driver"] == f"process (pid {echo.pid})"
    assert fields["restarts/h"] == "0" and fields["last failure"] == ""

    code, out, err = await npanel(stack.gw, "--json", "targets", "echo", role="viewer")
    assert code == 0, err
    assert json.loads(out) == listed


@pytest.mark.asyncio
async def test_pause_resume_reset_change_the_state_and_are_audited_with_the_tokens_name(
        stack: Stack, conn: asyncpg.Connection) -> None:
    operator = stack.gw.names["operator"]
    code, out, err = await npanel(stack.gw, "pause", "echo", "--reason", "disk maintenance",
                                  role="operator")
    assert code == 0, err
    assert out.strip() == "echo: PAUSED"
    target = await stack.wd.target("echo")
    assert target.state == "PAUSED" and target.paused
    assert await conn.fetchval("SELECT paused FROM watchdog_targets WHERE name = 'echo'") is True
    (pause,) = await audit_rows(conn, "watchdog.target.pause")
    assert pause["actor"] == operator and pause["reason"] == "disk maintenance"
    assert pause["target_type"] == "watchdog_target"
    code, out, _ = await npanel(stack.gw, "--json", "targets", "echo")
    assert json.loads(out)["state"] == "PAUSED" and json.loads(out)["paused"] is True

    code, out, err = await npanel(stack.gw, "--json", "resume", "echo", "--reason", "done",
                                  role="operator")
    assert code == 0, err
    resumed = json.loads(out)
    assert resumed["name"] == "echo" and resumed["state"] == "HEALTHY" and resumed["paused"] is False
    assert (await stack.wd.target("echo")).state == "HEALTHY"
    assert await conn.fetchval("SELECT paused FROM watchdog_targets WHERE name = 'echo'") is False
    (resume,) = await audit_rows(conn, "watchdog.target.resume")
    assert resume["actor"] == operator and resume["reason"] == "done"

    code, out, err = await npanel(stack.gw, "reset", "echo", "--reason", "clear the counters",
                                  role="operator")
    assert code == 0, err
    assert out.strip() == "echo: HEALTHY"
    (reset,) = await audit_rows(conn, "watchdog.target.reset")
    assert reset["actor"] == operator and reset["reason"] == "clear the counters"
    assert reset["before"] == "HEALTHY"
    # Supervision goes on untouched: same child, still healthy.
    after = await stack.wd.target("echo")
    assert after.state == "HEALTHY" and after.pid == stack.echo.pid

    actions = await conn.fetch("SELECT action, actor FROM audit_log WHERE target_id = 'echo' ORDER BY id")
    assert [(r["action"], r["actor"]) for r in actions] == [
        ("watchdog.target.put", "tester"), ("watchdog.target.pause", operator),
        ("watchdog.target.resume", operator), ("watchdog.target.reset", operator)]


async def _resolved(wd: Watchdog) -> bool:
    found = await incidents(wd, "echo")
    return bool(found) and found[0].resolved


async def _open_incident(wd: Watchdog) -> bool:
    found = await incidents(wd, "echo")
    return bool(found) and not found[0].resolved


@pytest.mark.asyncio
async def test_incidents_of_a_killed_target_as_a_table_and_json(stack: Stack) -> None:
    code, out, err = await npanel(stack.gw, "incidents", role="viewer")
    assert code == 0, err
    assert [line.split() for line in out.splitlines()] == [INCIDENTS_HEADER]
    code, out, _ = await npanel(stack.gw, "--json", "incidents", role="viewer")
    assert json.loads(out) == {"incidents": [], "nextPageToken": ""}

    os.kill(stack.echo.pid, signal.SIGKILL)
    await until(lambda: _resolved(stack.wd), 15)
    (stored,) = await incidents(stack.wd, "echo")

    code, out, err = await npanel(stack.gw, "incidents", role="viewer")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == INCIDENTS_HEADER
    detected = stored.detected_at.ToDatetime().isoformat(timespec="seconds")
    assert row.split()[:5] == [str(stored.id), detected, "echo", "crash", str(stored.restart_count)]
    assert f"recovered in {stored.recovery_seconds:.2f} s" in row

    code, out, err = await npanel(stack.gw, "--json", "incidents", "--target", "echo", role="viewer")
    assert code == 0, err
    data = json.loads(out)
    (incident,) = data["incidents"]
    assert incident["id"] == str(stored.id)  # int64: a string in proto3 JSON
    assert incident["target"] == "echo" and incident["failureType"] == "crash"
    assert incident["resolved"] is True and incident["gaveUp"] is False
    assert incident["restartCount"] == stored.restart_count >= 1
    assert stored.recovery_seconds > 0
    assert incident["recoverySeconds"] == pytest.approx(stored.recovery_seconds)
    assert incident["evidence"] == stored.evidence and incident["lastLogLines"] == list(stored.last_log_lines)
    assert data["nextPageToken"] == ""

    code, out, _ = await npanel(stack.gw, "incidents", "--open")
    assert [line.split() for line in out.splitlines()] == [INCIDENTS_HEADER]
    code, out, _ = await npanel(stack.gw, "incidents", "--target", "other")
    assert [line.split() for line in out.splitlines()] == [INCIDENTS_HEADER]

    # Paused, a second kill leaves an open incident (no restart): shown as "open".
    assert (await npanel(stack.gw, "pause", "echo", "--reason", "look first"))[0] == 0
    os.kill((await stack.wd.target("echo")).pid, signal.SIGKILL)
    await until(lambda: _open_incident(stack.wd), 15)
    code, out, err = await npanel(stack.gw, "incidents", "--open")
    assert code == 0, err
    header, row = out.splitlines()
    opened = (await incidents(stack.wd, "echo"))[0]
    assert row.split()[0] == str(opened.id) and opened.id != stored.id
    assert row.split()[2:6] == ["echo", "crash", "0", "open"]
    code, out, _ = await npanel(stack.gw, "--json", "incidents", "--limit", "1")
    one = json.loads(out)
    assert [i["id"] for i in one["incidents"]] == [str(opened.id)]
    assert one["nextPageToken"] == str(opened.id)  # a full page: there may be more


async def _errors(stack: Stack, *args: str, role: str = "admin") -> tuple[int, str, str]:
    return await npanel(stack.gw, *args, role=role)


@pytest.mark.asyncio
async def test_errors_exit_non_zero_and_say_what_is_wrong(stack: Stack, conn: asyncpg.Connection) -> None:
    viewer = stack.gw.names["viewer"]
    calls: dict[str, tuple[str, ...]] = {
        "get unknown": ("targets", "nope"),
        "pause unknown": ("pause", "nope", "--reason", "x"),
        "reset unknown": ("reset", "nope", "--reason", "x"),
        "json unknown": ("--json", "targets", "nope"),
        "bad name": ("targets", "Bad Name!"),
        "bad filter": ("incidents", "--target", "Bad Name!"),
        "bad limit": ("incidents", "--limit", "501"),
        "empty reason": ("pause", "echo", "--reason", " "),
        "no reason": ("pause", "echo"),
    }
    # One after the other: a burst of CLI processes on a small, shared machine once made
    # the gateway's first connection to watchdogd fail (UNAVAILABLE, "tcp handshaker shutdown").
    results: dict[str, Any] = {name: await _errors(stack, *args) for name, args in calls.items()}

    for name in ("get unknown", "pause unknown", "reset unknown"):
        code, out, err = results[name]
        assert code == 1 and out == "", name
        assert err.startswith("npanel watchdog: NOT_FOUND: target 'nope' not found"), err
        assert "`npanel watchdog targets`" in err  # what to do about it
    code, out, err = results["json unknown"]
    assert code == 1 and out == ""
    assert json.loads(err)["error"].startswith("NOT_FOUND: target 'nope' not found")
    code, _, err = results["bad name"]
    assert code == 1 and "INVALID_ARGUMENT: name='Bad Name!'" in err
    code, _, err = results["bad filter"]
    assert code == 1 and "INVALID_ARGUMENT: target='Bad Name!'" in err
    code, _, err = results["bad limit"]
    assert code == 1 and "INVALID_ARGUMENT: page_size=501" in err
    code, _, err = results["empty reason"]
    assert code == 1 and "INVALID_ARGUMENT: reason=' '" in err
    code, _, err = results["no reason"]
    assert code == 2 and "--reason" in err  # argparse: usage error

    # A viewer token may read but not change anything.
    for action in ("pause", "resume", "reset"):
        code, out, err = await npanel(stack.gw, action, "echo", "--reason", "x", role="viewer")
        assert code == 1 and out == "", action
        assert "PERMISSION_DENIED" in err and "needs the operator role" in err, err
        assert f"WatchdogService/{action.capitalize()}Target" in err and repr(viewer) in err
    assert (await stack.wd.target("echo")).state == "HEALTHY"
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE target_id = 'echo' "
                               "AND action <> 'watchdog.target.put'") == 0

    code, _, err = await npanel(stack.gw, "targets", token="not-a-token")
    assert code == 1 and "UNAUTHENTICATED" in err and "npanel tokens create" in err


@pytest.mark.asyncio
async def test_watchdogd_down_is_unavailable_naming_the_backend(database_url: str, flagd: Replica) -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with start_gateway(database_url, {"flagd": flagd.address, "watchdogd": dead}) as gw:
        code, out, err = await npanel(gw, "targets")
    assert code == 1 and out == ""
    assert f"UNAVAILABLE: backend watchdogd at {dead} is unavailable" in err, err


@pytest.mark.asyncio
async def test_a_reader_that_leaves_early_gets_no_traceback(stack: Stack) -> None:
    """`npanel watchdog --json targets | head -c 1`: the pipe closes under the CLI."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: the first write fails with EPIPE
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "npanel.cli", "watchdog", "--gateway", stack.gw.grpc_address,
            "--token", stack.gw.tokens["admin"], "--json", "targets",
            stdout=write_end, stderr=asyncio.subprocess.PIPE)
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert "Traceback" not in err.decode(), err.decode()
    assert proc.returncode == 141
