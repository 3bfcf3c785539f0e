"""Recovery of real processes over real sockets with real PostgreSQL and a real flagd.

Each supervised target is the test-only echo gRPC service, started by watchdogd
itself (process driver). Intervals are shortened by configuration (check every
1 s, deadline 0.5 s); every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

import asyncpg
import grpc
import pytest

from tests.support.flagd import Replica
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


async def put_healthy(wd: Watchdog, target: pb.Target) -> pb.Target:
    await wd.stub.PutTarget(pb.PutTargetRequest(target=target, **ACTOR), timeout=5)
    await until(lambda: in_state(wd, target.name, "HEALTHY"), 20)
    return await wd.target(target.name)


@pytest.mark.asyncio
async def test_a_killed_service_is_healthy_again_within_10_s_with_a_complete_incident(
        watchdog: Watchdog) -> None:
    before = await put_healthy(watchdog, echo_target("echo", free_port()))
    os.kill(before.pid, signal.SIGKILL)
    killed = time.monotonic()
    await until(lambda: in_state(watchdog, "echo", "HEALTHY", not_pid=before.pid), 10)
    assert time.monotonic() - killed < 10
    await until(lambda: _resolved(watchdog, "echo"), 5)
    (incident,) = await incidents(watchdog, "echo")
    assert incident.failure_type == "crash"
    assert "SIGKILL" in incident.evidence
    assert incident.restart_count == 1 and incident.resolved and not incident.gave_up
    assert 0 < incident.recovery_seconds < 10
    assert incident.recovered_at.ToDatetime() >= incident.detected_at.ToDatetime()
    # The child's own output (the bootstrap's start-up lines) was captured.
    assert any("listening" in line for line in incident.last_log_lines)
    assert watchdog.metric("npanel_agent_recovery_total", target="echo", result="recovered") == 1
    assert watchdog.metric("npanel_agent_recovery_latency_seconds_count", target="echo") == 1
    assert watchdog.metric("npanel_agent_health_status", target="echo") == 1


async def _resolved(wd: Watchdog, name: str) -> bool:
    found = await incidents(wd, name)
    return bool(found) and found[0].resolved


@pytest.mark.asyncio
async def test_a_frozen_service_is_recovered_within_10_s_with_the_specified_6_s_3_s_defaults(
        watchdog: Watchdog) -> None:
    """SIGSTOP right after a passing check: the worst moment for a 6 s check interval.

    The probe's keepalive pings go unanswered (the Watch stream ends), a Check
    at once runs into its 3 s deadline: two observations, so it is restarted
    without waiting for the next interval.
    """
    target = echo_target("frozen", free_port(), interval=6.0, timeout=3.0)
    before = await put_healthy(watchdog, target)
    os.kill(before.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        await until(lambda: in_state(watchdog, "frozen", "HEALTHY", not_pid=before.pid), 10)
    finally:
        _kill_quietly(before.pid)
    assert time.monotonic() - stopped < 10
    await until(lambda: _resolved(watchdog, "frozen"), 5)
    (incident,) = await incidents(watchdog, "frozen")
    assert incident.failure_type == "hang", incident.evidence
    watch, _, check = incident.evidence.partition("; then ")
    assert "Watch" in watch and "ping timeout" in watch
    # The Check ran into its deadline, or its connection never got an HTTP/2 SETTINGS
    # frame, or was dropped by the same unanswered pings: it never got an answer.
    assert any(s in check for s in ("DEADLINE_EXCEEDED", "SETTINGS frame", "ping timeout")), check
    assert incident.restart_count == 1 and 0 < incident.recovery_seconds < 10


@pytest.mark.asyncio
async def test_a_hung_application_is_detected_by_the_check_deadline(watchdog: Watchdog) -> None:
    """The echo service's event loop blocks (SIGUSR1) while gRPC's core still answers pings."""
    before = await put_healthy(watchdog, echo_target("hung", free_port()))
    os.kill(before.pid, signal.SIGUSR1)
    stopped = time.monotonic()
    try:
        await until(lambda: in_state(watchdog, "hung", "HEALTHY", not_pid=before.pid), 10)
    finally:
        _kill_quietly(before.pid)
    # 1 s interval, 0.5 s deadline, two failures, a 1 s stop timeout, a restart.
    assert time.monotonic() - stopped < 10
    await until(lambda: _resolved(watchdog, "hung"), 5)
    (incident,) = await incidents(watchdog, "hung")
    assert incident.failure_type == "hang"
    assert incident.evidence.startswith("grpc.health.v1 Check"), incident.evidence  # not the Watch
    assert "DEADLINE_EXCEEDED" in incident.evidence
    assert incident.restart_count == 1


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.asyncio
async def test_a_target_crashing_on_start_gives_up_after_the_limit_without_a_restart_storm(
        watchdog: Watchdog) -> None:
    target = pb.Target(
        name="broken",
        check=pb.Check(kind="tcp", address=f"127.0.0.1:{free_port()}", interval_seconds=0.2,
                       timeout_seconds=0.2),
        driver=pb.Driver(kind="process",
                         command=[sys.executable, "-c", "print('boom: bad config'); exit(3)"]),
        policy=pb.Policy(max_restarts_per_hour=3, backoff_initial_seconds=0.1, start_timeout_seconds=5))
    await watchdog.stub.PutTarget(pb.PutTargetRequest(target=target, **ACTOR), timeout=5)
    await until(lambda: in_state(watchdog, "broken", "GAVE_UP"), 10)
    checks_then = watchdog.metric("npanel_agent_check_latency_seconds_count", target="broken", check="tcp")
    # Checks go on (several more cycles) while restarts stay at the limit.
    await until(lambda: _more_checks(watchdog, checks_then + 3), 5)
    assert watchdog.metric("npanel_agent_recovery_total", target="broken", result="restarted") == 3
    assert watchdog.metric("npanel_agent_gave_up", target="broken") == 1
    state = await watchdog.target("broken")
    assert state.restarts_in_window == 3 and state.pid == 0
    (incident,) = await incidents(watchdog, "broken")
    assert incident.failure_type == "start_failure" and incident.gave_up and not incident.resolved
    assert incident.restart_count == 3
    assert "boom: bad config" in incident.last_log_lines
    assert "[watchdogd] process exited with status 3" in incident.last_log_lines


async def _more_checks(wd: Watchdog, count: float) -> bool:
    return wd.metric("npanel_agent_check_latency_seconds_count", target="broken", check="tcp") >= count


@pytest.mark.asyncio
async def test_pause_records_without_restarting_and_resume_recovers(
        watchdog: Watchdog, conn: asyncpg.Connection) -> None:
    before = await put_healthy(watchdog, echo_target("paused", free_port()))
    request = pb.TargetActionRequest(name="paused", actor="ops", reason="maintenance")
    assert (await watchdog.stub.PauseTarget(request, timeout=5)).state == "PAUSED"
    os.kill(before.pid, signal.SIGKILL)
    await until(lambda: _has_incident(watchdog, "paused"), 10)
    assert (await watchdog.target("paused")).pid == 0
    assert watchdog.metric("npanel_agent_recovery_total", target="paused", result="restarted") == 0
    await watchdog.stub.ResumeTarget(request, timeout=5)
    await until(lambda: in_state(watchdog, "paused", "HEALTHY", not_pid=before.pid), 10)
    actions = await conn.fetch("SELECT action, actor, details->>'reason' AS reason FROM audit_log "
                               "WHERE target_id = 'paused' ORDER BY id")
    assert [(r["action"], r["actor"]) for r in actions] == [
        ("watchdog.target.put", "tester"), ("watchdog.target.pause", "ops"),
        ("watchdog.target.resume", "ops")]
    assert await conn.fetchval("SELECT paused FROM watchdog_targets WHERE name = 'paused'") is False


async def _has_incident(wd: Watchdog, name: str) -> bool:
    return bool(await incidents(wd, name))


@pytest.mark.asyncio
async def test_with_the_flag_off_failures_are_recorded_but_not_restarted(
        database_url: str, flagd: Replica) -> None:
    await set_agent_watchdog(flagd, False)
    async with start_watchdog(database_url, flagd.address) as wd:
        before = await put_healthy(wd, echo_target("flagged", free_port()))
        os.kill(before.pid, signal.SIGKILL)
        await until(lambda: _has_incident(wd, "flagged"), 10)
        await until(lambda: _suppressed(wd), 10)
        assert (await wd.target("flagged")).pid == 0
        assert wd.metric("npanel_agent_recovery_total", target="flagged", result="restarted") == 0
        assert wd.metric("npanel_agent_watchdog_enabled") == 0
        await set_agent_watchdog(flagd, True)
        await until(lambda: in_state(wd, "flagged", "HEALTHY", not_pid=before.pid), 10)
        (incident,) = await incidents(wd, "flagged")
        assert incident.resolved and incident.restart_count == 1


async def _suppressed(wd: Watchdog) -> bool:
    return wd.metric("npanel_agent_recovery_total", target="flagged", result="suppressed") >= 1


@pytest.mark.asyncio
async def test_reset_after_gave_up_is_audited_and_restarts_again(
        watchdog: Watchdog, conn: asyncpg.Connection) -> None:
    port = free_port()
    target = echo_target("flappy", port, max_restarts=1)
    before = await put_healthy(watchdog, target)
    os.kill(before.pid, signal.SIGKILL)
    await until(lambda: in_state(watchdog, "flappy", "HEALTHY", not_pid=before.pid), 10)
    second = await watchdog.target("flappy")
    os.kill(second.pid, signal.SIGKILL)
    await until(lambda: in_state(watchdog, "flappy", "GAVE_UP"), 10)
    reset = pb.TargetActionRequest(name="flappy", actor="ops", reason="fixed the cause")
    await watchdog.stub.ResetTarget(reset, timeout=5)
    await until(lambda: in_state(watchdog, "flappy", "HEALTHY", not_pid=0), 10)
    row = await conn.fetchrow("SELECT details FROM audit_log WHERE action = 'watchdog.target.reset'")
    assert row is not None and '"state_before": "GAVE_UP"' in row["details"]


@pytest.mark.asyncio
async def test_bad_input_is_invalid_argument_naming_field_and_value(watchdog: Watchdog) -> None:
    bad = echo_target("bad", 1)
    bad.check.kind = "ping"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watchdog.stub.PutTarget(pb.PutTargetRequest(target=bad, **ACTOR), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "check.kind='ping'" in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await watchdog.stub.PauseTarget(pb.TargetActionRequest(name="nope", **ACTOR), timeout=5)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
