"""What a watchdogd restart must not forget: GAVE_UP, the restarts of the last
hour, the open incident. Real processes, real PostgreSQL, two watchdogd lives."""

from __future__ import annotations

import sys
from pathlib import Path

import asyncpg
import pytest

from tests.support.flagd import Replica
from tests.watchdogd.support import (
    ACTOR,
    Watchdog,
    free_port,
    in_state,
    incidents,
    set_agent_watchdog,
    start_watchdog,
    until,
)

from npanel.watchdogd.v1 import watchdogd_pb2 as pb  # isort: skip

pytestmark = pytest.mark.integration


def crashing_target(name: str, limit: int, starts: Path) -> pb.Target:
    """Crashes on start, after adding a line to `starts`."""
    script = f"open({str(starts)!r}, 'a').write('start\\n'); print('bad config'); exit(3)"
    return pb.Target(
        name=name,
        check=pb.Check(kind="tcp", address=f"127.0.0.1:{free_port()}", interval_seconds=0.2,
                       timeout_seconds=0.2),
        driver=pb.Driver(kind="process", command=[sys.executable, "-c", script]),
        policy=pb.Policy(max_restarts_per_hour=limit, backoff_initial_seconds=0.1, start_timeout_seconds=5))


def restarted(wd: Watchdog, name: str) -> float:
    return wd.metric("npanel_agent_recovery_total", target=name, result="restarted")


@pytest.mark.asyncio
async def test_gave_up_and_the_hourly_count_survive_a_watchdogd_restart_until_reset(
        database_url: str, flagd: Replica, conn: asyncpg.Connection, tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    await set_agent_watchdog(flagd)
    async with start_watchdog(database_url, flagd.address) as first:
        target = crashing_target("doomed", 2, starts)
        await first.stub.PutTarget(pb.PutTargetRequest(target=target, **ACTOR), timeout=5)
        await until(lambda: in_state(first, "doomed", "GAVE_UP"), 10)
        assert restarted(first, "doomed") == 2
    row = await conn.fetchrow("SELECT gave_up, cardinality(restarts) AS n FROM watchdog_target_state "
                              "WHERE name = 'doomed'")
    assert row is not None and row["gave_up"] and row["n"] == 2

    async with start_watchdog(database_url, flagd.address) as second:
        target = await second.target("doomed")
        assert target.state == "GAVE_UP" and target.restarts_in_window == 2
        assert second.metric("npanel_agent_gave_up", target="doomed") == 1
        # Not even started (as systemd leaves a unit that hit its start limit);
        # checks go on for several cycles, without a restart.
        await until(lambda: _checked(second, "doomed", 5), 10)
        assert restarted(second, "doomed") == 0
        assert starts.read_text().count("start") == 3  # the first start and two restarts, all before
        # The same incident goes on: no second one for the same failure.
        (incident,) = await incidents(second, "doomed")
        assert incident.gave_up and not incident.resolved and incident.restart_count == 2

        await second.stub.ResetTarget(pb.TargetActionRequest(name="doomed", actor="ops", reason="fixed"),
                                      timeout=5)
        assert (await second.target("doomed")).state != "GAVE_UP"
        await until(lambda: _restarted_at_least(second, "doomed", 1), 10)
    audit = await conn.fetchval("SELECT details->>'state_before' FROM audit_log "
                                "WHERE action = 'watchdog.target.reset' AND target_id = 'doomed'")
    assert audit == "GAVE_UP"


async def _checked(wd: Watchdog, name: str, count: int) -> bool:
    return wd.metric("npanel_agent_check_latency_seconds_count", target=name, check="tcp") >= count


async def _restarted_at_least(wd: Watchdog, name: str, count: int) -> bool:
    return restarted(wd, name) >= count


@pytest.mark.asyncio
async def test_a_changed_definition_starts_with_fresh_counters(
        database_url: str, flagd: Replica, conn: asyncpg.Connection, tmp_path: Path) -> None:
    await set_agent_watchdog(flagd)
    async with start_watchdog(database_url, flagd.address) as wd:
        target = crashing_target("redone", 1, tmp_path / "starts")
        await wd.stub.PutTarget(pb.PutTargetRequest(target=target, **ACTOR), timeout=5)
        await until(lambda: in_state(wd, "redone", "GAVE_UP"), 10)
        target.driver.command[:] = [sys.executable, "-c", "import time; time.sleep(60)"]
        await wd.stub.PutTarget(pb.PutTargetRequest(target=target, actor="ops", reason="fixed the config"),
                                timeout=5)
        assert (await wd.target("redone")).state != "GAVE_UP"
        row = await conn.fetchrow("SELECT gave_up, cardinality(restarts) AS n, attempt "
                                  "FROM watchdog_target_state WHERE name = 'redone'")
        assert row is None or (not row["gave_up"] and row["n"] == 0 and row["attempt"] == 0), row
        details = await conn.fetchval(
            "SELECT details FROM audit_log WHERE action = 'watchdog.target.put' AND actor = 'ops'")
        assert '"was_gave_up": true' in details and '"counters_cleared": true' in details
