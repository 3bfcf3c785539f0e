"""The memory controller (cgroup-v2.rst, "Memory Interface Files").

Order matters and follows systemd: memory.min, memory.low, memory.high, then
memory.max, then memory.swap.max. Writing high before max means a lowered
limit first throttles (reclaim) before the hard limit can OOM-kill.
"""

from __future__ import annotations

from .model import Limits

CONTROLLER = "memory"
# The order every write of this controller follows.
FILES = ("memory.min", "memory.low", "memory.high", "memory.max", "memory.swap.max")
PAGE = 4096


def writes(limits: Limits) -> list[tuple[str, str]]:
    high = "max" if limits.memory_high is None else str(limits.memory_high)
    return [
        ("memory.high", high),
        ("memory.max", str(limits.memory_max)),
        ("memory.swap.max", str(limits.swap_max)),
    ]


def same(written: str, read_back: str) -> bool:
    """The kernel rounds byte limits down to whole pages."""
    if written == "max" or read_back == "max":
        return written == read_back
    return int(written) // PAGE == int(read_back) // PAGE
