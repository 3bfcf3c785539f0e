"""cgroup-vm tier, the part that runs INSIDE the virtme-ng VM (NPANEL_IN_VM=1).

Not collected on the host (no test_ prefix): tests/cgroupd/test_vm.py boots one
VM and runs this file there. Every limit is set and every process moved through
cgroupd's own code (Cgroups on KernelFs); the kernel's counters are then read
through the sampler, and events derived as the service derives them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from npanel.cgroupd import events
from npanel.cgroupd.fs import KernelFs
from npanel.cgroupd.groups import Cgroups
from npanel.cgroupd.io import resolve_device
from npanel.cgroupd.model import IoLimit, Limits, MiB
from npanel.cgroupd.sampler import read_stats
from npanel.cgroupd.stats import GroupStats

pytestmark = pytest.mark.cgroup_vm
MOUNT = Path("/sys/fs/cgroup")


@pytest.fixture
def cg() -> Iterator[Cgroups]:
    groups = Cgroups(KernelFs(MOUNT), MOUNT / f"npanel-vmtest-{time.monotonic_ns()}")
    try:
        yield groups
    finally:
        for name in groups.groups():
            groups.delete(name, 10)
        if groups.fs.exists(groups.root):
            groups.fs.rmdir(groups.root)


def _start_in(cg: Cgroups, account: str, script: str) -> subprocess.Popen[bytes]:
    """A shell that waits on stdin until cgroupd has moved it, then runs `script`."""
    proc = subprocess.Popen(["sh", "-c", f"read go; {script}"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    moved, _ = cg.move(account, [proc.pid], descendants=False)
    assert moved == [proc.pid]
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    return proc


def _sample(cg: Cgroups, account: str) -> GroupStats:
    return read_stats(cg.fs, cg.path(account), account)


def test_memory_hog_is_oom_killed_with_an_oom_kill_event(cg: Cgroups) -> None:
    cg.create("hog", Limits(cpu_percent=100, memory_max=64 * MiB, pids_max=64, swap_max=0))
    assert (cg.path("hog") / "memory.max").read_text().strip() == str(64 * MiB)
    before = _sample(cg, "hog").counters()
    # Anonymous memory only (tail keeps the last 300 MiB of the stream): a hog with a
    # large file-backed working set (python over 9p) can thrash in reclaim for minutes
    # before the OOM killer runs, as seen in one CI run.
    hog = _start_in(cg, "hog", "cat /dev/zero | tail -c 300M > /dev/null")
    assert hog.wait(120) != 0  # sh reports its killed pipeline (137)
    after = _sample(cg, "hog")
    assert after.memory_events["oom_kill"] >= 1
    assert after.memory_peak <= 64 * MiB + 4096
    found, _ = events.derive("hog", before, after.counters(), frozenset())
    assert ("oom_kill", "memory", "error") in [(e.kind, e.resource, e.severity) for e in found]


def test_fork_bomb_stops_at_pids_max_with_a_limit_exceeded_event(cg: Cgroups) -> None:
    cg.create("forky", Limits(cpu_percent=100, memory_max=256 * MiB, pids_max=20))
    before = _sample(cg, "forky").counters()
    bomb = _start_in(cg, "forky", "for i in $(seq 60); do sleep 30 & done; wait")
    deadline = time.monotonic() + 60
    while _sample(cg, "forky").pids_events.get("max", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    sample = _sample(cg, "forky")
    assert sample.pids_events["max"] >= 1
    assert sample.pids_current <= 20
    found, _ = events.derive("forky", before, sample.counters(), frozenset())
    assert ("limit_exceeded", "pids", "warning") in [(e.kind, e.resource, e.severity) for e in found]
    assert cg.delete("forky", 20) >= 1
    bomb.wait(10)


def test_cpu_burner_gets_20_percent_of_a_core(cg: Cgroups) -> None:
    cg.create("burn", Limits(cpu_percent=20, memory_max=128 * MiB, pids_max=32))
    burner = _start_in(cg, "burn", "while :; do :; done")
    try:
        time.sleep(1.0)
        start_usage, start = _sample(cg, "burn").cpu["usage_usec"], time.monotonic()
        time.sleep(4.0)
        sample = _sample(cg, "burn")
        share = (sample.cpu["usage_usec"] - start_usage) / 1e6 / (time.monotonic() - start)
        print(f"cpu share at cpu_percent=20: {share * 100:.1f}%")
        assert 0.15 <= share <= 0.25
        assert sample.cpu["nr_throttled"] > 0
    finally:
        cg.delete("burn", 10)
        burner.wait(10)


def test_freeze_stops_progress_and_delete_empties_a_busy_group(cg: Cgroups, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    cg.create("busy", Limits(cpu_percent=50, memory_max=128 * MiB, pids_max=32))
    worker = _start_in(cg, "busy", f"sleep 60 & sleep 60 & while :; do printf x >> {counter}; done")
    time.sleep(1.0)
    cg.set_frozen("busy", True, 10)
    held = counter.stat().st_size
    time.sleep(1.0)
    assert counter.stat().st_size == held
    cg.set_frozen("busy", False, 10)
    time.sleep(1.0)
    assert counter.stat().st_size > held
    assert cg.delete("busy", 20) >= 3
    assert worker.wait(10) == -9
    assert not cg.exists("busy")


def test_the_kernel_offers_every_controller() -> None:
    assert {"cpu", "memory", "pids", "io"} <= set((MOUNT / "cgroup.controllers").read_text().split())
    assert os.geteuid() == 0


def test_io_writer_is_held_near_its_wbps_limit(cg: Cgroups) -> None:
    """io.max on a virtio-scsi disk, through cgroupd's device resolution and writes.

    Direct I/O, so the kernel's IO controller meters each write (buffered writes are
    throttled at writeback, later and less predictably).
    """
    device = _test_disk()
    limit = 2 * MiB
    majmin = resolve_device(device)
    cg.create("io", Limits(cpu_percent=100, memory_max=256 * MiB, pids_max=64,
                           io=(IoLimit(device=majmin, wbps=limit),)))
    assert f"{majmin} rbps=max wbps={limit}" in (cg.path("io") / "io.max").read_text()
    started = time.monotonic()
    writer = _start_in(cg, "io", f"dd if=/dev/zero of={device} bs=64k count=160 oflag=direct")
    assert writer.wait(120) == 0
    rate = 10 * MiB / (time.monotonic() - started)
    # 10 MiB at 2 MiB/s: about 5 s. The first burst may pass before throttling starts.
    assert 0.5 * limit <= rate <= 1.5 * limit, f"{rate / MiB:.2f} MiB/s, limit {limit / MiB} MiB/s"


def _test_disk() -> str:
    """The 64 MiB disk scripts/run-vm-tests.sh attaches (vng --disk), by its size."""
    for block in Path("/sys/block").iterdir():
        if (block / "size").read_text().strip() == str(64 * MiB // 512):
            return f"/dev/{block.name}"
    pytest.fail("no 64 MiB test disk: run this through scripts/run-vm-tests.sh (vng --disk)")
