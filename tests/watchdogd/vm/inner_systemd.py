"""watchdogd's systemd driver against a real systemd, run INSIDE a virtme-ng VM.

Not collected on the host (no test_ prefix, and every test is skipped unless
PID 1 is systemd and NPANEL_IN_SYSTEMD_VM=1): tests/watchdogd/test_systemd_vm.py
boots a VM whose PID 1 is the host's systemd (scripts/run-vm-systemd-tests.sh)
and runs this file there as root. Units are written to /run/systemd/system; the
services are real processes (the project's echo gRPC service), stopped, killed and
started by systemd, and their output is read back from journald.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from npanel.watchdogd.checks import make_probe
from npanel.watchdogd.drivers import SystemdDriver
from npanel.watchdogd.engine import Runner
from npanel.watchdogd.metrics import WatchdogMetrics
from npanel.watchdogd.model import CheckSpec, DriverSpec, Incident, Policy, SavedState, Target
from npanel.watchdogd.statemachine import State

ROOT = Path(__file__).resolve().parents[3]
UNIT_DIR = Path("/run/systemd/system")
POLKIT_RULE = ROOT / "deploy" / "polkit" / "50-npanel-watchdogd.rules"
SERVICE_USER = "npanel"  # deploy/systemd/npanel-watchdogd.service: User=npanel
START_LIMIT_S = 90.0  # Python under software emulation starts slowly

IN_SYSTEMD_VM = (os.environ.get("NPANEL_IN_SYSTEMD_VM") == "1" and UNIT_DIR.is_dir()
                 and Path("/proc/1/comm").read_text().strip() == "systemd")

pytestmark = [
    pytest.mark.cgroup_vm,
    pytest.mark.skipif(not IN_SYSTEMD_VM, reason="only inside the VM of scripts/run-vm-systemd-tests.sh"),
]


def sh(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} failed ({result.returncode}): {result.stdout}{result.stderr}")
    return result


def main_pid(unit: str) -> int:
    return int(sh("systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip())


def active_state(unit: str) -> str:
    return sh("systemctl", "show", "-p", "ActiveState", "--value", unit).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def until(predicate: Callable[[], Awaitable[bool]], limit_s: float, every_s: float = 0.2) -> float:
    started = time.monotonic()
    while not await predicate():
        if time.monotonic() - started > limit_s:
            raise AssertionError(f"condition not met within {limit_s} s")
        await asyncio.sleep(every_s)
    return time.monotonic() - started


def write_unit(name: str, body: str) -> None:
    (UNIT_DIR / name).write_text(body)
    sh("systemctl", "daemon-reload")


def remove_unit(name: str) -> None:
    # SIGKILL first: a unit that ignores SIGTERM would hold `stop` for its TimeoutStopSec.
    sh("systemctl", "kill", "--signal=SIGKILL", name, check=False)
    sh("systemctl", "stop", name, check=False)
    sh("systemctl", "reset-failed", name, check=False)
    (UNIT_DIR / name).unlink(missing_ok=True)
    sh("systemctl", "daemon-reload")


def echo_unit(port: int, marker: str) -> str:
    """The project's echo gRPC service (grpc.health.v1) as a unit systemd never restarts itself."""
    return f"""[Unit]
Description=npanel VM test: echo gRPC service on 127.0.0.1:{port}

[Service]
Type=exec
WorkingDirectory={ROOT}
Environment=NPANEL_ECHO_LISTEN=127.0.0.1:{port} NPANEL_ECHO_METRICS_LISTEN=127.0.0.1:0
Environment=NPANEL_SHUTDOWN_GRACE=1 NPANEL_LOG_FORMAT=text PYTHONDONTWRITEBYTECODE=1
ExecStartPre=/bin/echo {marker}
ExecStart={sys.executable} -m npanel.testing.echo
Restart=no
TimeoutStopSec=60
"""


@pytest.fixture
def echo_service() -> Iterator[tuple[str, int, str]]:
    unit, port = "npanel-probe-target.service", free_port()
    marker = f"npanel-vm-marker-{time.monotonic_ns()}"
    write_unit(unit, echo_unit(port, marker))
    try:
        yield unit, port, marker
    finally:
        remove_unit(unit)


async def serving(port: int, limit_s: float = START_LIMIT_S) -> float:
    """Seconds until the project's own gRPC health probe sees SERVING on the port."""
    probe = make_probe(CheckSpec(kind="grpc", address=f"127.0.0.1:{port}", timeout_s=2.0))

    async def ok() -> bool:
        return (await probe.check()).ok

    try:
        return await until(ok, limit_s, 0.5)
    finally:
        await probe.close()


def spec(unit: str, stop_timeout_s: float) -> DriverSpec:
    driver = DriverSpec(kind="systemd", unit=unit, stop_timeout_s=stop_timeout_s)
    driver.validate()
    return driver


def test_pid1_is_systemd_and_journald_runs() -> None:
    assert Path("/proc/1/comm").read_text().strip() == "systemd"
    assert active_state("systemd-journald.service") == "active"


@pytest.mark.asyncio
async def test_restart_replaces_the_main_process_and_it_serves_again(
        echo_service: tuple[str, int, str]) -> None:
    unit, port, marker = echo_service
    sh("systemctl", "start", unit)
    await serving(port)
    before = main_pid(unit)
    assert before > 0 and pid_alive(before)

    driver = SystemdDriver(spec(unit, stop_timeout_s=20.0), systemctl="systemctl")
    await driver.restart()

    after = main_pid(unit)
    assert active_state(unit) == "active"
    assert after > 0 and after != before, (before, after)
    assert not pid_alive(before)
    print(f"restart: MainPID {before} -> {after}; serving again after {await serving(port):.1f} s")

    # last_logs: the unit's real journal lines, one marker per start, plus the service's own output.
    lines = await driver.last_logs()
    print("last_logs:", *lines[-10:], sep="\n  ")
    assert lines.count(marker) == 2, lines
    assert not any(line.startswith("[watchdogd] journalctl failed") for line in lines)
    assert len(lines) > 2  # more than the markers: what the Python service itself wrote


@pytest.mark.asyncio
async def test_a_unit_ignoring_sigterm_is_killed_after_stop_timeout() -> None:
    unit = "npanel-probe-stubborn.service"
    # SIG_IGN is inherited across exec: the shell and its sleeps all ignore SIGTERM.
    script = "trap '' TERM; echo 'stubborn: ignoring SIGTERM'; while :; do sleep 1; done"
    # systemd itself would wait 5 minutes before its own SIGKILL: only the driver's bound helps.
    write_unit(unit, f"""[Unit]
Description=npanel VM test: a process that ignores SIGTERM

[Service]
Type=exec
ExecStart=/bin/sh -c "{script}"
Restart=no
TimeoutStopSec=300
""")
    try:
        sh("systemctl", "start", unit)
        driver = SystemdDriver(spec(unit, stop_timeout_s=3.0), systemctl="systemctl")

        async def logged() -> bool:
            return "stubborn: ignoring SIGTERM" in await driver.last_logs()

        await until(logged, START_LIMIT_S, 0.5)  # SIG_IGN is in place
        before = main_pid(unit)
        started = time.monotonic()
        await driver.restart()
        took = time.monotonic() - started
        after = main_pid(unit)
        print(f"bounded restart took {took:.1f} s; MainPID {before} -> {after}")
        assert took < 60, took  # 3 s bound + kill + start; far below TimeoutStopSec=300
        assert took >= 3.0, took  # it did wait for the graceful stop first
        assert after > 0 and after != before
        assert not pid_alive(before)
        assert active_state(unit) in ("active", "activating")
    finally:
        remove_unit(unit)


class InMemoryIncidentSink:
    """An in-memory test sink (engine.IncidentSink) standing in for PostgreSQL in this VM.

    It keeps every incident the Runner writes, so the test can read what would
    have been stored; it is not the production store (services/watchdogd/store.py).
    """

    def __init__(self) -> None:
        self.incidents: dict[int, Incident] = {}
        self.states: dict[str, SavedState] = {}

    async def open_incident_of(self, target: str) -> Incident | None:
        return next((i for i in self.incidents.values() if i.target == target and not i.resolved), None)

    async def load_state(self, target: str) -> SavedState | None:
        return self.states.get(target)

    async def save_state(self, target: str, state: SavedState) -> None:
        self.states[target] = state

    async def open_incident(self, target: str, detected_at: datetime, failure_type: str, evidence: str,
                            last_log_lines: list[str]) -> Incident:
        incident = Incident(len(self.incidents) + 1, target, detected_at, failure_type, evidence,
                            tuple(last_log_lines), 0, None, None, False, False)
        self.incidents[incident.id] = incident
        return incident

    async def update_incident(self, incident_id: int, restart_count: int, gave_up: bool) -> Incident:
        incident = replace(self.incidents[incident_id], restart_count=restart_count, gave_up=gave_up)
        self.incidents[incident_id] = incident
        return incident

    async def resolve_incident(self, incident_id: int, recovered_at: datetime, recovery_seconds: float,
                               restart_count: int) -> Incident:
        incident = replace(self.incidents[incident_id], recovered_at=recovered_at,
                           recovery_seconds=recovery_seconds, restart_count=restart_count, resolved=True)
        self.incidents[incident_id] = incident
        return incident


@pytest.mark.asyncio
async def test_runner_recovers_a_sigkilled_unit_through_systemd(echo_service: tuple[str, int, str]) -> None:
    unit, port, marker = echo_service
    sh("systemctl", "start", unit)
    await serving(port)
    target = Target(
        "probe-target",
        CheckSpec(kind="grpc", address=f"127.0.0.1:{port}", interval_s=1.0, timeout_s=3.0, failures=2),
        spec(unit, stop_timeout_s=20.0),
        Policy(backoff_initial_s=0.2, start_timeout_s=START_LIMIT_S))
    target.validate()
    sink = InMemoryIncidentSink()
    runner = Runner(target, make_probe(target.check), SystemdDriver(target.driver, systemctl="systemctl"),
                    sink, WatchdogMetrics(CollectorRegistry()), restarts_enabled=lambda: True)
    task = asyncio.create_task(runner.run())
    try:
        async def healthy() -> bool:
            return runner.machine.state is State.HEALTHY

        await until(healthy, START_LIMIT_S)
        before = main_pid(unit)
        sh("systemctl", "kill", "--kill-whom=main", "--signal=SIGKILL", unit)
        killed = time.monotonic()

        async def recovered() -> bool:
            return any(i.resolved for i in sink.incidents.values()) and runner.machine.state is State.HEALTHY

        await until(recovered, 2 * START_LIMIT_S)
        took = time.monotonic() - killed
        after = main_pid(unit)
        (incident,) = sink.incidents.values()
        print(f"runner: killed MainPID {before}, recovered in {took:.1f} s, new MainPID {after}; {incident}")
        assert incident.failure_type in ("crash", "hang", "unhealthy"), incident
        assert incident.restart_count >= 1 and incident.resolved and not incident.gave_up
        assert marker in incident.last_log_lines  # journald's lines of the unit, through the driver
        assert after > 0 and after != before
        assert active_state(unit) == "active"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.close()


# --- polkit: deploy/polkit/50-npanel-watchdogd.rules, with a real polkitd -------------------------

@pytest.fixture(scope="module")
def service_uid() -> Iterator[int]:
    """The shipped rule in a fresh rules.d, the service user added; polkitd (re)started to load them.

    The VM's root is the host's, read-only: /etc/passwd, /etc/group and
    /etc/polkit-1/rules.d are bind-mounted from copies in /run, inside the VM only.
    """
    if not Path("/usr/lib/polkit-1/polkitd").exists():
        pytest.skip("polkitd not installed (apt-get install polkitd)")
    base = Path("/run/npanel-vmtest/polkit")
    (base / "rules.d").mkdir(parents=True, exist_ok=True)
    (base / "rules.d" / POLKIT_RULE.name).write_text(POLKIT_RULE.read_text())
    (base / "rules.d").chmod(0o755)
    uid, mounts = 990, []
    if not any(p.pw_name == SERVICE_USER for p in pwd.getpwall()):
        (base / "passwd").write_text(Path("/etc/passwd").read_text()
                                     + f"{SERVICE_USER}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin\n")
        (base / "group").write_text(Path("/etc/group").read_text() + f"{SERVICE_USER}:x:{uid}:\n")
        mounts += [(base / "passwd", "/etc/passwd"), (base / "group", "/etc/group")]
    mounts.append((base / "rules.d", "/etc/polkit-1/rules.d"))
    for source, target in mounts:
        sh("mount", "--bind", str(source), target)
    try:
        sh("systemctl", "restart", "polkit.service")
        yield pwd.getpwnam(SERVICE_USER).pw_uid
    finally:
        for _, target in reversed(mounts):
            sh("umount", target, check=False)
        sh("systemctl", "restart", "polkit.service", check=False)


def as_user(uid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    return sh("setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv, check=False)


def sleeper(name: str) -> str:
    write_unit(name, f"[Unit]\nDescription=npanel VM test: {name}\n[Service]\nExecStart=/bin/sleep 100000\n")
    return name


def systemctl_as(uid: int, directory: Path) -> Path:
    """A systemctl for the driver that runs the real one as `uid` (as under User=npanel)."""
    wrapper = directory / "systemctl-as-service-user"
    ids = f"--reuid={uid} --regid={uid} --clear-groups"
    wrapper.write_text(f'#!/bin/sh\nexec setpriv {ids} systemctl --no-ask-password "$@"\n')
    wrapper.chmod(0o700)
    return wrapper


@pytest.mark.asyncio
async def test_the_driver_as_the_service_user_restarts_an_npanel_unit_through_polkit(
        service_uid: int, tmp_path: Path) -> None:
    unit = sleeper("npanel-probe-polkit.service")
    try:
        for verb in ("start", "stop", "restart"):
            result = as_user(service_uid, "systemctl", "--no-ask-password", verb, unit)
            assert result.returncode == 0, (verb, result.stderr)
        result = as_user(service_uid, "systemctl", "--no-ask-password", "kill", "--signal=SIGKILL", unit)
        assert result.returncode == 0, ("kill", result.stderr)
        # watchdogd's own driver, its systemctl run as the service user (as under User=npanel).
        wrapper = systemctl_as(service_uid, tmp_path)
        sh("systemctl", "start", unit)
        before = main_pid(unit)
        await SystemdDriver(spec(unit, stop_timeout_s=10.0), systemctl=str(wrapper)).restart()
        after = main_pid(unit)
        assert active_state(unit) == "active" and after not in (0, before), (before, after)
    finally:
        remove_unit(unit)


def test_polkit_rule_refuses_everything_else(service_uid: int) -> None:
    # watchdogd's own unit, and names npanel-*.service only almost matches
    made = [sleeper(n) for n in ("npanel-watchdogd.service", "xnpanel-probe.service",
                                 "npanel-probe.service.d.service", "npanel-Probe.service")]
    ours = sleeper("npanel-probe-allowed.service")
    try:
        for unit in [*made, "dbus.service", "polkit.service", "systemd-journald.service"]:
            result = as_user(service_uid, "systemctl", "--no-ask-password", "restart", unit)
            denied = "Access denied" in result.stderr or "authentication required" in result.stderr.lower()
            assert result.returncode != 0 and denied, (unit, result.stderr)
        # other verbs (reloading the manager), and another user on our unit
        result = as_user(service_uid, "systemctl", "--no-ask-password", "daemon-reload")
        assert result.returncode != 0, result.stdout
        result = as_user(65534, "systemctl", "--no-ask-password", "restart", ours)  # nobody
        assert result.returncode != 0, result.stdout
        assert as_user(service_uid, "systemctl", "--no-ask-password", "restart", ours).returncode == 0
    finally:
        for name in [*made, ours]:
            remove_unit(name)
