"""WatchIncidents with a real watchdogd: what a subscriber sees of a real crash and its recovery.

The supervised targets are the test-only echo gRPC service, started by watchdogd
(process driver) and killed with SIGKILL. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from npanel.watchdogd.model import Incident
from npanel.watchdogd.supervisor import SUBSCRIBER_QUEUE
from tests.support.flagd import Replica
from tests.support.gateway import start_gateway
from tests.watchdogd.support import (
    ACTOR,
    Watchdog,
    echo_target,
    free_port,
    in_state,
    incidents,
    until,
)

from npanel.watchdogd.v1 import watchdogd_pb2 as pb  # isort: skip
from npanel.watchdogd.v1 import watchdogd_pb2_grpc  # isort: skip

if TYPE_CHECKING:
    from npanel.watchdogd.v1.watchdogd_pb2_grpc import WatchdogServiceAsyncStub

pytestmark = pytest.mark.integration


@dataclass
class Subscriber:
    """One WatchIncidents stream, read in the background into `received`."""

    call: Any  # grpc.aio.UnaryStreamCall
    received: list[pb.Incident] = field(default_factory=list)
    error: grpc.aio.AioRpcError | None = None
    task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        try:
            async for incident in self.call:
                self.received.append(incident)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.error = exc

    def ended(self) -> bool:
        return self.task is not None and self.task.done()

    async def close(self) -> None:
        self.call.cancel()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, 5)


def subscribers(wd: Watchdog) -> int:
    """Streams subscribed to the broadcast right now.

    WatchIncidents sends nothing until the first incident, so this is the only
    way to know that a stream started reading before the failure is caused.
    """
    assert wd.service.supervisor is not None
    return len(wd.service.supervisor.broadcast._queues)


@contextlib.asynccontextmanager
async def watching(wd: Watchdog, *targets: str, stub: WatchdogServiceAsyncStub | None = None,
                   metadata: tuple[tuple[str, str], ...] = ()) -> AsyncIterator[list[Subscriber]]:
    """One subscriber per filter ("" = every target), all subscribed when this yields.

    `stub`: another way in (the gateway); by default watchdogd directly.
    """
    before = subscribers(wd)
    stub = stub or wd.stub
    subs = [Subscriber(stub.WatchIncidents(pb.WatchIncidentsRequest(target=t), metadata=metadata))
            for t in targets]
    for sub in subs:
        sub.task = asyncio.create_task(sub._read())
    try:
        await until(_async(lambda: subscribers(wd) == before + len(subs)), 5)
        yield subs
    finally:
        for sub in subs:
            await sub.close()


def _async(predicate: Callable[[], object]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(predicate())
    return check


async def put_healthy(wd: Watchdog, target: pb.Target) -> pb.Target:
    await wd.stub.PutTarget(pb.PutTargetRequest(target=target, **ACTOR), timeout=5)
    await until(lambda: in_state(wd, target.name, "HEALTHY"), 20)
    return await wd.target(target.name)


def resolved_last(sub: Subscriber) -> bool:
    return bool(sub.received) and sub.received[-1].resolved


def assert_one_crash_from_open_to_resolved(stream: list[pb.Incident], name: str) -> None:
    assert stream, "no incident streamed"
    assert {i.target for i in stream} == {name}
    assert len({i.id for i in stream}) == 1, f"more than one incident: {stream}"
    first, last = stream[0], stream[-1]
    assert first.failure_type == "crash" and not first.resolved and not first.gave_up
    assert first.restart_count == 0 and first.evidence
    assert not first.HasField("recovered_at") and first.recovery_seconds == 0
    # Updates in between (the restart), then exactly one resolved message, the last.
    assert all(not i.resolved for i in stream[:-1])
    counts = [i.restart_count for i in stream]
    assert counts == sorted(counts)
    assert last.resolved and not last.gave_up
    assert 0 < last.recovery_seconds < 10
    assert last.recovered_at.ToDatetime() >= last.detected_at.ToDatetime()
    assert all(i.detected_at == first.detected_at and i.failure_type == "crash" for i in stream)
    # One SIGKILL, one restart.
    assert last.restart_count == 1, f"one SIGKILL, {last.restart_count} restarts: {stream}"


@pytest.mark.asyncio
async def test_a_crash_streams_opened_updates_resolved_to_matching_subscribers_only(
        watchdog: Watchdog) -> None:
    echo = await put_healthy(watchdog, echo_target("echo", free_port()))
    other = await put_healthy(watchdog, echo_target("other", free_port()))
    async with watching(watchdog, "echo", "", "other") as (mine, everything, others):
        os.kill(echo.pid, signal.SIGKILL)
        await until(_async(lambda: resolved_last(mine) and resolved_last(everything)), 15)
        # Publishing is synchronous for every subscriber: by now the filtered-away
        # one has been offered the same messages. A bounded wait to be sure:
        await asyncio.sleep(1.0)
        assert others.received == [] and not others.ended()
        assert_one_crash_from_open_to_resolved(mine.received, "echo")
        assert everything.received == mine.received
        (row,) = await incidents(watchdog, "echo")
        assert row == mine.received[-1]  # the stream carries exactly what was stored

        # The filtered-away subscriber was alive all along: it gets its own target's.
        os.kill(other.pid, signal.SIGKILL)
        await until(_async(lambda: resolved_last(others) and len(everything.received) == len(
            mine.received) + len(others.received)), 15)
        assert_one_crash_from_open_to_resolved(others.received, "other")
        (other_row,) = await incidents(watchdog, "other")
        assert other_row == others.received[-1] and other_row.id != row.id
        assert {i.id for i in mine.received} == {row.id}  # nothing of "other" for "echo"
        assert everything.received[len(mine.received):] == others.received
    assert not mine.error and not everything.error and not others.error


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", ["Bad Name!", "UPPER", "-dash-first", "x" * 65])
async def test_an_invalid_target_filter_is_invalid_argument_naming_the_field(
        watchdog: Watchdog, bad: str) -> None:
    call = watchdog.stub.WatchIncidents(pb.WatchIncidentsRequest(target=bad), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert details.startswith(f"target={bad!r}: "), details


@pytest.mark.asyncio
async def test_a_filter_for_a_target_that_does_not_exist_yet_is_accepted(watchdog: Watchdog) -> None:
    """A filter is a name, not a reference: a stream may wait for a target defined later."""
    async with watching(watchdog, "later") as (sub,):
        later = await put_healthy(watchdog, echo_target("later", free_port()))
        os.kill(later.pid, signal.SIGKILL)
        await until(_async(lambda: resolved_last(sub)), 15)
        assert_one_crash_from_open_to_resolved(sub.received, "later")


@pytest.mark.asyncio
async def test_through_the_gateway_a_viewer_token_streams_incidents_and_no_token_is_refused(
        watchdog: Watchdog, database_url: str, flagd: Replica) -> None:
    echo = await put_healthy(watchdog, echo_target("echo", free_port()))
    backends = {"flagd": flagd.address, "watchdogd": watchdog.handle.address}
    async with start_gateway(database_url, backends) as gw:
        stub = watchdogd_pb2_grpc.WatchdogServiceStub(gw.channel)
        refused = stub.WatchIncidents(pb.WatchIncidentsRequest(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await refused.read()
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        bad = stub.WatchIncidents(pb.WatchIncidentsRequest(target="Bad Name!"), timeout=5,
                                  metadata=gw.auth("viewer"))
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await bad.read()
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (invalid.value.details() or "").startswith("target='Bad Name!'")

        async with watching(watchdog, "echo", stub=stub, metadata=gw.auth("viewer")) as (sub,):
            os.kill(echo.pid, signal.SIGKILL)
            await until(_async(lambda: resolved_last(sub)), 15)
            assert_one_crash_from_open_to_resolved(sub.received, "echo")
            assert (await incidents(watchdog, "echo")) == sub.received[-1:]


def _caught_up(sub: Subscriber, count: int) -> bool:
    return len(sub.received) >= count or sub.ended()


def _injected(number: int) -> Incident:
    return Incident(id=number, target="lagging", detected_at=datetime.now(UTC), failure_type="crash",
                    evidence=f"injected {number}", last_log_lines=(), restart_count=0, recovered_at=None,
                    recovery_seconds=None, resolved=False, gave_up=False)


@pytest.mark.asyncio
async def test_a_subscriber_that_falls_behind_is_dropped_with_unavailable_and_a_hint(
        watchdog: Watchdog) -> None:
    """Falling behind takes more than SUBSCRIBER_QUEUE (1000) incidents queued for one stream.

    Real failures cannot produce that many in a test, so the incidents are put
    through the supervisor's broadcast directly (what RecordingSink does after
    each write), all in one go: the server's stream gets no turn to drain its
    queue meanwhile, exactly like a stream whose client stopped reading.
    """
    assert watchdog.service.supervisor is not None
    broadcast = watchdog.service.supervisor.broadcast
    async with watching(watchdog, "") as (slow,):
        for number in range(1, SUBSCRIBER_QUEUE + 2):  # one more than fits
            broadcast.publish(_injected(number))
        await until(_async(slow.ended), 10)
        assert slow.error is not None and slow.error.code() == grpc.StatusCode.UNAVAILABLE
        assert "fell behind" in (slow.error.details() or "")
        assert "ListIncidents" in (slow.error.details() or "")
        # What it did get is in order and ends before the newest; the rest it must fetch.
        ids = [i.id for i in slow.received]
        assert ids == sorted(ids) and 0 < len(ids) < SUBSCRIBER_QUEUE + 1
        assert ids[-1] <= SUBSCRIBER_QUEUE
        assert subscribers(watchdog) == 0  # unsubscribed, not left behind to fill up

    # A subscriber that keeps up is never dropped, however many pass through.
    async with watching(watchdog, "lagging") as (fast,):
        sent = 0
        for _batch in range(3):
            for _ in range(SUBSCRIBER_QUEUE // 2):
                sent += 1
                broadcast.publish(_injected(sent))
            await until(_async(functools.partial(_caught_up, fast, sent)), 10)
        assert [i.id for i in fast.received] == list(range(1, sent + 1))
        assert not fast.ended() and fast.error is None
