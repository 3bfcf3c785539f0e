"""The pids controller: pids.max (cgroup-v2.rst, "PID Interface Files")."""

from __future__ import annotations

from .model import Limits

CONTROLLER = "pids"


def writes(limits: Limits) -> list[tuple[str, str]]:
    return [("pids.max", str(limits.pids_max))]
