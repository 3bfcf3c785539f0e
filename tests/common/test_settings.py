from __future__ import annotations

import pytest

from npanel.common.settings import (
    DatabaseSettings,
    ServiceSettings,
    SettingsError,
    parse_address,
    redact_url,
)

pytestmark = pytest.mark.unit


def test_defaults_use_the_architecture_ports() -> None:
    s = ServiceSettings.read("flagd", {})
    assert s.listen == "127.0.0.1:50051"
    assert s.metrics_listen == "127.0.0.1:9102"
    assert s.log_format == "json"


def test_values_are_read_and_typed() -> None:
    s = ServiceSettings.read("cgroupd", {
        "NPANEL_CGROUPD_LISTEN": "unix:/run/npanel/cgroupd.sock",
        "NPANEL_DATABASE_POOL_MAX": "25",
        "NPANEL_SHUTDOWN_GRACE": "2.5",
        "NPANEL_LOG_LEVEL": "DEBUG",
    })
    assert s.listen == "unix:/run/npanel/cgroupd.sock"
    assert s.database.pool_max == 25
    assert s.shutdown_grace_s == 2.5
    assert s.log_level == "debug"


def test_every_bad_variable_is_named_with_its_value() -> None:
    with pytest.raises(SettingsError) as caught:
        ServiceSettings.read("flagd", {
            "NPANEL_FLAGD_LISTEN": "nowhere",
            "NPANEL_DATABASE_URL": "mysql://db/x",
            "NPANEL_DATABASE_POOL_MAX": "0",
            "NPANEL_LOG_FORMAT": "xml",
            "NPANEL_SHUTDOWN_GRACE": "soon",
        })
    problems = caught.value.problems
    assert len(problems) == 5
    text = str(caught.value)
    for fragment in ("NPANEL_FLAGD_LISTEN='nowhere'", "NPANEL_DATABASE_URL='mysql://db/x'",
                     "NPANEL_DATABASE_POOL_MAX='0'", "NPANEL_LOG_FORMAT='xml'",
                     "NPANEL_SHUTDOWN_GRACE='soon'", "from 1 to 500", "one of json, text"):
        assert fragment in text


@pytest.mark.parametrize("value", ["127.0.0.1:0", "[::1]:50051", "0.0.0.0:65535", "unix:/run/x.sock"])
def test_valid_addresses(value: str) -> None:
    assert parse_address(value) == value


@pytest.mark.parametrize("value", ["50051", ":50051", "host:", "host:70000", "unix:relative.sock"])
def test_invalid_addresses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_address(value)


def test_empty_value_means_default() -> None:
    assert DatabaseSettings.from_environ({"NPANEL_DATABASE_POOL_MIN": ""}).pool_min == 1


def test_password_is_redacted() -> None:
    assert redact_url("postgresql://u:s3cret@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
