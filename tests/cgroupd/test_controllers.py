"""Each controller's (file, value) pairs, the write order, and device resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from npanel.cgroupd import cpu, groups, io, memory, pids
from npanel.cgroupd.model import IoLimit, Limits, MiB
from npanel.common.errors import InvalidArgument

pytestmark = pytest.mark.unit
LIMITS = Limits(cpu_percent=20, memory_max=256 * MiB, pids_max=64, swap_max=0, memory_high=200 * MiB,
                io=(IoLimit("8:0", wbps=1048576),))


def test_cpu_max_is_pct_times_1000_per_100ms() -> None:
    assert cpu.writes(LIMITS) == [("cpu.max", "20000 100000"), ("cpu.weight", "100")]
    assert cpu.writes(Limits(200, 64 * MiB, 10, cpu_weight=500)) == [
        ("cpu.max", "200000 100000"), ("cpu.weight", "500")]


def test_memory_writes_high_before_max_before_swap() -> None:
    assert memory.writes(LIMITS) == [("memory.high", str(200 * MiB)), ("memory.max", str(256 * MiB)),
                                     ("memory.swap.max", "0")]
    assert memory.writes(Limits(20, 64 * MiB, 10))[0] == ("memory.high", "max")
    assert memory.same("67108865", "67108864") and not memory.same("max", "67108864")


def test_pids_and_io_lines() -> None:
    assert pids.writes(LIMITS) == [("pids.max", "64")]
    assert io.writes(LIMITS) == [("io.max", "8:0 rbps=max wbps=1048576 riops=max wiops=max")]
    reset = io.writes(Limits(20, 64 * MiB, 10), previous=LIMITS)
    assert reset == [("io.max", "8:0 rbps=max wbps=max riops=max wiops=max")]
    assert io.parse_max("8:0 rbps=max wbps=1048576 riops=max wiops=10\n") == {
        "8:0": IoLimit("8:0", wbps=1048576, wiops=10)}


def test_one_plan_in_the_safe_order() -> None:
    files = [f for f, _ in groups.writes(LIMITS)]
    assert files == ["cpu.max", "cpu.weight", "memory.high", "memory.max", "memory.swap.max", "pids.max",
                     "io.max"]
    assert groups.controllers_for(LIMITS) == ("cpu", "memory", "pids", "io")
    assert groups.controllers_for(Limits(20, 64 * MiB, 10)) == ("cpu", "memory", "pids")


def _fake_sys(tmp_path: Path) -> Path:
    disk = tmp_path / "devices" / "vda"
    (disk / "vda1").mkdir(parents=True)
    (disk / "dev").write_text("254:0\n")
    (disk / "vda1" / "dev").write_text("254:1\n")
    (disk / "vda1" / "partition").write_text("1\n")
    block = tmp_path / "dev" / "block"
    block.mkdir(parents=True)
    (block / "254:0").symlink_to(disk)
    (block / "254:1").symlink_to(disk / "vda1")
    return tmp_path


def test_partitions_resolve_to_their_disk(tmp_path: Path) -> None:
    sys_root = _fake_sys(tmp_path)
    assert io.resolve_device("254:1", sys_root) == "254:0"
    assert io.resolve_device("254:0", sys_root) == "254:0"


@pytest.mark.parametrize("spec", ["9:9", "/dev/nope", "/etc/passwd", "sda", "/dev/null"])
def test_unknown_devices_are_invalid_arguments(tmp_path: Path, spec: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        io.resolve_device(spec, _fake_sys(tmp_path))
    assert caught.value.field == "io.device" and caught.value.value == spec
