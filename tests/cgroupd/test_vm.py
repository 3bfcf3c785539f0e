"""cgroup-vm tier, host side: boots ONE virtme-ng VM with a full cgroup v2
kernel and runs tests/cgroupd/vm/inner_enforcement.py inside it (one pytest
run), then reports the inner results here. See scripts/run-vm-tests.sh."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.cgroup_vm
ROOT = Path(__file__).resolve().parents[2]


def test_enforcement_inside_a_vm(tmp_path: Path) -> None:
    result = subprocess.run([str(ROOT / "scripts" / "run-vm-tests.sh"), str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    report = tmp_path / "report.txt"
    inner = report.read_text() if report.exists() else "(no report written)"
    print(result.stdout[-4000:], result.stderr[-4000:], inner, sep="\n")
    assert result.returncode == 0, f"VM tests failed:\n{inner}\n{result.stderr[-3000:]}"
    assert " passed" in inner and "failed" not in inner
