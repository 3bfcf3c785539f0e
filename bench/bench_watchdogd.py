"""watchdogd: recovery time after SIGKILL, SIGSTOP and an application hang, beside supervisord; idle cost.

Real processes on 127.0.0.1: PostgreSQL (embedded), flagd (agent_watchdog on),
watchdogd, and the test-only echo gRPC service as the supervised target.
Recovery time = from the signal to the bench's own first SERVING answer from a
new process. supervisord (PyPI; SUPERVISORD=/path/to/supervisord or on PATH)
runs the same echo service with autorestart for the crash case; it cannot see
a hang, so it has no hang figures.

Each signal is sent as soon as watchdogd reports the target HEALTHY, i.e. just
after a passing check: the worst moment for detection by a periodic check.
Hangs: SIGSTOP freezes the whole process (keepalive pings go unanswered);
SIGUSR1 makes the echo service block its own event loop while gRPC's core still
answers pings (only the Check deadline sees it).

Usage: bench/bench_watchdogd.py [--kills 20] [--hangs 20] [--app-hangs 10] [--idle-seconds 30]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import (
    LOOPBACK,
    PYTHON,
    CpuMeter,
    free_port,
    markdown_table,
    npanel_service,
    percentile,
    postgres,
    progress,
    ratio,
    rss_mb,
    service_process,
    write_results,
)

from npanel.flagd.v1 import flagd_pb2, flagd_pb2_grpc
from npanel.watchdogd.v1 import watchdogd_pb2 as pb
from npanel.watchdogd.v1 import watchdogd_pb2_grpc

ECHO = [PYTHON, "-m", "npanel.testing.echo"]
OPTIONS = [("grpc.initial_reconnect_backoff_ms", 20), ("grpc.max_reconnect_backoff_ms", 100)]


def echo_env(port: int) -> dict[str, str]:
    return {"NPANEL_ECHO_LISTEN": f"{LOOPBACK}:{port}", "NPANEL_ECHO_METRICS_LISTEN": f"{LOOPBACK}:0",
            "NPANEL_SHUTDOWN_GRACE": "1", "NPANEL_LOG_LEVEL": "warning"}


def serving(stub: health_pb2_grpc.HealthStub) -> bool:
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=0.2)
    except grpc.RpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def measure(port: int, pid_of: Callable[[], int], sig: signal.Signals, rounds: int, limit_s: float = 60
            ) -> list[float]:
    """Send `sig` to the current pid `rounds` times; seconds until a new pid answers SERVING."""
    times: list[float] = []
    with grpc.insecure_channel(f"{LOOPBACK}:{port}", options=OPTIONS) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for n in range(rounds):
            deadline = time.monotonic() + limit_s
            while not (pid_of() and serving(stub)):  # steady state first
                assert time.monotonic() < deadline, "target never became healthy"
                time.sleep(0.05)
            old = pid_of()
            os.kill(old, sig)
            sent = time.monotonic()
            while not (pid_of() not in (0, old) and serving(stub)):
                assert time.monotonic() - sent < limit_s, f"no recovery within {limit_s} s"
                time.sleep(0.02)
            times.append(time.monotonic() - sent)
            with contextlib.suppress(ProcessLookupError):  # a stopped one must not linger
                os.kill(old, signal.SIGKILL)
            progress(f"{sig.name} {n + 1}/{rounds}: {times[-1]:.2f} s")
    return sorted(times)


def summary(times: list[float]) -> dict[str, float]:
    return {"n": len(times), "p50_s": percentile(times, 50), "p95_s": percentile(times, 95),
            "max_s": times[-1] if times else float("nan")}


def target(name: str, port: int, interval: float, timeout: float, check_port: int | None = None,
           driver: str = "process") -> pb.Target:
    return pb.Target(
        name=name,
        check=pb.Check(kind="grpc", address=f"{LOOPBACK}:{check_port or port}", interval_seconds=interval,
                       timeout_seconds=timeout),
        driver=pb.Driver(kind=driver, command=ECHO if driver == "process" else [],
                         env=echo_env(port) if driver == "process" else {}, stop_timeout_seconds=1),
        policy=pb.Policy(max_restarts_per_hour=1000))


def run_watchdogd(url: str, args: argparse.Namespace) -> dict[str, Any]:
    with npanel_service("flagd", url) as flagd:
        with grpc.insecure_channel(flagd.address) as channel:
            flagd_pb2_grpc.FlagServiceStub(channel).SetFlag(flagd_pb2.SetFlagRequest(
                name="agent_watchdog", enabled=True, actor="bench", reason="benchmark"), timeout=5)
        wport = free_port()
        env = {"NPANEL_WATCHDOGD_LISTEN": f"{LOOPBACK}:{wport}", "NPANEL_WATCHDOGD_METRICS_LISTEN":
               f"{LOOPBACK}:0", "NPANEL_DATABASE_URL": url, "NPANEL_FLAGD_ADDRESS": flagd.address,
               "NPANEL_WATCHDOGD_DEFAULT_TARGETS": "none", "NPANEL_LOG_LEVEL": "warning"}
        argv = [PYTHON, "-m", "npanel.cli", "serve", "watchdogd"]
        with service_process("watchdogd", argv, f"{LOOPBACK}:{wport}", env) as wd, \
                grpc.insecure_channel(wd.address) as channel:
            stub = watchdogd_pb2_grpc.WatchdogServiceStub(channel)
            return scenarios(stub, wd.pid, args)


def scenarios(stub: Any, wd_pid: int, args: argparse.Namespace) -> dict[str, Any]:
    def put(t: pb.Target) -> None:
        stub.PutTarget(pb.PutTargetRequest(target=t, actor="bench", reason="benchmark"), timeout=10)

    def pid(name: str) -> Callable[[], int]:
        """The child's pid once watchdogd itself reports the target HEALTHY (else 0), so a
        kill never lands before watchdogd saw the previous recovery (that would be a crash loop)."""
        def current() -> int:
            t = stub.GetTarget(pb.GetTargetRequest(name=name), timeout=5)
            return int(t.pid) if t.state == "HEALTHY" else 0
        return current

    results: dict[str, Any] = {}
    port = free_port()
    put(target("kill", port, 6.0, 3.0))  # the defaults
    results["kill_defaults"] = summary(measure(port, pid("kill"), signal.SIGKILL, args.kills))
    stub.RemoveTarget(pb.RemoveTargetRequest(name="kill", actor="bench", reason="done"), timeout=10)
    for key, sig, interval, timeout, rounds in (
            ("frozen", signal.SIGSTOP, 6.0, 3.0, args.hangs),
            ("app_hang", signal.SIGUSR1, 6.0, 3.0, args.app_hangs),
            ("app_hang_fast", signal.SIGUSR1, 2.0, 1.0, args.app_hangs)):
        port = free_port()
        put(target(key, port, interval, timeout))
        results[key] = {**summary(measure(port, pid(key), sig, rounds)),
                        "interval_s": interval, "timeout_s": timeout}
        if key != "app_hang_fast":
            stub.RemoveTarget(pb.RemoveTargetRequest(name=key, actor="bench", reason="done"), timeout=10)
    results["idle"] = idle(stub, put, wd_pid, args.idle_seconds, port)
    return results


def idle(stub: Any, put: Callable[[pb.Target], None], wd_pid: int, seconds: float, port: int
         ) -> dict[str, float]:
    """watchdogd with 10 targets (default 6 s / 3 s checks of a live service), doing nothing else."""
    for n in range(9):
        put(target(f"idle{n}", port, 6.0, 3.0, check_port=port, driver="none"))
    time.sleep(2)  # let start-up settle before measuring; not synchronisation
    meter = CpuMeter(wd_pid)
    meter.start()
    time.sleep(seconds)
    return {"targets": 10, "rss_mb": rss_mb(wd_pid), "cpu_percent_of_core": meter.percent()}


def run_supervisord(rounds: int) -> dict[str, Any]:
    exe = os.environ.get("SUPERVISORD") or shutil.which("supervisord")
    if not exe:
        return {"skipped": "supervisord not found (pip install supervisor; set SUPERVISORD)"}
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "supervisord.conf"
        env = ",".join(f'{k}="{v}"' for k, v in echo_env(port).items())
        conf.write_text(f"""[supervisord]
nodaemon=true
logfile={tmp}/supervisord.log
pidfile={tmp}/supervisord.pid
[program:echo]
command={' '.join(ECHO)}
environment={env},PYTHONPATH="{os.getcwd()}"
autorestart=true
startsecs=0
startretries=1000
stopasgroup=true
killasgroup=true
""")
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return summary(measure(port, lambda: child_pid(proc.pid), signal.SIGKILL, rounds))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


def child_pid(parent: int) -> int:
    try:
        kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except OSError:
        return 0
    return int(kids[0]) if kids else 0


def report(results: dict[str, Any]) -> str:
    rows = []
    for label, key in (("watchdogd SIGKILL (defaults 6 s / 3 s)", "kill_defaults"),
                       ("supervisord SIGKILL (autorestart)", "supervisord"),
                       ("watchdogd SIGSTOP, frozen process (6 s / 3 s)", "frozen"),
                       ("watchdogd application hang, SIGUSR1 (6 s / 3 s)", "app_hang"),
                       ("watchdogd application hang, SIGUSR1 (2 s / 1 s)", "app_hang_fast")):
        r = results[key]
        rows.append([label, r.get("n"), r.get("p50_s"), r.get("p95_s"), r.get("max_s")])
    crash_ratio = ratio(results["kill_defaults"]["p50_s"], results["supervisord"].get("p50_s", 0))
    idle_r = results["idle"]
    return (markdown_table(["case", "n", "p50 s", "p95 s", "max s"], rows)
            + f"\n\nwatchdogd / supervisord p50 crash recovery: {crash_ratio:.2f}\n"
            f"idle watchdogd, {idle_r['targets']} targets: {idle_r['rss_mb']:.1f} MB RSS, "
            f"{idle_r['cpu_percent_of_core']:.2f}% of a core\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--hangs", type=int, default=20)
    parser.add_argument("--app-hangs", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    with postgres() as url:
        results = run_watchdogd(url, args)
    results["supervisord"] = run_supervisord(args.kills)
    markdown = report(results)
    print(markdown)
    write_results("watchdogd", results, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
