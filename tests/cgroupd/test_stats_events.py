"""Stat file parsers and limit events from counter deltas. Pure."""

from __future__ import annotations

import pytest

from npanel.cgroupd import events, stats

pytestmark = pytest.mark.unit

CPU_STAT = "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\n" \
           "throttled_usec 900\nnr_bursts 0\nburst_usec 0\n"
IO_STAT = "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n254:0 rbytes=1 wbytes=0 rios=1 wios=0\n"
PSI = "some avg10=1.50 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.25 avg60=0.00 avg300=0.00 total=99\n"


def test_flat_keyed() -> None:
    assert stats.flat_keyed(CPU_STAT, "cpu.stat")["nr_throttled"] == 4
    with pytest.raises(stats.MalformedStat) as caught:
        stats.flat_keyed("usage_usec 1\nbroken line here\n", "/g/cpu.stat")
    assert caught.value.path == "/g/cpu.stat" and caught.value.line == "broken line here"
    assert "/g/cpu.stat" in str(caught.value)


def test_io_stat_and_psi() -> None:
    devices = stats.io_stat(IO_STAT, "io.stat")
    assert devices[0] == stats.IoDevice("8:0", 4096, 8192, 1, 2)
    assert devices[1].rbytes == 1
    psi = stats.pressure("memory", PSI, "memory.pressure")
    assert (psi.some_avg10, psi.full_avg10, psi.some_total_usec, psi.full_total_usec) == (1.5, 0.25, 1234, 99)
    assert stats.pressure("cpu", "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n", "p").full_total_usec == 0
    with pytest.raises(stats.MalformedStat):
        stats.io_stat("8:0 rbytes\n", "io.stat")
    with pytest.raises(stats.MalformedStat):
        stats.pressure("cpu", "some avg10=x total=1\n", "cpu.pressure")


def test_single_values() -> None:
    assert stats.single("max\n", "pids.max") is None
    assert stats.single("42\n", "pids.current") == 42
    with pytest.raises(stats.MalformedStat, match=r"memory\.max"):
        stats.single("-1", "memory.max")


def test_deltas_become_events_then_recovery() -> None:
    before = {"memory.max": 1, "memory.oom_kill": 0, "pids.max": 5, "cpu.nr_throttled": 10}
    after = {"memory.max": 3, "memory.oom_kill": 1, "pids.max": 5, "cpu.nr_throttled": 12}
    found, hot = events.derive("alice", before, after, frozenset())
    assert [(e.kind, e.resource, e.severity) for e in found] == [
        ("limit_exceeded", "memory", "warning"), ("oom_kill", "memory", "error"),
        ("limit_exceeded", "cpu", "info")]
    assert found[0].details["delta"] == 2 and hot == {"memory", "cpu"}
    calm, hot = events.derive("alice", after, after, hot)
    assert [(e.kind, e.resource) for e in calm] == [("recovery", "cpu"), ("recovery", "memory")]
    assert hot == frozenset()


def test_a_recreated_group_starts_counting_again() -> None:
    found, _ = events.derive("a", {"pids.max": 50}, {"pids.max": 2}, frozenset())
    assert [(e.kind, e.details["delta"]) for e in found] == [("limit_exceeded", 2)]
