"""cgroup-vm tier, host side: watchdogd's systemd driver against a real systemd.

Boots ONE virtme-ng VM whose PID 1 is the host's systemd and runs
tests/watchdogd/vm/inner_systemd.py inside it as a oneshot unit (one pytest run):
real units restarted by SystemdDriver, a SIGTERM-ignoring unit killed after
stop_timeout_s, journal lines read back by last_logs(), a Runner recovering a
SIGKILLed unit, and deploy/polkit/50-npanel-watchdogd.rules under a real polkitd.
See scripts/run-vm-systemd-tests.sh.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.cgroup_vm
ROOT = Path(__file__).resolve().parents[2]
EXPECTED = (
    "test_pid1_is_systemd_and_journald_runs",
    "test_restart_replaces_the_main_process_and_it_serves_again",
    "test_a_unit_ignoring_sigterm_is_killed_after_stop_timeout",
    "test_runner_recovers_a_sigkilled_unit_through_systemd",
    "test_the_driver_as_the_service_user_restarts_an_npanel_unit_through_polkit",
    "test_polkit_rule_refuses_everything_else",
)


def test_systemd_driver_inside_a_vm(tmp_path: Path) -> None:
    result = subprocess.run([str(ROOT / "scripts" / "run-vm-systemd-tests.sh"), str(tmp_path)],
                            capture_output=True, text=True, timeout=1500)
    report = tmp_path / "report.txt"
    inner = report.read_text() if report.exists() else "(no report written)"
    print(result.stdout[-4000:], result.stderr[-4000:], inner, sep="\n")
    assert result.returncode == 0, f"VM tests failed:\n{inner}\n{result.stderr[-3000:]}"
    facts = (tmp_path / "vm-facts.txt").read_text()
    assert facts.startswith("PID 1: systemd"), facts
    # Every test ran and passed: none skipped, none missing.
    summary = re.findall(r"^=+ (.*) in [\d.]+s.* =+$", inner, re.MULTILINE)
    assert summary and re.fullmatch(r"\d+ passed(, \d+ warnings?)?", summary[-1]), summary or inner
    for name in EXPECTED:
        assert f"{name} " in inner and not re.search(rf"{name}\S* (FAILED|SKIPPED|ERROR)", inner), name
