"""Shared pieces of every npanel benchmark: processes, PostgreSQL, /proc readings, results.

Each service's `bench_<service>.py` starts real service processes on 127.0.0.1
(never anything else), measures them side by side in one run, and writes
`bench/results/<service>.json` plus a markdown section for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable
LOOPBACK = "127.0.0.1"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_STARTED = time.monotonic()


def progress(message: str) -> None:
    """One line per step, with seconds since the run began, so a long run shows it is alive."""
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", flush=True)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def command_line() -> str:
    """The command that reproduces this run, relative to the repository root."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script
    return shlex.join([".venv/bin/python", str(shown), *sys.argv[1:]])


def free_port() -> int:
    # The kernel picks an unused port; a tiny race with other programs is acceptable here.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted sequence."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


# -- /proc readings -------------------------------------------------------------------


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory from /proc/<pid>/status (VmRSS now, VmHWM peak), in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            kib = int(line.split()[1])
            return kib * 1024 / 1e6
    raise ValueError(f"/proc/{pid}/status has no {field} line; is {pid} a live process?")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of `pid` (fields 14 and 15 of /proc/<pid>/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses; fields follow the last ')'.
    fields = text[text.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLK_TCK


@dataclass
class CpuMeter:
    """CPU used by a process between `start()` and `stop()`, as % of one core."""

    pid: int
    _cpu0: float = 0.0
    _wall0: float = 0.0

    def start(self) -> None:
        self._cpu0, self._wall0 = cpu_seconds(self.pid), time.monotonic()

    def percent(self) -> float:
        wall = time.monotonic() - self._wall0
        return 100 * (cpu_seconds(self.pid) - self._cpu0) / wall if wall > 0 else math.nan


def host_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all CPUs, /proc/stat), stolen time included.

    Minus what the measured processes used, it shows how much else ran on the
    shared machine during a window.
    """
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


# -- service processes ----------------------------------------------------------------


@dataclass
class ServiceProcess:
    name: str
    address: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc})"
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def wait_serving(service: ServiceProcess, limit_s: float = 30.0) -> None:
    """Poll grpc.health.v1 Check("") until SERVING; fail with the log tail otherwise."""
    deadline = time.monotonic() + limit_s
    last = "no answer yet"
    with grpc.insecure_channel(service.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if service.proc.poll() is not None:
                raise RuntimeError(f"{service.name} exited with {service.proc.returncode} before "
                                   f"SERVING; log {service.log_path}:\n{service.log_tail()}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                last = str(exc.code())
            time.sleep(0.05)
    raise RuntimeError(f"{service.name} on {service.address} not SERVING within {limit_s:g} s "
                       f"(last: {last}); log {service.log_path}:\n{service.log_tail()}")


def stop_process(service: ServiceProcess, grace_s: float = 10.0) -> None:
    """SIGTERM (graceful shutdown), then SIGKILL if it outlives the grace period."""
    if service.proc.poll() is None:
        service.proc.send_signal(signal.SIGTERM)
        try:
            service.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            progress(f"{service.name} (pid {service.pid}) ignored SIGTERM for {grace_s:g} s; killing it")
            service.proc.kill()
            service.proc.wait(5)


@contextlib.contextmanager
def service_process(
    name: str, argv: Sequence[str], address: str, env: Mapping[str, str] | None = None
) -> Iterator[ServiceProcess]:
    """Run `argv` from the repo root with output to bench/results/<name>.log; yield once SERVING."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS_DIR / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(list(argv), cwd=REPO, env={**os.environ, **(env or {})},
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    service = ServiceProcess(name, address, proc, log_path)
    try:
        wait_serving(service)
        progress(f"{name} SERVING on {address} (pid {proc.pid})")
        yield service
    finally:
        stop_process(service)


def npanel_service(name: str, database_url: str | None = None, label: str | None = None
                   ) -> contextlib.AbstractContextManager[ServiceProcess]:
    """`npanel serve <name>` on free loopback ports, logging at warning level.

    `label` names the process in output and its log file (two replicas of one service).
    """
    port = free_port()
    prefix = f"NPANEL_{name.upper()}"
    env = {f"{prefix}_LISTEN": f"{LOOPBACK}:{port}", f"{prefix}_METRICS_LISTEN": f"{LOOPBACK}:0",
           "NPANEL_LOG_LEVEL": "warning", "NPANEL_SHUTDOWN_GRACE": "2"}
    if database_url is not None:
        env["NPANEL_DATABASE_URL"] = database_url
    argv = [PYTHON, "-m", "npanel.cli", "serve", name]
    return service_process(label or name, argv, f"{LOOPBACK}:{port}", env)


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL on 127.0.0.1 (deleted afterwards); yields its URL."""
    from npanel.common.pgembed import EmbeddedPostgres

    pg = EmbeddedPostgres(None, log=lambda line: progress(f"postgres: {line}"))
    url = pg.start()
    progress("postgres started")
    try:
        yield url
    finally:
        pg.stop()


# -- results --------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table that also reads well on a terminal (columns padded)."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def write_results(service: str, data: Mapping[str, Any], markdown: str) -> tuple[Path, Path]:
    """bench/results/<service>.json (machine-readable) and <service>.md (for docs/BENCHMARKS.md)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"{service}.json"
    md_path = RESULTS_DIR / f"{service}.md"
    json_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    md_path.write_text(markdown + "\n")
    return json_path, md_path
