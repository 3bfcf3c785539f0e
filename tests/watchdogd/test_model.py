"""Target validation and the configuration file: every bad value is named."""

from __future__ import annotations

import pytest

from npanel.common.errors import InvalidArgument
from npanel.watchdogd import config
from npanel.watchdogd.model import CheckSpec, DriverSpec, Policy, Target, target_from_doc

pytestmark = pytest.mark.unit
GRPC = {"kind": "grpc", "address": "127.0.0.1:50051"}


def test_a_target_round_trips_through_its_document() -> None:
    target = Target("flagd", CheckSpec("grpc", address="127.0.0.1:50051"),
                    DriverSpec("process", command=("npanel", "serve", "flagd"), env={"A": "1"}),
                    Policy(max_restarts_per_hour=3))
    again = target_from_doc("flagd", target.spec_doc())
    assert again == target


@pytest.mark.parametrize(("doc", "field", "value"), [
    ({"check": {**GRPC, "kind": "ping"}}, "check.kind", "ping"),
    ({"check": {"kind": "grpc", "address": "nowhere"}}, "check.address", "nowhere"),
    ({"check": {**GRPC, "timeout_s": 0}}, "check.timeout_seconds", 0),
    ({"check": {**GRPC, "failures": 0}}, "check.failures", 0),
    ({"check": {"kind": "http", "address": "https://x"}}, "check.address", "https://x"),
    ({"check": {"kind": "unix", "address": "/run/x.sock"}}, "check.expect", ""),
    ({"check": {"kind": "exec"}}, "check.command", []),
    ({"check": {**GRPC, "intervl_s": 1}}, "check.intervl_s", 1),
    ({"check": GRPC, "driver": {"kind": "process"}}, "driver.command", []),
    ({"check": GRPC, "driver": {"kind": "systemd", "unit": "flagd"}}, "driver.unit", "flagd"),
    ({"check": GRPC, "driver": {"kind": "docker", "container": "a b"}}, "driver.container", "a b"),
    ({"check": GRPC, "driver": {"kind": "process", "command": ["x"], "cwd": "rel"}}, "driver.cwd", "rel"),
    ({"check": GRPC, "policy": {"max_restarts_per_hour": 0}}, "policy.max_restarts_per_hour", 0),
    ({"check": GRPC, "polcy": {}}, "polcy", {}),
])
def test_bad_values_are_refused_by_field_and_value(doc: dict[str, object], field: str, value: object) -> None:
    with pytest.raises(InvalidArgument) as caught:
        target_from_doc("t", doc)
    assert caught.value.field == field and caught.value.value == value


@pytest.mark.parametrize("name", ["", "Flagd", "1x", "a" * 65, "a b"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        target_from_doc(name, {"check": GRPC})
    assert caught.value.field == "name"


def test_the_configuration_file_is_parsed_and_its_errors_name_the_target() -> None:
    targets = config.parse({"targets": {"flagd": {"check": GRPC}}}, "test.toml")
    assert targets[0].source == "config" and targets[0].check.interval_s == 6.0
    with pytest.raises(config.ConfigError, match=r"test.toml: targets.flagd: check.kind='x'"):
        config.parse({"targets": {"flagd": {"check": {"kind": "x"}}}}, "test.toml")
    with pytest.raises(config.ConfigError, match="only"):
        config.parse({"target": {}}, "test.toml")


def test_the_defaults_are_the_platform_services_under_systemd() -> None:
    targets = {t.name: t for t in config.default_targets("systemd")}
    assert targets["flagd"].check.address == "127.0.0.1:50051"
    assert targets["flagd"].driver.unit == "npanel-flagd.service"
    for t in targets.values():
        t.validate()
    assert config.default_targets("none") == []
