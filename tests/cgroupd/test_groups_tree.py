"""Group operations against a directory tree (the simulation fs) in tmp_path:
top-down enabling, ordering, half-created removal, drift, freeze, move, delete."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from npanel.cgroupd import groups as groups_mod
from npanel.cgroupd.fs import KernelFs, SimulatedFs, find_cgroup2_mount
from npanel.cgroupd.groups import Cgroups
from npanel.cgroupd.model import IoLimit, Limits, MiB
from npanel.cgroupd.sampler import read_stats
from npanel.common.errors import FailedPrecondition, InvalidArgument

pytestmark = pytest.mark.unit
LIMITS = Limits(cpu_percent=20, memory_max=128 * MiB, pids_max=32, io=(IoLimit("8:0", wbps=4096),))


@pytest.fixture
def cg(tmp_path: Path) -> Cgroups:
    return Cgroups(SimulatedFs(tmp_path / "mnt"), tmp_path / "mnt" / "npanel.slice")


def test_create_enables_controllers_top_down_and_writes_limits(cg: Cgroups) -> None:
    cg.create("alice", LIMITS)
    mount = cg.fs.mount
    assert (mount / "cgroup.subtree_control").read_text().split() == ["cpu", "io", "memory", "pids"]
    assert (cg.root / "cgroup.subtree_control").read_text().split() == ["cpu", "io", "memory", "pids"]
    group = cg.path("alice")
    assert (group / "cpu.max").read_text() == "20000 100000"
    assert (group / "memory.max").read_text() == str(128 * MiB)
    assert (group / "io.max").read_text() == "8:0 rbps=max wbps=4096 riops=max wiops=max\n"
    assert cg.drift("alice", LIMITS) == []


def test_writes_happen_in_plan_order(cg: Cgroups, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = SimulatedFs.write

    def spy(self: SimulatedFs, path: Path, value: str) -> None:
        seen.append(path.name)
        real(self, path, value)

    monkeypatch.setattr(SimulatedFs, "write", spy)
    cg.create("alice", LIMITS)
    assert [n for n in seen if n != "cgroup.subtree_control"] == [f for f, _ in groups_mod.writes(LIMITS)]


def test_a_missing_controller_is_named_and_nothing_is_left(tmp_path: Path) -> None:
    fs = SimulatedFs(tmp_path / "mnt")
    (tmp_path / "mnt" / "cgroup.controllers").write_text("cpu memory")
    cg = Cgroups(fs, tmp_path / "mnt" / "npanel.slice")
    with pytest.raises(FailedPrecondition, match="controller pids io is not offered"):
        cg.create("alice", LIMITS)
    assert cg.groups() == []


def test_a_group_failing_half_way_is_removed(cg: Cgroups) -> None:
    cg.ensure_root(["cpu", "memory", "pids", "io"])
    original = SimulatedFs.write

    def failing(self: SimulatedFs, path: Path, value: str) -> None:
        if path.name == "pids.max":
            raise OSError(22, "Invalid argument")
        original(self, path, value)

    SimulatedFs.write = failing  # type: ignore[method-assign]
    try:
        with pytest.raises(FailedPrecondition, match=r"pids\.max"):
            cg.create("alice", LIMITS)
    finally:
        SimulatedFs.write = original  # type: ignore[method-assign]
    assert not cg.exists("alice")


def test_io_refused_by_the_kernel_names_the_device(cg: Cgroups) -> None:
    cg.create("alice", None)
    original = SimulatedFs.write

    def refuse(self: SimulatedFs, path: Path, value: str) -> None:
        if path.name == "io.max":
            raise OSError(19, "No such device")
        original(self, path, value)

    SimulatedFs.write = refuse  # type: ignore[method-assign]
    try:
        with pytest.raises(InvalidArgument) as caught:
            cg.apply("alice", LIMITS)
    finally:
        SimulatedFs.write = original  # type: ignore[method-assign]
    assert caught.value.field == "io.device" and caught.value.value == "8:0"


def test_drift_is_found_and_repaired(cg: Cgroups) -> None:
    cg.create("alice", LIMITS)
    (cg.path("alice") / "pids.max").write_text("max")
    (cg.path("alice") / "io.max").write_text("8:0 rbps=max wbps=1 riops=max wiops=max\n9:0 rbps=5 wbps=max "
                                             "riops=max wiops=max\n")
    stale = cg.drift("alice", LIMITS)
    assert stale == [("pids.max", "32"), ("io.max", "8:0 rbps=max wbps=4096 riops=max wiops=max"),
                     ("io.max", "9:0 rbps=max wbps=max riops=max wiops=max")]
    cg.write_all(cg.path("alice"), stale)
    assert cg.drift("alice", LIMITS) == []


def test_freeze_move_stats_delete(cg: Cgroups) -> None:
    cg.create("alice", LIMITS)
    cg.set_frozen("alice", True, 1)
    assert cg.events("alice")["frozen"] == "1"
    cg.set_frozen("alice", False, 1)
    moved, vanished = cg.move("alice", [os.getpid(), 2**22 + 7], descendants=False)
    assert moved == [os.getpid()] and vanished == [2**22 + 7]
    sample = read_stats(cg.fs, cg.path("alice"), "alice")
    assert sample.populated and sample.pids_current == 1 and sample.pids_max == 32
    assert "memory.pressure" in sample.unavailable
    assert cg.delete("alice", 1) == 1 and not cg.exists("alice")
    assert cg.delete("alice", 1) == 0


def test_paths_outside_the_mount_are_refused(tmp_path: Path) -> None:
    fs = KernelFs(tmp_path / "mnt")
    with pytest.raises(FailedPrecondition, match="not inside"):
        fs.read(tmp_path / "elsewhere")
    with pytest.raises(FailedPrecondition, match="not inside"):
        fs.read(tmp_path / "mnt" / ".." / "x")
    with pytest.raises(InvalidArgument):
        Cgroups(fs, tmp_path / "mnt").path("../../etc")


def test_cgroup2_mount_from_mountinfo() -> None:
    info = ("30 23 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755\n"
            "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
            "32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n")
    assert find_cgroup2_mount(Path("/sys/fs/cgroup/unified/npanel-x"), info) == Path("/sys/fs/cgroup/unified")
    assert find_cgroup2_mount(Path("/sys/fs/cgroup/npanel.slice"), info) is None


def test_reconcile_progress_says_in_progress_until_the_pass_ends() -> None:
    from npanel.cgroupd.reconcile import Report

    running = Report(total=10, checked=5)
    assert running.summary().startswith("reconcile in progress: 5/10")
    running.finished, running.complete = True, False
    assert "STOPPED at the time limit" in running.summary()
    running.complete = True
    assert running.summary().startswith("reconcile done")
