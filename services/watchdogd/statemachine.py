"""What to do about one target, given what its checks saw. Pure: no I/O, no asyncio.

The engine (engine.py) feeds observations in and carries the decisions out.
Time comes from an injected clock (monotonic seconds), so the tests walk
through hours of policy without waiting.

States:
- HEALTHY: the last check passed.
- FAILING: checks fail; after `failures` in a row (or at once when the process
  was seen to exit) a restart is decided.
- RECOVERING: restarted, waiting for the first passing check; failures are
  expected until `start_timeout_s` has passed, unless the process exits again.
- GAVE_UP: `max_restarts_per_hour` restarts in the last hour and it still
  fails: no more restarts until an operator resets it.
- PAUSED: an operator paused it: checked and recorded, never restarted.

Backoff: a restart after the target was healthy is immediate (recovery time is
what this service is measured by); the n-th consecutive restart that did not
bring it back (a crash loop) waits backoff_initial_s * 2**(n-1), at most
backoff_max_s. A target that flaps (healthy, then failing again) is bounded by
max_restarts_per_hour; that count is cleared once the target has stayed healthy
for healthy_reset_s.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .model import Policy

WINDOW_S = 3600.0
Clock = Callable[[], float]


class State(enum.Enum):
    HEALTHY = "HEALTHY"
    FAILING = "FAILING"
    RECOVERING = "RECOVERING"
    GAVE_UP = "GAVE_UP"
    PAUSED = "PAUSED"


@dataclass(frozen=True)
class Decision:
    """What the engine must do after an observation."""

    open_incident: str | None = None  # the failure type of a new incident
    restart_in_s: float | None = None  # restart after this delay
    resolved: bool = False  # the open incident is over: the target is healthy
    gave_up: bool = False  # the restart limit was reached just now


@dataclass(frozen=True)
class Saved:
    """What must survive a watchdogd restart (stored by the engine): GAVE_UP,
    the restarts of the last hour (as ages, so the clock may differ), the
    backoff exponent."""

    gave_up: bool = False
    restart_ages_s: tuple[float, ...] = ()  # oldest first
    attempt: int = 0


def backoff(policy: Policy, attempt: int) -> float:
    """Seconds to wait before restart number `attempt` (0-based) since the last healthy period."""
    if attempt <= 0:
        return 0.0
    return float(min(policy.backoff_max_s, policy.backoff_initial_s * 2 ** (attempt - 1)))


class Machine:
    def __init__(self, policy: Policy, threshold: int, clock: Clock) -> None:
        self.policy = policy
        self.threshold = threshold
        self._clock = clock
        self.phase = State.RECOVERING  # a new target is starting up
        self.paused = False
        self.gave_up = False
        self.consecutive_failures = 0
        self.attempt = 0
        self.incident_open = False
        self.last_failure = ""
        self._restarts: deque[float] = deque()
        self._since = clock()  # when the current phase began
        self.changes = 0  # bumped whenever what snapshot() returns changes

    @property
    def state(self) -> State:
        if self.paused:
            return State.PAUSED
        if self.gave_up:
            return State.GAVE_UP
        return self.phase

    def snapshot(self) -> Saved:
        now = self._clock()
        self._expire(now)
        return Saved(self.gave_up, tuple(now - t for t in self._restarts), self.attempt)

    def restore(self, saved: Saved, *, incident_open: bool) -> None:
        """Continue where a previous watchdogd left off (before the first observation)."""
        now = self._clock()
        # max(0, age): a restart stored "in the future" (the wall clock was set back) counts as now.
        self._restarts = deque(now - max(0.0, age) for age in saved.restart_ages_s if age < WINDOW_S)
        self.attempt = saved.attempt
        self.gave_up = saved.gave_up
        self.incident_open = incident_open or saved.gave_up

    def restarts_in_window(self) -> int:
        self._expire(self._clock())
        return len(self._restarts)

    def observe_ok(self) -> Decision:
        now = self._clock()
        self.consecutive_failures = 0
        if self.phase is not State.HEALTHY:
            # A restart that brought it back succeeded: the next failure is a new
            # one and gets an immediate restart; flapping is bounded by the hourly limit.
            self.phase, self._since = State.HEALTHY, now
            if self.attempt:
                self.attempt = 0
                self.changes += 1
        elif now - self._since >= self.policy.healthy_reset_s and (self.attempt or self._restarts):
            self.attempt = 0
            self._restarts.clear()
            self.changes += 1
        if self.incident_open and not self.gave_up:
            self.incident_open = False
            return Decision(resolved=True)
        return Decision()

    def observe_failure(self, failure_type: str, *, immediate: bool = False,
                        confirmed: bool = False) -> Decision:
        """A failed check; act once `threshold` failed in a row.

        `immediate`: the process was seen exiting; no re-check, even while starting.
        `confirmed`: two independent observations agree (the Watch stream or its
        keepalive saw the failure, then a Check failed too): this is the
        specification's "on failure re-check, then recover", so the threshold is
        met, but a target that is still starting up is given its start timeout.
        """
        now = self._clock()
        self.consecutive_failures += 1
        if self.phase is State.RECOVERING:
            if not immediate and now - self._since < self.policy.start_timeout_s:
                return Decision()  # still starting up
            failure_type = "start_failure"
        elif self.phase is State.HEALTHY:
            self.phase, self._since = State.FAILING, now
        if not (immediate or confirmed) and self.consecutive_failures < self.threshold:
            return Decision()
        return self._act(failure_type, now)

    def _act(self, failure_type: str, now: float) -> Decision:
        # Only failures acted on are shown: start-up checks that fail while the
        # target boots are tolerated and leave no trace.
        self.last_failure = failure_type
        opened = None if self.incident_open else failure_type
        self.incident_open = True
        if self.paused or self.gave_up:
            return Decision(open_incident=opened)
        self.phase = State.FAILING
        self._expire(now)
        if len(self._restarts) >= self.policy.max_restarts_per_hour:
            self.gave_up = True
            self.changes += 1
            return Decision(open_incident=opened, gave_up=True)
        return Decision(open_incident=opened, restart_in_s=backoff(self.policy, self.attempt))

    def restarted(self) -> None:
        """The driver restarted the target (successfully or not): count it, await start-up."""
        now = self._clock()
        self._restarts.append(now)
        self.attempt += 1
        self.changes += 1
        self.phase, self._since = State.RECOVERING, now
        self.consecutive_failures = 0

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        if self.phase is State.FAILING:
            # Act on the next failed check instead of waiting for a new series.
            self.consecutive_failures = max(self.consecutive_failures, self.threshold - 1)

    def reset(self) -> None:
        """An operator's reset: counters cleared, GAVE_UP left; the next failure acts."""
        self._restarts.clear()
        self.attempt = 0
        self.gave_up = False
        self.changes += 1
        if self.phase is not State.HEALTHY:
            self.phase, self._since = State.FAILING, self._clock()
            self.consecutive_failures = self.threshold - 1

    def _expire(self, now: float) -> None:
        while self._restarts and now - self._restarts[0] >= WINDOW_S:
            self._restarts.popleft()
