"""Limit hits from counter deltas. Pure: the watcher feeds it samples.

Sources (cgroup-v2.rst): memory.events "max" (usage hit memory.max) and
"oom_kill"; pids.events "max" (a fork refused at pids.max); cpu.stat
"nr_throttled" (periods the group ran out of its cpu.max quota). A resource
that was hit in one sample and not in the next recovers.
"""

from __future__ import annotations

from collections.abc import Mapping

from .model import Event

# counter -> (event kind, resource, severity, what it means)
SOURCES: dict[str, tuple[str, str, str, str]] = {
    "memory.max": ("limit_exceeded", "memory", "warning", "memory usage reached memory.max"),
    "memory.oom_kill": ("oom_kill", "memory", "error", "processes OOM-killed at memory.max"),
    "pids.max": ("limit_exceeded", "pids", "warning", "forks refused at pids.max"),
    "cpu.nr_throttled": ("limit_exceeded", "cpu", "info", "periods throttled at cpu.max"),
}


def derive(account_id: str, before: Mapping[str, int], after: Mapping[str, int],
           hot: frozenset[str]) -> tuple[list[Event], frozenset[str]]:
    """Events between two samples, and the resources still being hit now.

    A counter lower than before means the group was recreated: it starts over,
    so the new value is the delta."""
    found: list[Event] = []
    hit: set[str] = set()
    for counter, (kind, resource, severity, meaning) in SOURCES.items():
        old, new = before.get(counter, 0), after.get(counter, 0)
        delta = new - old if new >= old else new
        if delta > 0:
            hit.add(resource)
            found.append(Event(account_id, kind, severity, f"{meaning}: +{delta} (total {new})",
                               resource=resource, details={"counter": counter, "delta": delta,
                                                           "total": new}))
    for resource in sorted(hot - hit):
        found.append(Event(account_id, "recovery", "info", f"{resource} no longer at its limit",
                           resource=resource))
    return found, frozenset(hit)
