"""The resource model: ids, limits, packages, partial changes. No I/O."""

from __future__ import annotations

import pytest

from npanel.cgroupd import model
from npanel.cgroupd.model import IoLimit, Limits, LimitsPatch, MiB
from npanel.common.errors import InvalidArgument

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["a", "alice", "user_1", "site-2", "a" * 32])
def test_good_ids_pass_unchanged(name: str) -> None:
    assert model.check_account_id(name) == name


@pytest.mark.parametrize("name", ["", "Alice", "1abc", "_a", "a.b", "user-1000.slice", "a" * 33, "a b",
                                  "../etc", "alice\n", "é"])
def test_bad_ids_name_field_and_value(name: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        model.check_account_id(name)
    assert caught.value.field == "account_id" and caught.value.value == name
    assert repr(name) in str(caught.value)


@pytest.mark.parametrize(("change", "field", "value"), [
    ({"cpu_percent": 0}, "cpu_percent", 0),
    ({"cpu_percent": 201}, "cpu_percent", 201),
    ({"cpu_weight": 10001}, "cpu_weight", 10001),
    ({"memory_max": 64 * MiB - 1}, "memory_max_bytes", 64 * MiB - 1),
    ({"memory_high": 2048 * MiB}, "memory_high_bytes", 2048 * MiB),
    ({"pids_max": 9}, "pids_max", 9),
    ({"io": (IoLimit("/dev/sda", 1),)}, "io.device", "/dev/sda"),
])
def test_limits_out_of_range(change: dict[str, object], field: str, value: object) -> None:
    from dataclasses import replace

    limits = replace(model.DEFAULT_LIMITS, **change)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as caught:
        model.validate(limits, cpus=2)
    assert (caught.value.field, caught.value.value) == (field, value)


def test_cpu_range_scales_with_cpus() -> None:
    from dataclasses import replace

    model.validate(replace(model.DEFAULT_LIMITS, cpu_percent=400), cpus=4)
    with pytest.raises(InvalidArgument, match="1 to 200"):
        model.validate(replace(model.DEFAULT_LIMITS, cpu_percent=400), cpus=2)


def test_packages_and_configured_overrides() -> None:
    packages = model.parse_packages('{"basic": {"pids_max": 100}, "tiny": {"memory_max": 67108864}}')
    assert packages["basic"].cpu_percent == 25 and packages["basic"].memory_max == 256 * MiB
    assert packages["basic"].pids_max == 100
    assert packages["pro"] == Limits(100, 1024 * MiB, 256, swap_max=256 * MiB)
    assert packages["enterprise"].cpu_percent == 200
    assert packages["tiny"].memory_max == 64 * MiB and packages["tiny"].cpu_percent == 50
    with pytest.raises(InvalidArgument) as caught:
        model.package_limits(packages, "gold")
    assert caught.value.field == "package"
    with pytest.raises(ValueError, match="keys"):
        model.parse_packages('{"basic": {"memory": 1}}')


def test_patch_merges_and_io_entries_replace_or_remove() -> None:
    base = Limits(50, 512 * MiB, 256, io=(IoLimit("8:0", wbps=100), IoLimit("8:16", rbps=5)))
    after = LimitsPatch(cpu_percent=20, io=(IoLimit("8:0", wbps=200), IoLimit("8:16"))).apply(base)
    assert after.cpu_percent == 20 and after.memory_max == 512 * MiB
    assert after.io == (IoLimit("8:0", wbps=200),)
    assert LimitsPatch(memory_high=0, cpu_weight=0).apply(
        Limits(50, 512 * MiB, 256, memory_high=256 * MiB, cpu_weight=5)).memory_high is None
    assert LimitsPatch().is_empty()


def test_limits_round_trip_json() -> None:
    limits = Limits(50, 512 * MiB, 256, cpu_weight=7, io=(IoLimit("8:0", 1, 2, 3, 4),))
    assert Limits.from_json(limits.to_json()) == limits
