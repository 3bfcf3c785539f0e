"""Small measuring tools for cgroupd's benchmark: timers, percentiles, /proc/meminfo,
memory.stat, the cgroup-tools commands, the plain-syscall floor, and a calibration
that says how much slower Python and syscalls are in the VM than on the host."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import percentile

from npanel.cgroupd import stats

# cgroup-tools print errors and exit non-zero; a benchmark of a failing tool would mean nothing.
TOOL_TIMEOUT_S = 30.0


def summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """n, min, p50, p90, p99, max and mean of per-call times in ms."""
    ordered = sorted(samples_ms)
    return {"n": float(len(ordered)), "min": ordered[0], "p50": percentile(ordered, 50),
            "p90": percentile(ordered, 90), "p99": percentile(ordered, 99), "max": ordered[-1],
            "mean": statistics.fmean(ordered)}


def timed_ms(action: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    action()
    return (time.perf_counter_ns() - start) / 1e6


def run_tool(argv: Sequence[str]) -> None:
    """Run one cgroup-tools command; a failure stops the benchmark with its message."""
    done = subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=TOOL_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... exited with {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()}")


def run_tool_output(argv: Sequence[str]) -> int:
    """Run a command that prints (cgget); returns how many bytes it printed."""
    done = subprocess.run(list(argv), capture_output=True, timeout=TOOL_TIMEOUT_S * 10, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... exited with {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()[:500]}")
    return len(done.stdout)


def cgget_readable(group: str, files: Sequence[str]) -> list[str]:
    """The files `cgget -r` can read for `group` (cgget 2.0.2 refuses some cgroup v2 files,
    and one refused file fails the whole call)."""
    return [name for name in files
            if subprocess.run(["cgget", "-r", name, group], capture_output=True, timeout=TOOL_TIMEOUT_S,
                              check=False).returncode == 0]


def cgset_args(planned: Sequence[tuple[str, str]]) -> list[str]:
    """`-r file=value` for each write cgroupd plans, in the same order."""
    return [arg for name, value in planned for arg in ("-r", f"{name}={value}")]


def floor_create(group: Path, planned: Sequence[tuple[str, str]]) -> None:
    """The least Python can do for the same result: mkdir and one write(2) per file,
    no validation, no path checks, no controller check."""
    os.mkdir(group)
    for name, value in planned:
        fd = os.open(group / name, os.O_WRONLY)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)


def enable_controllers(group: Path, controllers: str) -> None:
    """Untimed set-up for the floor and cgroup-tools roots (cgroupd does this itself)."""
    group.mkdir(exist_ok=True)
    (group / "cgroup.subtree_control").write_text(controllers)


def remove_children(root: Path) -> int:
    """rmdir every (empty) child group, then the root; returns how many children."""
    children = [p for p in root.iterdir() if p.is_dir()]
    for child in children:
        child.rmdir()
    root.rmdir()
    return len(children)


def meminfo() -> dict[str, int]:
    """/proc/meminfo in kB."""
    values: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0])
    return values


def memory_stat(group: Path) -> dict[str, int]:
    return stats.flat_keyed((group / "memory.stat").read_text(), str(group / "memory.stat"))


def own_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError("/proc/self/status has no VmRSS line")


CPU_STAT = ("usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 42\n"
            "nr_throttled 7\nthrottled_usec 9000\nnr_bursts 0\nburst_usec 0\n")


def calibrate(repeats: int = 3) -> dict[str, float]:
    """Two fixed workloads, best of `repeats`, in µs per operation: parsing a cpu.stat
    text with cgroupd's own parser (pure Python), and open+read+close of a /proc file
    (syscalls). Run on the host and in the VM, their ratio is how much slower the VM is."""
    def parse() -> None:
        for _ in range(20_000):
            stats.flat_keyed(CPU_STAT, "cpu.stat")

    def syscalls() -> None:
        for _ in range(5_000):
            fd = os.open("/proc/self/stat", os.O_RDONLY)
            os.read(fd, 4096)
            os.close(fd)

    parse_us = min(timed_ms(parse) for _ in range(repeats)) * 1000 / 20_000
    syscall_us = min(timed_ms(syscalls) for _ in range(repeats)) * 1000 / 5_000
    return {"parse_cpu_stat_us": parse_us, "open_read_close_us": syscall_us}
