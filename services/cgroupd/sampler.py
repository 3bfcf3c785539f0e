"""Reads one group's stat files from the kernel into a GroupStats.

A file the kernel does not offer for the group (no controller on this mount,
memory.peak before Linux 5.19, PSI disabled) is listed in `unavailable`, never
guessed; a malformed file raises MalformedStat naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import stats
from .fs import CgroupFs


class _Reader:
    def __init__(self, fs: CgroupFs, group: Path) -> None:
        self.fs = fs
        self.group = group
        self.unavailable: list[str] = []

    def text(self, name: str) -> str | None:
        try:
            return self.fs.read(self.group / name)
        except FileNotFoundError:
            self.unavailable.append(name)
            return None

    def flat(self, name: str) -> dict[str, int]:
        text = self.text(name)
        return {} if text is None else stats.flat_keyed(text, str(self.group / name))

    def single(self, name: str, default: int | None = 0) -> int | None:
        text = self.text(name)
        return default if text is None else stats.single(text, str(self.group / name))

    def count(self, name: str) -> int:
        return self.single(name) or 0


def read_stats(fs: CgroupFs, group: Path, account_id: str) -> stats.GroupStats:
    r = _Reader(fs, group)
    events = r.flat("cgroup.events")
    fields: dict[str, Any] = {
        "populated": events.get("populated") == 1, "frozen": events.get("frozen") == 1,
        "cpu": r.flat("cpu.stat"),
        "memory_current": r.count("memory.current"), "memory_peak": r.count("memory.peak"),
        "memory_max": r.single("memory.max", None), "memory_high": r.single("memory.high", None),
        "swap_current": r.count("memory.swap.current"), "swap_max": r.single("memory.swap.max", None),
        "memory_events": r.flat("memory.events"),
        "pids_current": r.count("pids.current"), "pids_max": r.single("pids.max", None),
        "pids_events": r.flat("pids.events"),
    }
    io_text = r.text("io.stat")
    fields["io"] = tuple(stats.io_stat(io_text, str(group / "io.stat"))) if io_text else ()
    pressure = []
    for resource in ("cpu", "memory", "io"):
        text = r.text(f"{resource}.pressure")
        if text:
            pressure.append(stats.pressure(resource, text, str(group / f"{resource}.pressure")))
    fields["pressure"] = tuple(pressure)
    return stats.GroupStats(account_id=account_id, unavailable=tuple(r.unavailable), **fields)
