"""The cpu controller: cpu.max and cpu.weight (cgroup-v2.rst, "CPU Interface Files")."""

from __future__ import annotations

from .model import Limits

CONTROLLER = "cpu"
PERIOD_USEC = 100_000
DEFAULT_WEIGHT = 100


def writes(limits: Limits) -> list[tuple[str, str]]:
    # cpu.max is "$MAX $PERIOD": pct of one CPU = pct/100 * period per period.
    quota = limits.cpu_percent * PERIOD_USEC // 100
    weight = DEFAULT_WEIGHT if limits.cpu_weight is None else limits.cpu_weight
    return [("cpu.max", f"{quota} {PERIOD_USEC}"), ("cpu.weight", str(weight))]
