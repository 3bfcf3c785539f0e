"""Every unit in deploy/systemd passes `systemd-analyze verify` and is hardened."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
UNITS = sorted((Path(__file__).resolve().parents[2] / "deploy" / "systemd").glob("*.service"))
REQUIRED = {
    "NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
    "RestrictRealtime": "yes", "RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
}


def _service_section(unit: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(unit)
    return dict(parser["Service"])


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_unit_verifies(unit: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(["systemd-analyze", "verify", unit.name], cwd=unit.parent,
                            capture_output=True, text=True, timeout=60)
    # The npanel install itself (/opt/npanel) is not on a build machine.
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line and "/opt/npanel/bin/npanel is not executable" not in line]
    assert problems == []


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_unit_is_hardened(unit: Path) -> None:
    service = _service_section(unit)
    missing = {k: v for k, v in REQUIRED.items() if service.get(k) != v}
    assert missing == {}
    assert "MemoryMax" in service and "MemoryLimit" not in service
    assert service.get("SystemCallFilter", "").startswith(("@system-service", "~"))
