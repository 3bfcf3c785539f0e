"""The supervision loop of each target: check, decide (statemachine), act (driver), record.

One asyncio task per target. Between periodic checks the loop sleeps until the
next one is due or until something wakes it: the gRPC Watch stream seeing
NOT_SERVING or a dropped connection (a crash, or a frozen process whose
keepalive pings go unanswered), the process driver seeing its child exit, or an
operator action. A failure the Watch stream saw is checked at once; if that
Check fails too, the two observations are the re-check and the target is
recovered without waiting for another interval.

Recording (PostgreSQL) never prevents recovery: each write is bounded
(RECORD_TIMEOUT_S) and a failed one is logged; the restart happens anyway. The
incident row is written before the restart, so a database that hangs delays
it by up to RECORD_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from .checks import CheckResult, Probe
from .drivers import Driver, DriverError, exit_text
from .metrics import WatchdogMetrics
from .model import Incident, SavedState, Target
from .statemachine import Decision, Machine, Saved, State

log = logging.getLogger(__name__)
RECOVERING_POLL_S = 0.1  # how often a restarting target is re-checked
RETRY_S = 0.5  # re-check after a failure, before acting on the threshold
RECORD_TIMEOUT_S = 5.0  # a database that hangs must not stop supervision
EXIT_REPORT_S = 0.3  # how long a refused connection waits for the child's exit status


class IncidentSink(Protocol):
    """Where incidents are written (the store) and announced (WatchIncidents)."""

    async def open_incident(self, target: str, detected_at: datetime, failure_type: str, evidence: str,
                            last_log_lines: list[str]) -> Incident: ...

    async def update_incident(self, incident_id: int, restart_count: int, gave_up: bool) -> Incident: ...

    async def resolve_incident(self, incident_id: int, recovered_at: datetime, recovery_seconds: float,
                               restart_count: int) -> Incident: ...

    async def open_incident_of(self, target: str) -> Incident | None: ...

    async def load_state(self, target: str) -> SavedState | None: ...

    async def save_state(self, target: str, state: SavedState) -> None: ...


@dataclass
class OpenIncident:
    id: int | None  # None when the database could not record it
    detected: float  # monotonic
    restarts: int = 0


class Runner:
    def __init__(self, target: Target, probe: Probe, driver: Driver, sink: IncidentSink,
                 metrics: WatchdogMetrics, restarts_enabled: Callable[[], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self.probe = probe
        self.driver = driver
        self._sink = sink
        self._metrics = metrics
        self._restarts_enabled = restarts_enabled
        self._clock = clock
        self.machine = Machine(target.policy, target.check.failures, clock)
        if target.paused:
            self.machine.pause()
        self._wake = asyncio.Event()
        self._exit_code: int | None = None
        self._exited = asyncio.Event()
        self._watch_evidence: str | None = None
        self._incident: OpenIncident | None = None
        self._saved_changes = 0  # machine.changes when its state was last stored
        self._restored = False  # stored state read; until then nothing is stored over it
        self.last_result = CheckResult(False, evidence="not checked yet")

    def poke(self) -> None:
        """Check now instead of at the next interval."""
        self._wake.set()

    def watch_failed(self, evidence: str) -> None:
        """The probe's stream saw a failure between checks: check now, and count it."""
        self._watch_evidence = evidence
        self._wake.set()

    def child_exited(self, code: int) -> None:
        self._exit_code = code
        self._exited.set()
        self._wake.set()

    async def run(self) -> None:
        name = self.target.name
        if self.machine.gave_up:  # as systemd leaves a unit that hit its start limit
            log.warning("%s: GAVE_UP before this watchdogd started: not started until "
                        "`npanel watchdog reset %s`", name, name)
        else:
            try:
                await self.driver.start()
            except DriverError as exc:
                log.error("%s: %s", name, exc)
                self._exit_code = 127
        self.probe.watch(self.watch_failed)
        while True:
            try:
                await self.step()
            except Exception:  # a bug must not end supervision of this target
                log.exception("%s: supervision step failed; continuing", name)
            if self.machine.changes != self._saved_changes and self._restored:
                await self._persist()
            await self._sleep()

    async def restore(self) -> None:
        """Counters, GAVE_UP and the open incident a previous watchdogd left behind.

        Called by the supervisor before run(), so the API never shows a target
        that has not been restored yet."""
        name = self.target.name
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_S):
                saved = await self._sink.load_state(name)
                incident = await self._sink.open_incident_of(name)
        except Exception as exc:
            # Supervised with fresh counters, but never stored over what could not be read.
            log.error("%s: stored state unreadable (%r); fresh counters until watchdogd restarts, "
                      "stored state kept", name, exc)
            return
        self._restored = True
        mono, wall = self._clock(), datetime.now(UTC)
        if incident is not None:
            age = (wall - incident.detected_at).total_seconds()
            self._incident = OpenIncident(incident.id, mono - age, incident.restart_count)
        if saved is not None:
            ages = tuple((wall - t).total_seconds() for t in saved.restarts)
            self.machine.restore(Saved(saved.gave_up, ages, saved.attempt),
                                 incident_open=incident is not None)
            self._saved_changes = self.machine.changes
            if saved.gave_up:
                self._metrics.gave_up.labels(name).set(1)
            log.info("%s: restored %s, %d restart(s) in the last hour", name,
                     "GAVE_UP" if saved.gave_up else "counters", self.machine.restarts_in_window())
        elif incident is not None:
            self.machine.restore(Saved(), incident_open=True)

    async def _persist(self) -> None:
        changes, snap, wall = self.machine.changes, self.machine.snapshot(), datetime.now(UTC)
        state = SavedState(snap.gave_up, tuple(wall - timedelta(seconds=a) for a in snap.restart_ages_s),
                           snap.attempt)
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_S):
                await self._sink.save_state(self.target.name, state)
        except Exception as exc:  # tried again after the next step
            log.warning("%s: could not store the restart counters (%r); supervision goes on",
                        self.target.name, exc)
            return
        self._saved_changes = changes

    async def step(self) -> None:
        """One observation and what follows from it."""
        if self._exit_code is None:
            watched, self._watch_evidence = self._watch_evidence, None
            result = await self.probe.check()
            if result.ok or not await self._child_exit_reported(result):
                await self._observe(result, watched)
                return
        assert self._exit_code is not None
        code, self._exit_code = self._exit_code, None
        self._exited.clear()
        result = CheckResult(False, "crash", exit_text(code))
        await self._handle(result, self.machine.observe_failure("crash", immediate=True))

    async def _child_exit_reported(self, result: CheckResult) -> bool:
        """A refused connection to our own child: its exit status, about to be
        reported, is the better evidence. Wait a moment for it."""
        if result.failure_type != "crash" or self.target.driver.kind != "process":
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(EXIT_REPORT_S):
                await self._exited.wait()
        return self._exit_code is not None

    async def _observe(self, result: CheckResult, watched: str | None) -> None:
        self._metrics.check_latency.labels(self.target.name, self.target.check.kind).observe(result.latency_s)
        if not result.ok and watched is not None:
            result = CheckResult(False, result.failure_type, f"{watched}; then {result.evidence}",
                                 result.latency_s)
        self.last_result = result
        self._metrics.health.labels(self.target.name).set(1 if result.ok else 0)
        if result.ok:
            await self._handle(result, self.machine.observe_ok())
        else:
            decision = self.machine.observe_failure(result.failure_type, confirmed=watched is not None)
            await self._handle(result, decision)

    async def _sleep(self) -> None:
        state = self.machine.state
        delay = self.target.check.interval_s
        if state is State.RECOVERING:
            delay = min(delay, RECOVERING_POLL_S)
        elif state is State.FAILING:
            delay = min(delay, RETRY_S)
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
        # cancellation that arrives as the wait ends, and this loop would never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()
        self._wake.clear()

    async def _handle(self, result: CheckResult, decision: Decision) -> None:
        name = self.target.name
        if decision.open_incident:
            log.warning("%s: %s failure: %s", name, decision.open_incident, result.evidence)
            await self._open(decision.open_incident, result.evidence)
        if decision.gave_up:
            await self._give_up()
        if decision.restart_in_s is not None:
            await self._restart(decision.restart_in_s)
        if decision.resolved:
            await self._resolve()

    async def _open(self, failure_type: str, evidence: str) -> None:
        detected, now = self._clock(), datetime.now(UTC)
        self._incident = OpenIncident(None, detected)
        try:
            lines = await self.driver.last_logs()
        except Exception as exc:  # the incident is written without them
            lines = [f"[watchdogd] could not read the last log lines: {exc!r}"]
        incident = await self._record(self._sink.open_incident(
            self.target.name, now, failure_type, evidence, lines))
        if incident is not None:
            self._incident.id = incident.id

    async def _give_up(self) -> None:
        name = self.target.name
        log.error("%s: GAVE_UP after %d restarts in the last hour; `npanel watchdog reset %s` "
                  "once the cause is fixed", name, self.machine.restarts_in_window(), name)
        self._metrics.gave_up.labels(name).set(1)
        self._metrics.recoveries.labels(name, "gave_up").inc()
        await self._update(gave_up=True)

    async def _restart(self, delay_s: float) -> None:
        name = self.target.name
        if self.target.driver.kind == "none":
            return  # observe only
        if not self._restarts_enabled():
            log.warning("%s: restart suppressed: the agent_watchdog flag is off", name)
            self._metrics.recoveries.labels(name, "suppressed").inc()
            return
        if delay_s > 0:
            log.info("%s: backing off %.1f s before restart", name, delay_s)
            await asyncio.sleep(delay_s)
            if self.machine.state is not State.FAILING:  # paused or reset meanwhile
                return
        log.info("%s: restarting (%s driver)", name, self.target.driver.kind)
        result = "restarted"
        try:
            await self.driver.restart()
        except Exception as exc:  # DriverError, or a driver's own library failing: counted all the same
            log.error("%s: restart failed: %s", name, exc if isinstance(exc, DriverError) else repr(exc))
            result = "failed"
            self._exit_code = 1 if self.target.driver.kind != "none" else None
        self.machine.restarted()
        self._metrics.recoveries.labels(name, result).inc()
        if self._incident is not None:
            self._incident.restarts += 1
        await self._update(gave_up=False)

    async def _resolve(self) -> None:
        name, incident = self.target.name, self._incident
        self._incident = None
        self._metrics.gave_up.labels(name).set(0)
        if incident is None:
            return
        seconds = max(0.0, self._clock() - incident.detected)
        log.info("%s: healthy again %.2f s after the failure was detected", name, seconds)
        self._metrics.recoveries.labels(name, "recovered").inc()
        self._metrics.recovery_latency.labels(name).observe(seconds)
        if incident.id is not None:
            await self._record(self._sink.resolve_incident(
                incident.id, datetime.now(UTC), seconds, incident.restarts))

    async def _update(self, *, gave_up: bool) -> None:
        incident = self._incident
        if incident is not None and incident.id is not None:
            await self._record(self._sink.update_incident(incident.id, incident.restarts, gave_up))

    async def _record(self, write: Awaitable[Incident]) -> Incident | None:
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_S):
                return await write
        except Exception:
            log.exception("%s: could not record the incident; supervision goes on", self.target.name)
            return None

    def reset(self) -> None:
        self.machine.reset()
        self._metrics.gave_up.labels(self.target.name).set(0)
        self.poke()

    async def close(self) -> None:
        await self.probe.close()
        await self.driver.stop()
