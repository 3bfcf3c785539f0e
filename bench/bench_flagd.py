"""flagd benchmarks: Evaluate over gRPC, the flag client's cache, toggle propagation, idle cost.

Run: .venv/bin/python bench/bench_flagd.py   (or `make bench`). 5-12 minutes, more when
the machine is busy (disturbed load windows are measured again).
Everything runs on 127.0.0.1 against a throwaway PostgreSQL. Targets live here,
not in tests; numbers go to bench/results/flagd.json and flagd.md (the section
pasted into docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flagd_cases as cases
import flagd_report
import grpc
from harness import (
    BENCH_DIR,
    PYTHON,
    REPO,
    RESULTS_DIR,
    command_line,
    free_port,
    npanel_service,
    postgres,
    progress,
    service_process,
    utc_now,
    write_results,
)
from loadrun import LoadShape, run_load
from profiling import finish_py_spy, py_spy, start_py_spy, summarize_collapsed

SHAPES = (
    LoadShape("aio", processes=1, in_flight=64, channels=1),
    LoadShape("aio", processes=1, in_flight=64, channels=4),
    LoadShape("aio", processes=2, in_flight=64, channels=1),
    LoadShape("future", processes=1, in_flight=64, channels=1),
    LoadShape("future", processes=2, in_flight=64, channels=1),
)
# Closed loop keeps latency near in_flight / throughput (Little's law): 64 in flight at 4,000/s is 16 ms
# on average. A second, lighter run shows each target's latency with little queueing.
LIGHT_IN_FLIGHT = 8
PARTS = ("evaluate", "client", "propagation", "idle")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="flagd benchmarks (see docs/BENCHMARKS.md)")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measured window")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per Evaluate target")
    p.add_argument("--trial-duration", type=float, default=5.0, help="measured seconds per shape trial")
    p.add_argument("--rounds", type=int, default=3, help="passes over the three Evaluate targets")
    p.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                   help="py-spy flagd under load: auto = only when the Evaluate target is missed")
    p.add_argument("--client-calls", type=int, default=1_000_000)
    p.add_argument("--toggles", type=int, default=200)
    p.add_argument("--idle", type=float, default=60.0, help="seconds of idle measurement")
    args = p.parse_args(argv)
    args.parts = [x for x in args.only.split(",") if x]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        p.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    return args


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    model = models[0] if models else "unknown"
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "grpcio": grpc.__version__, "kernel": platform.release(), "loadavg_at_start": os.getloadavg()}


def bare_echo() -> Any:
    address = f"127.0.0.1:{free_port()}"
    return service_process("bare-echo", [PYTHON, str(BENCH_DIR / "bare_echo.py"), address], address)


def npanel_echo() -> Any:
    port = free_port()
    env = {"NPANEL_ECHO_LISTEN": f"127.0.0.1:{port}", "NPANEL_ECHO_METRICS_LISTEN": "127.0.0.1:0",
           "NPANEL_LOG_LEVEL": "warning"}
    return service_process("npanel-echo", [PYTHON, "-m", "npanel.testing.echo"], f"127.0.0.1:{port}", env)


def bench_evaluate(flagd: cases.Target, args: argparse.Namespace) -> dict[str, Any]:
    with bare_echo() as bare, npanel_echo() as echo:
        progress(f"trying {len(SHAPES)} client shapes against flagd Evaluate")
        shape, trials = cases.pick_shape(flagd, SHAPES, args.warmup / 2, args.trial_duration)
        targets = [cases.Target("bare grpc.aio echo", bare, "echo"),
                   cases.Target("npanel echo (bootstrap)", echo, "echo"), flagd]
        rounds = cases.compare_targets(targets, shape, args.warmup, args.duration, args.rounds)
        light = LoadShape(shape.mode, processes=1, in_flight=LIGHT_IN_FLIGHT, channels=1)
        progress(f"lighter load: {light.label}")
        light_runs = cases.each_target(targets, light, args.warmup, args.duration)
    out: dict[str, Any] = {
        "shape": shape.label, "trials": [t.as_dict() for t in trials],
        "targets": {t.name: [r.as_dict() for r in rs] for t, rs in zip(targets, rounds, strict=True)},
        "light": {"shape": light.label, "in_flight": LIGHT_IN_FLIGHT,
                  "targets": [r.as_dict() for r in light_runs]}}
    missed = not flagd_report.evaluate_met(out)
    if args.profile == "always" or (args.profile == "auto" and missed):
        out["profile"] = profile_flagd(flagd, shape, args)
    return out


def profile_flagd(flagd: cases.Target, shape: LoadShape, args: argparse.Namespace) -> dict[str, Any] | None:
    """py-spy flagd under the same load: once to collapsed stacks (summarised), once to a flame graph."""
    binary = py_spy()
    if binary is None:
        progress("py-spy not installed (.venv/bin/pip install py-spy==0.4.3); skipping the profile")
        return None
    summary: dict[str, Any] = {}
    for fmt, name in (("raw", "flagd-evaluate.collapsed"), ("flamegraph", "flagd-evaluate.svg")):
        out = RESULTS_DIR / name
        progress(f"profiling flagd (pid {flagd.process.pid}) under load with py-spy -> {out}")
        spies: list[subprocess.Popen[bytes]] = []

        def spy(out: Path = out, fmt: str = fmt, spies: list[subprocess.Popen[bytes]] = spies) -> None:
            spies.append(start_py_spy(binary, flagd.process.pid, args.duration, out, fmt))

        try:
            result = run_load(f"{flagd.name} under py-spy", flagd.process.pid, flagd.process.address,
                              flagd.call, shape, args.warmup, args.duration, at_start=spy)
        finally:
            for proc in spies:
                finish_py_spy(proc, limit_s=60)
        summary[fmt] = {"file": str(out.relative_to(REPO)), "load": result.as_dict()}
    total, spots = summarize_collapsed(RESULTS_DIR / "flagd-evaluate.collapsed")
    summary["samples"] = total
    summary["hotspots"] = [vars(s) for s in spots]
    return summary


def bench_with_replica_a(url: str, args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Evaluate, client cache and propagation share replica A (propagation adds B)."""
    with npanel_service("flagd", url, label="flagd-a") as a:
        cases.set_flag(a.address, cases.ROLLOUT_FLAG, enabled=True, rollout=50)
        if "evaluate" in args.parts:
            flagd = cases.Target(flagd_report.FLAGD_TARGET, a, "evaluate")
            results["evaluate"] = bench_evaluate(flagd, args)
        if "client" in args.parts:
            progress(f"FlagClient.is_enabled: {args.client_calls:,} calls x 3 repeats per case")
            results["client"] = asyncio.run(cases.client_cache(a.address, args.client_calls, 3))
        if "propagation" in args.parts:
            with npanel_service("flagd", url, label="flagd-b") as b:
                progress(f"propagation: {args.toggles} toggles via {a.address}, watched on {b.address}")
                results["propagation"] = asyncio.run(cases.propagation(a.address, b.address, args.toggles))


def bench_idle(url: str, args: argparse.Namespace) -> dict[str, Any]:
    # Fresh processes: replica A has just served heavy load and its heap shows it.
    with npanel_service("flagd", url, label="flagd-idle") as flagd, npanel_echo() as echo, \
            bare_echo() as bare:
        progress(f"idle: measuring {args.idle:g} s")
        return asyncio.run(cases.idle([flagd, echo, bare], flagd.address, args.idle))


def main() -> int:
    args = parse_args()
    results: dict[str, Any] = {"date": utc_now(), "command": command_line(), "machine": machine()}
    progress(f"flagd benchmarks ({', '.join(args.parts)}) on {results['machine']['cpus']} CPUs")
    with postgres() as url:
        if set(args.parts) & {"evaluate", "client", "propagation"}:
            bench_with_replica_a(url, args, results)
        if "idle" in args.parts:
            results["idle"] = bench_idle(url, args)
    markdown = flagd_report.render(results)
    json_path, md_path = write_results("flagd", results, markdown)
    print("\n" + markdown + "\n", flush=True)
    progress(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
