"""Operator changes take effect as stored: serialised, and not cut short by a caller
that leaves. Real processes, real PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import pytest

from tests.watchdogd.support import (
    ACTOR,
    Watchdog,
    free_port,
    in_state,
    incidents,
    until,
)

from npanel.watchdogd.v1 import watchdogd_pb2 as pb  # isort: skip

pytestmark = pytest.mark.integration
# Ignores SIGTERM, then says so in a file (the check), so HEALTHY means it ignores SIGTERM.
STUBBORN = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "open(sys.argv[1], 'w').close(); time.sleep(600)")


def stubborn_target(interval: float, marker: Path) -> pb.Target:
    """A child that ignores SIGTERM: replacing it takes the whole stop timeout."""
    return pb.Target(
        name="stubborn",
        check=pb.Check(kind="exec", command=["test", "-f", str(marker)], interval_seconds=interval,
                       timeout_seconds=1),
        driver=pb.Driver(kind="process", command=[sys.executable, "-c", STUBBORN, str(marker)],
                         stop_timeout_seconds=2))


@pytest.mark.asyncio
async def test_a_change_whose_caller_gives_up_still_takes_effect(watchdog: Watchdog, tmp_path: Path) -> None:
    marker = tmp_path / "ignoring-sigterm"
    await watchdog.stub.PutTarget(pb.PutTargetRequest(target=stubborn_target(1.0, marker), **ACTOR),
                                  timeout=5)
    await until(lambda: in_state(watchdog, "stubborn", "HEALTHY"), 20)
    old_pid = (await watchdog.target("stubborn")).pid
    marker.unlink()  # the new child writes it again once it ignores SIGTERM
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watchdog.stub.PutTarget(pb.PutTargetRequest(target=stubborn_target(2.0, marker), **ACTOR),
                                      timeout=0.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Stored and audited before the deadline: it must also be in effect, with a new child.
    await until(lambda: _replaced(watchdog, old_pid), 10)


async def _replaced(wd: Watchdog, old_pid: int) -> bool:
    try:
        target = await wd.target("stubborn")
    except grpc.aio.AioRpcError:
        return False
    return target.check.interval_seconds == 2.0 and target.pid not in (0, old_pid)


@pytest.mark.asyncio
async def test_a_target_removed_and_added_again_does_not_inherit_the_old_open_incident(
        watchdog: Watchdog) -> None:
    target = pb.Target(
        name="again",
        check=pb.Check(kind="tcp", address=f"127.0.0.1:{free_port()}", interval_seconds=0.2,
                       timeout_seconds=0.2),
        driver=pb.Driver(kind="none"),
        policy=pb.Policy(start_timeout_seconds=0.5))
    await watchdog.stub.PutTarget(pb.PutTargetRequest(target=target, **ACTOR), timeout=5)
    await until(lambda: _incident_count(watchdog, 1), 10)
    await watchdog.stub.RemoveTarget(pb.RemoveTargetRequest(name="again", **ACTOR), timeout=5)
    await watchdog.stub.PutTarget(pb.PutTargetRequest(target=target, **ACTOR), timeout=5)
    # Its own failure is its own incident, not the removed target's, still open.
    await until(lambda: _incident_count(watchdog, 2), 10)
    newest, oldest = await incidents(watchdog, "again")
    assert newest.id != oldest.id and not newest.resolved


async def _incident_count(wd: Watchdog, count: int) -> bool:
    return len(await incidents(wd, "again")) >= count
