"""The watchdog's decisions, walked through with a fake clock: no I/O, no waiting."""

from __future__ import annotations

import pytest

from npanel.watchdogd.model import Policy
from npanel.watchdogd.statemachine import Decision, Machine, State, backoff

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def healthy_machine(policy: Policy | None = None, threshold: int = 2) -> tuple[Machine, Clock]:
    clock = Clock()
    machine = Machine(policy or Policy(), threshold, clock)
    machine.observe_ok()
    return machine, clock


def test_a_new_target_is_starting_and_tolerates_failures_until_the_start_timeout() -> None:
    clock = Clock()
    machine = Machine(Policy(start_timeout_s=15), 2, clock)
    assert machine.state is State.RECOVERING
    assert machine.observe_failure("crash") == Decision()
    clock.now += 15
    decision = machine.observe_failure("crash")
    assert decision.open_incident == "start_failure" and decision.restart_in_s == 0


def test_failures_below_the_threshold_do_nothing_then_the_first_restart_is_immediate() -> None:
    machine, _ = healthy_machine(threshold=2)
    assert machine.observe_failure("hang") == Decision()
    assert machine.state is State.FAILING
    assert machine.observe_failure("hang") == Decision(open_incident="hang", restart_in_s=0.0)


def test_an_observed_exit_acts_at_once() -> None:
    machine, _ = healthy_machine(threshold=3)
    assert machine.observe_failure("crash", immediate=True) == Decision(open_incident="crash", restart_in_s=0)


def test_a_failure_confirmed_by_two_observations_acts_without_another_check() -> None:
    machine, _ = healthy_machine(threshold=3)
    decision = machine.observe_failure("hang", confirmed=True)
    assert decision.open_incident == "hang" and decision.restart_in_s == 0


def test_a_confirmed_failure_while_starting_waits_for_the_start_timeout() -> None:
    clock = Clock()
    machine = Machine(Policy(start_timeout_s=15), 2, clock)
    assert machine.observe_failure("crash", confirmed=True) == Decision()
    clock.now += 15
    assert machine.observe_failure("crash", confirmed=True).open_incident == "start_failure"


def test_recovery_resolves_the_incident() -> None:
    machine, _ = healthy_machine()
    machine.observe_failure("crash", immediate=True)
    machine.restarted()
    assert machine.state is State.RECOVERING
    assert machine.observe_ok() == Decision(resolved=True)
    assert machine.state.value == "HEALTHY"
    assert machine.observe_ok() == Decision()


def test_backoff_grows_exponentially_up_to_the_maximum() -> None:
    policy = Policy(backoff_initial_s=1, backoff_max_s=5)
    assert [backoff(policy, n) for n in range(6)] == [0, 1, 2, 4, 5, 5]


def test_consecutive_restarts_back_off() -> None:
    machine, _ = healthy_machine(Policy(backoff_initial_s=1, max_restarts_per_hour=10))
    delays = []
    for _ in range(4):
        delays.append(machine.observe_failure("crash", immediate=True).restart_in_s)
        machine.restarted()
    assert delays == [0, 1, 2, 4]


def test_the_restart_limit_leads_to_gave_up_and_no_more_restarts() -> None:
    machine, _ = healthy_machine(Policy(max_restarts_per_hour=3))
    for _ in range(3):
        assert machine.observe_failure("crash", immediate=True).restart_in_s is not None
        machine.restarted()
    decision = machine.observe_failure("crash", immediate=True)
    assert decision.gave_up and decision.restart_in_s is None and decision.open_incident is None
    assert machine.state is State.GAVE_UP
    # Staying down or coming back by itself changes nothing until an operator resets it.
    assert machine.observe_failure("crash", immediate=True) == Decision()
    assert machine.observe_ok() == Decision() and machine.state is State.GAVE_UP


def test_reset_clears_gave_up_and_the_next_failure_restarts() -> None:
    machine, _ = healthy_machine(Policy(max_restarts_per_hour=1), threshold=2)
    machine.observe_failure("crash", immediate=True)
    machine.restarted()
    assert machine.observe_failure("crash", immediate=True).gave_up
    machine.reset()
    assert machine.state is State.FAILING and machine.restarts_in_window() == 0
    assert machine.observe_failure("crash").restart_in_s == 0


def test_restarts_older_than_an_hour_no_longer_count() -> None:
    machine, clock = healthy_machine(Policy(max_restarts_per_hour=2, healthy_reset_s=86400))
    for _ in range(2):
        machine.observe_failure("crash", immediate=True)
        machine.restarted()
    clock.now += 3600
    assert machine.restarts_in_window() == 0
    assert machine.observe_failure("crash", immediate=True).restart_in_s is not None


def test_a_long_healthy_period_resets_the_counters() -> None:
    machine, clock = healthy_machine(Policy(backoff_initial_s=1, healthy_reset_s=300))
    for _ in range(3):
        machine.observe_failure("crash", immediate=True)
        machine.restarted()
    machine.observe_ok()
    assert machine.attempt == 0  # it came back: the next restart is immediate again
    clock.now += 299
    machine.observe_ok()
    assert machine.restarts_in_window() == 3
    clock.now += 1
    machine.observe_ok()
    assert machine.restarts_in_window() == 0
    assert machine.observe_failure("crash", immediate=True).restart_in_s == 0


def test_paused_records_but_never_restarts_and_resume_acts_on_the_next_failure() -> None:
    machine, _ = healthy_machine(threshold=3)
    machine.pause()
    assert machine.state is State.PAUSED
    for _ in range(2):
        assert machine.observe_failure("unhealthy") == Decision()
    assert machine.observe_failure("unhealthy") == Decision(open_incident="unhealthy")
    assert machine.observe_failure("unhealthy") == Decision()
    machine.resume()
    assert machine.state.value == "FAILING"
    assert machine.observe_failure("unhealthy") == Decision(restart_in_s=0)


def test_a_crash_while_recovering_is_a_start_failure() -> None:
    machine, _ = healthy_machine()
    machine.observe_failure("crash", immediate=True)
    machine.restarted()
    decision = machine.observe_failure("crash", immediate=True)
    assert decision.restart_in_s == 1.0 and decision.open_incident is None
    assert machine.last_failure == "start_failure"  # what was acted on, as classified


def test_failures_tolerated_during_start_up_are_not_shown() -> None:
    machine, _ = healthy_machine()
    machine.observe_failure("crash", immediate=True)
    machine.restarted()
    machine.last_failure = ""
    assert machine.observe_failure("unhealthy").restart_in_s is None  # still starting: tolerated
    assert machine.last_failure == ""


def test_a_snapshot_restored_into_a_new_machine_keeps_gave_up_and_the_window() -> None:
    policy = Policy(max_restarts_per_hour=2)
    machine, clock = healthy_machine(policy)
    changes = machine.changes
    for _ in range(2):
        machine.observe_failure("crash", immediate=True)
        machine.restarted()
        clock.now += 100
    assert machine.observe_failure("crash", immediate=True).gave_up
    assert machine.changes > changes
    saved = machine.snapshot()
    assert saved.gave_up and saved.restart_ages_s == (200.0, 100.0)

    later = Clock()  # another process: another monotonic origin
    later.now = 5.0
    revived = Machine(policy, 2, later)
    revived.restore(saved, incident_open=False)
    assert revived.state is State.GAVE_UP and revived.restarts_in_window() == 2
    assert revived.observe_ok() == Decision()  # healthy by hand: still GAVE_UP, incident stays open
    later.now += 3600 - 150  # the older restart leaves the hour, the newer one not yet
    assert revived.restarts_in_window() == 1
