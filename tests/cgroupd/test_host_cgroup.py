"""cgroup-host tier: cgroupd's group code on this machine's real cgroup2 mount.

On these hybrid hosts the cgroup2 at /sys/fs/cgroup/unified offers no
controllers: groups, moving processes, freeze, kill, cgroup.events and cpu.stat
are real here, and limit files do not exist (the last test shows cgroupd says
so instead of skipping them). Enforcement is proven in the cgroup_vm tier.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from npanel.cgroupd.fs import KernelFs, find_cgroup2_mount
from npanel.cgroupd.groups import Cgroups
from npanel.cgroupd.model import DEFAULT_LIMITS
from npanel.cgroupd.sampler import read_stats
from npanel.common.errors import FailedPrecondition
from tests.support.tiers import _writable_cgroup2

pytestmark = pytest.mark.cgroup_host


def _cleanup(root: Path) -> None:
    """Kill and remove every group under `root`, then `root`, even after a failure."""
    if not root.exists():
        return
    for group in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        (group / "cgroup.kill").write_text("1")
        for _ in range(200):
            if "populated 0" in (group / "cgroup.events").read_text():
                break
            time.sleep(0.01)
        group.rmdir()
    root.rmdir()


@pytest.fixture
def cg() -> Iterator[Cgroups]:
    mount = Path(_writable_cgroup2() or "/sys/fs/cgroup/unified")
    root = mount / f"npanel-test-{os.getpid()}-{time.monotonic_ns()}"
    try:
        yield Cgroups(KernelFs(mount), root)
    finally:
        _cleanup(root)


def _spawn(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_the_mount_is_found_in_mountinfo(cg: Cgroups) -> None:
    found = find_cgroup2_mount(cg.root, Path("/proc/self/mountinfo").read_text())
    assert found == cg.fs.mount


def test_create_move_stats_delete_a_busy_group(cg: Cgroups) -> None:
    cg.create("alice", None)
    burner = _spawn("sh", "-c", "while :; do :; done")
    try:
        moved, vanished = cg.move("alice", [burner.pid], descendants=True)
        assert moved == [burner.pid] and vanished == []
        assert cg.procs("alice") == [burner.pid]
        assert cg.events("alice")["populated"] == "1"
        first = read_stats(cg.fs, cg.path("alice"), "alice").cpu["usage_usec"]
        time.sleep(0.3)
        sample = read_stats(cg.fs, cg.path("alice"), "alice")
        assert sample.cpu["usage_usec"] > first and sample.populated
        assert "memory.max" in sample.unavailable and "pids.max" in sample.unavailable
        assert cg.delete("alice", 5) == 1
        assert burner.wait(5) == -9
        assert not cg.exists("alice")
    finally:
        burner.kill()
        burner.wait()


def test_move_reports_vanished_pids_and_moves_trees(cg: Cgroups) -> None:
    cg.create("bob", None)
    gone = _spawn("true")
    gone.wait()
    parent = _spawn("sh", "-c", "sleep 30 & sleep 30 & wait")
    try:
        time.sleep(0.2)
        moved, vanished = cg.move("bob", [parent.pid, gone.pid], descendants=True)
        assert vanished == [gone.pid]
        assert moved[0] == parent.pid and len(moved) == 3
        assert sorted(cg.procs("bob")) == sorted(moved)
    finally:
        cg.delete("bob", 5)
        parent.wait(5)


def test_freeze_stops_progress_and_thaw_resumes(cg: Cgroups, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    cg.create("carol", None)
    worker = _spawn("sh", "-c", f"while :; do printf x >> {counter}; done")
    try:
        cg.move("carol", [worker.pid], descendants=False)
        time.sleep(0.2)
        cg.set_frozen("carol", True, 5)
        assert cg.events("carol")["frozen"] == "1"
        time.sleep(0.1)
        held = counter.stat().st_size
        time.sleep(0.5)
        assert counter.stat().st_size == held, "a frozen group made progress"
        cg.set_frozen("carol", False, 5)
        assert cg.events("carol")["frozen"] == "0"
        time.sleep(0.3)
        assert counter.stat().st_size > held, "a thawed group made no progress"
    finally:
        cg.delete("carol", 5)
        worker.wait(5)


def test_no_limit_files_here_and_cgroupd_says_which(cg: Cgroups) -> None:
    offered = (cg.fs.mount / "cgroup.controllers").read_text().split()
    if {"cpu", "memory", "pids"} <= set(offered):
        pytest.fail("this host's cgroup2 offers controllers: the cgroup_vm tier's checks apply here too")
    with pytest.raises(FailedPrecondition, match=r"controller .*cpu.* is not offered"):
        cg.create("dave", DEFAULT_LIMITS)
    assert not cg.exists("dave")
