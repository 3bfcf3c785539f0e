"""Drive a server with one or more loadgen.py processes and summarise the window.

The processes share one wall-clock window; meanwhile the server's CPU is read
from /proc, so a result says not only how fast but whether the server was the
bottleneck (about 100% of a core for a single-threaded Python server).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from harness import BENCH_DIR, PYTHON, REPO, CpuMeter, host_busy_seconds, percentile, progress

# Time for the client processes to import grpc and connect before warm-up counts.
STARTUP_ALLOWANCE_S = 2.0


@dataclass(frozen=True)
class LoadShape:
    """How the calls in flight are spread over client processes and channels."""

    mode: str  # "aio" or "future" (see loadgen.py)
    processes: int
    in_flight: int  # in total, over all processes
    channels: int  # per process

    @property
    def label(self) -> str:
        per = self.in_flight // self.processes
        unit = "tasks" if self.mode == "aio" else "futures"
        return f"{self.mode}: {self.processes} proc x {per} {unit}, {self.channels} ch/proc"


@dataclass(frozen=True)
class LoadResult:
    target: str
    shape: str
    duration_s: float
    calls: int
    errors: int
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_pct: float
    client_cpu_pct: float
    # CPU used by everything else on the machine during the window (a shared, noisy host).
    others_cpu_pct: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _spawn(address: str, call: str, shape: LoadShape, start_at: float, duration_s: float) -> list[
        subprocess.Popen[str]]:
    argv = [PYTHON, str(BENCH_DIR / "loadgen.py"), "--target", address, "--call", call,
            "--mode", shape.mode, "--in-flight", str(shape.in_flight // shape.processes),
            "--channels", str(shape.channels), "--start-at", f"{start_at:.6f}", "--duration", str(duration_s)]
    return [subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
            for _ in range(shape.processes)]


def _collect(procs: list[subprocess.Popen[str]], limit_s: float) -> list[dict[str, Any]]:
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=limit_s)
        if proc.returncode != 0:
            raise RuntimeError(f"loadgen exited with {proc.returncode}; its stderr is above")
        outputs.append(json.loads(out))
    return outputs


def run_load(target: str, server_pid: int, address: str, call: str, shape: LoadShape,
             warmup_s: float, duration_s: float, at_start: Callable[[], None] | None = None) -> LoadResult:
    """Warm up, then measure `duration_s` seconds of closed-loop load on `address`.

    `at_start` runs when the measured window opens (e.g. to start a profiler).
    """
    start_at = time.time() + STARTUP_ALLOWANCE_S + warmup_s
    progress(f"{target} <- {shape.label}: {warmup_s:g} s warm-up, {duration_s:g} s measured")
    procs = _spawn(address, call, shape, start_at, duration_s)
    meter = CpuMeter(server_pid)
    try:
        time.sleep(max(0.0, start_at - time.time()))
        meter.start()
        host_start = host_busy_seconds()
        if at_start is not None:
            at_start()
        time.sleep(max(0.0, start_at + duration_s - time.time()))
        server_cpu = meter.percent()
        host_cpu = 100 * (host_busy_seconds() - host_start) / duration_s
        outputs = _collect(procs, limit_s=30)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    latencies = sorted(lat for out in outputs for lat in out["latencies_us"])
    client_cpu = 100 * sum(out["cpu_s"] for out in outputs) / duration_s
    result = LoadResult(
        target=target, shape=shape.label, duration_s=duration_s, calls=len(latencies),
        errors=sum(out["errors"] for out in outputs), calls_per_s=len(latencies) / duration_s,
        p50_ms=percentile(latencies, 50) / 1000, p99_ms=percentile(latencies, 99) / 1000,
        max_ms=(latencies[-1] / 1000) if latencies else float("nan"), server_cpu_pct=server_cpu,
        client_cpu_pct=client_cpu, others_cpu_pct=max(0.0, host_cpu - server_cpu - client_cpu))
    progress(f"  {result.calls_per_s:,.0f} calls/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
             f"errors {result.errors}, CPU: server {server_cpu:.0f}%, client {client_cpu:.0f}%, "
             f"others {result.others_cpu_pct:.0f}%")
    return result


def run_clean_load(target: str, server_pid: int, address: str, call: str, shape: LoadShape,
                   warmup_s: float, duration_s: float, max_others_pct: float = 25.0,
                   tries: int = 3) -> LoadResult:
    """run_load, repeated (at most `tries` times) while other programs took over `max_others_pct`
    of the machine in the window; returns the least disturbed run."""
    runs: list[LoadResult] = []
    for attempt in range(1, tries + 1):
        runs.append(run_load(target, server_pid, address, call, shape, warmup_s, duration_s))
        if runs[-1].others_cpu_pct <= max_others_pct:
            break
        if attempt < tries:
            progress(f"  other programs used {runs[-1].others_cpu_pct:.0f}% CPU in that window "
                     f"(> {max_others_pct:g}%); measuring again ({attempt + 1}/{tries})")
    return min(runs, key=lambda r: r.others_cpu_pct)
