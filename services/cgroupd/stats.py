"""Pure parsers of cgroup v2 stat files (cgroup-v2.rst, "Interface Files" and
"PSI"). A malformed line raises MalformedStat naming the file and the text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


class MalformedStat(ValueError):
    def __init__(self, path: str, line: str, expected: str) -> None:
        self.path = path
        self.line = line
        super().__init__(f"{path}: malformed line {line!r}: expected {expected}")


def flat_keyed(text: str, path: str) -> dict[str, int]:
    """"KEY VALUE" per line: cpu.stat, memory.stat, memory.events, pids.events, cgroup.events."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise MalformedStat(path, line, "'<key> <unsigned integer>'")
        values[parts[0]] = int(parts[1])
    return values


def nested_keyed(text: str, path: str) -> dict[str, dict[str, str]]:
    """"KEY SUBKEY=VALUE ..." per line: io.stat, io.max, and PSI files."""
    values: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, *pairs = line.split()
        entry: dict[str, str] = {}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep or not name:
                raise MalformedStat(path, line, "'<key> <name>=<value> ...'")
            entry[name] = value
        values[key] = entry
    return values


def single(text: str, path: str) -> int | None:
    """A one-value file (memory.current, pids.max, ...); "max" is None (unlimited)."""
    value = text.strip()
    if value == "max":
        return None
    if not value.isdigit():
        raise MalformedStat(path, value, "an unsigned integer or 'max'")
    return int(value)


@dataclass(frozen=True)
class Pressure:
    resource: str
    some_avg10: float = 0.0
    full_avg10: float = 0.0
    some_total_usec: int = 0
    full_total_usec: int = 0


def pressure(resource: str, text: str, path: str) -> Pressure:
    """"some avg10=0.00 avg60=0.00 avg300=0.00 total=0" and the same for "full"."""
    rows = nested_keyed(text, path)
    try:
        some, full = rows.get("some", {}), rows.get("full", {})
        return Pressure(resource, float(some.get("avg10", 0)), float(full.get("avg10", 0)),
                        int(some.get("total", 0)), int(full.get("total", 0)))
    except ValueError as exc:
        raise MalformedStat(path, text.strip(), "numbers in avg10 and total") from exc


@dataclass(frozen=True)
class IoDevice:
    device: str
    rbytes: int = 0
    wbytes: int = 0
    rios: int = 0
    wios: int = 0


def io_stat(text: str, path: str) -> list[IoDevice]:
    devices = []
    for device, entry in nested_keyed(text, path).items():
        try:
            counts = {k: int(entry.get(k, 0)) for k in ("rbytes", "wbytes", "rios", "wios")}
        except ValueError as exc:
            raise MalformedStat(path, f"{device} {entry}", "integer counters") from exc
        devices.append(IoDevice(device, **counts))
    return devices


@dataclass(frozen=True)
class GroupStats:
    """What GetStats answers and the metrics export; absent files leave defaults."""

    account_id: str
    populated: bool = False
    frozen: bool = False
    cpu: Mapping[str, int] = field(default_factory=dict)
    memory_current: int = 0
    memory_peak: int = 0
    memory_max: int | None = None
    memory_high: int | None = None
    swap_current: int = 0
    swap_max: int | None = None
    memory_events: Mapping[str, int] = field(default_factory=dict)
    pids_current: int = 0
    pids_max: int | None = None
    pids_events: Mapping[str, int] = field(default_factory=dict)
    io: tuple[IoDevice, ...] = ()
    pressure: tuple[Pressure, ...] = ()
    unavailable: tuple[str, ...] = ()

    def counters(self) -> dict[str, int]:
        """The monotonic counters events are derived from (see events.py)."""
        return {
            "memory.max": self.memory_events.get("max", 0),
            "memory.high": self.memory_events.get("high", 0),
            "memory.oom_kill": self.memory_events.get("oom_kill", 0),
            "pids.max": self.pids_events.get("max", 0),
            "cpu.nr_throttled": self.cpu.get("nr_throttled", 0),
        }
