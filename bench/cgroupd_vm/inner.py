"""cgroupd's benchmarks, INSIDE the virtme-ng VM (a full cgroup v2 kernel, root).

Run by bench/bench_cgroupd.py as `cd bench && python -m cgroupd_vm.inner OUT`, where
OUT/params.json holds the counts; writes OUT/result.json. Every cgroupd figure goes
through cgroupd's own code: Cgroups.create on KernelFs (the kernel half of
CreateAccount), read_stats over every account (what GetStats runs in its worker
thread), the metrics collector, and reconcile() with the desired state in memory
(the service reads it from PostgreSQL first; that SELECT is not measured here).
cgroup-tools (cgcreate, cgset, cgget) do the same work in the same boot.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from harness import progress
from prometheus_client import CollectorRegistry, generate_latest

from npanel.cgroupd.convert import stats_pb
from npanel.cgroupd.fs import KernelFs
from npanel.cgroupd.groups import Cgroups, writes
from npanel.cgroupd.metrics import CgroupdMetrics
from npanel.cgroupd.model import DEFAULT_LIMITS, Account, Limits
from npanel.cgroupd.reconcile import Report, reconcile
from npanel.cgroupd.sampler import read_stats
from npanel.cgroupd.stats import GroupStats
from npanel.cgroupd.v1 import cgroupd_pb2 as pb

from .measure import (
    calibrate,
    cgget_readable,
    cgset_args,
    enable_controllers,
    floor_create,
    meminfo,
    memory_stat,
    own_rss_kb,
    remove_children,
    run_tool,
    run_tool_output,
    summary,
    timed_ms,
)

MOUNT = Path("/sys/fs/cgroup")
LIMITS: Limits = DEFAULT_LIMITS  # cpu 50%, 512 MiB, swap 128 MiB, 256 PIDs: six limit files
CONTROLLERS = "+cpu +memory +pids"
# The files read_stats reads for one group; cgget is asked for the same ones.
STAT_FILES = ("cgroup.events", "cpu.stat", "memory.current", "memory.peak", "memory.max", "memory.high",
              "memory.swap.current", "memory.swap.max", "memory.events", "pids.current", "pids.max",
              "pids.events", "io.stat", "cpu.pressure", "memory.pressure", "io.pressure")
DRIFT_FILES = ("cpu.max", "cpu.weight", "memory.high", "memory.max", "memory.swap.max", "pids.max",
               "io.max", "cgroup.events")


def bench_create(p: dict[str, Any]) -> dict[str, Any]:
    """Create-with-limits, one group at a time, cgroupd / plain syscalls / cgroup-tools
    interleaved in rounds so a slow stretch of the VM hits all of them alike."""
    cg = Cgroups(KernelFs(MOUNT), MOUNT / "npanel.slice")
    planned = writes(LIMITS)
    floor_root, tools_root = MOUNT / "floor.slice", MOUNT / "cgtools.slice"
    cg.ensure_root(["cpu", "memory", "pids"])  # enables them at the mount too
    for root in (floor_root, tools_root):
        # cgcreate 2.0.2 fails with ENOENT unless the parent already enables the controllers.
        enable_controllers(root, CONTROLLERS)
    tools_set = cgset_args(planned)
    times: dict[str, list[float]] = {"cgroupd": [], "floor": [], "cgcreate": [], "cgset": [],
                                     "cgroup_tools": [], "spawn_pair": []}

    def tools(name: str) -> None:
        first = timed_ms(lambda: run_tool(["cgcreate", "-g", f"cpu,memory,pids:cgtools.slice/{name}"]))
        second = timed_ms(lambda: run_tool(["cgset", *tools_set, f"cgtools.slice/{name}"]))
        times["cgcreate"].append(first)
        times["cgset"].append(second)
        times["cgroup_tools"].append(first + second)

    def spawn_pair() -> None:
        times["spawn_pair"].append(timed_ms(lambda: run_tool(["/bin/true"])) +
                                   timed_ms(lambda: run_tool(["/bin/true"])))

    # Warm-up, untimed: first imports and first exec of each tool over 9p.
    cg.create("warm", LIMITS)
    floor_create(floor_root / "warm", planned)
    run_tool(["cgcreate", "-g", "cpu,memory,pids:cgtools.slice/warm"])
    run_tool(["cgset", *tools_set, "cgtools.slice/warm"])
    run_tool(["/bin/true"])
    rounds = p["rounds"]
    for r in range(rounds):
        for i in range(r * p["create"] // rounds, (r + 1) * p["create"] // rounds):
            name = f"acct{i:05d}"
            times["cgroupd"].append(timed_ms(partial(cg.create, name, LIMITS)))
            times["floor"].append(timed_ms(partial(floor_create, floor_root / name, planned)))
        for i in range(r * p["tools_create"] // rounds, (r + 1) * p["tools_create"] // rounds):
            tools(f"acct{i:05d}")
        for _ in range(p["spawn_pairs"] // rounds):
            spawn_pair()
        ours, theirs = summary(times["cgroupd"])["p50"], summary(times["cgroup_tools"])["p50"]
        progress(f"create round {r + 1}/{rounds}: p50 cgroupd {ours:.2f} ms, cgroup-tools {theirs:.1f} ms")
    # The same six files, checked by cgroupd's own drift check, in every group of each method.
    unequal = {root.name: sum(bool(Cgroups(KernelFs(MOUNT), root).drift(n, LIMITS))
                              for n in Cgroups(KernelFs(MOUNT), root).groups())
               for root in (cg.root, floor_root, tools_root)}
    removed = sum(remove_children(root) for root in (cg.root, floor_root, tools_root))
    progress(f"create done; groups whose files differ from the limits: {unequal}; removed {removed} groups")
    return {"files_written": [f for f, _ in planned], "cgset_argv": tools_set, "groups_not_matching": unequal,
            **{k: summary(v) for k, v in times.items()}}


def _start_sleepers(cg: Cgroups, ids: list[str]) -> list[subprocess.Popen[bytes]]:
    sleepers = []
    for account_id in ids:
        proc = subprocess.Popen(["sleep", "3600"], stdin=subprocess.DEVNULL)
        cg.move(account_id, [proc.pid], descendants=False)
        sleepers.append(proc)
    return sleepers


def _memory_cost(before: dict[str, int], after: dict[str, int], stat0: dict[str, int],
                 stat1: dict[str, int], rss_growth_kb: int, groups: int) -> dict[str, float]:
    """Per-group kernel memory in KiB, three ways (see docs/BENCHMARKS.md, cgroupd §4)."""
    def delta(key: str) -> int:
        return after[key] - before[key]

    used = -delta("MemFree") - rss_growth_kb
    return {"groups": groups, "slab_kib": delta("Slab") / groups, "percpu_kib": delta("Percpu") / groups,
            "used_minus_own_rss_kib": used / groups,
            "parent_memory_stat_kernel_kib": (stat1["kernel"] - stat0["kernel"]) / 1024 / groups,
            "parent_memory_stat_percpu_kib": (stat1["percpu"] - stat0["percpu"]) / 1024 / groups}


def create_many(cg: Cgroups, ids: list[str]) -> tuple[float, dict[str, float]]:
    """Create `ids` through cgroupd; returns (seconds, per-group kernel memory)."""
    cg.ensure_root(["cpu", "memory", "pids"])
    gc.collect()
    before, stat0, rss0 = meminfo(), memory_stat(cg.root), own_rss_kb()
    start = time.monotonic()
    for account_id in ids:
        cg.create(account_id, LIMITS)
    elapsed = time.monotonic() - start
    gc.collect()
    cost = _memory_cost(before, meminfo(), stat0, memory_stat(cg.root), own_rss_kb() - rss0, len(ids))
    return elapsed, cost


def bench_stats(p: dict[str, Any]) -> dict[str, Any]:
    cg = Cgroups(KernelFs(MOUNT), MOUNT / "npanel-stats.slice")
    ids = [f"s{i:05d}" for i in range(p["stats"])]
    create_s, memory = create_many(cg, ids)
    progress(f"stats: {len(ids)} groups created in {create_s:.1f} s; kernel memory per group {memory}")
    sleepers = _start_sleepers(cg, ids[:: max(1, len(ids) // p["populated"])][: p["populated"]])

    def read_all() -> list[GroupStats]:
        # Accounts._read_all, the worker-thread half of GetStats, line for line.
        found = []
        for account_id in ids:
            group = cg.path(account_id)
            if cg.fs.exists(group):
                found.append(read_stats(cg.fs, group, account_id))
        return found

    def read_and_encode() -> bytes:
        response = pb.GetStatsResponse(stats=[stats_pb(s) for s in read_all()], simulated=False)
        return response.SerializeToString()

    registry = CollectorRegistry()
    CgroupdMetrics(registry, cg, lambda: ids)
    assert len(read_all()) == len(ids)  # also the warm-up
    out: dict[str, Any] = {"accounts": len(ids), "populated": len(sleepers), "create_all_s": create_s,
                           "memory": memory, "files_per_group": len(STAT_FILES)}
    out["read_ms"] = [timed_ms(read_all) for _ in range(p["stats_repeats"])]
    out["read_encode_ms"] = [timed_ms(read_and_encode) for _ in range(p["stats_repeats"])]
    out["proto_bytes"] = len(read_and_encode())
    generate_latest(registry)
    out["scrape_ms"] = [timed_ms(lambda: generate_latest(registry)) for _ in range(p["stats_repeats"])]
    out["scrape_bytes"] = len(generate_latest(registry))
    progress(f"stats: read {out['read_ms']} ms, scrape {out['scrape_ms']} ms")
    readable = cgget_readable(f"{cg.root.name}/{ids[0]}", STAT_FILES)
    out["cgget_files"], out["cgget_refused"] = readable, [f for f in STAT_FILES if f not in readable]
    reads = [a for f in readable for a in ("-r", f)]
    sample = ids[:: max(1, len(ids) // p["cgget_sample"])][: p["cgget_sample"]]
    out["cgget_per_group"] = summary(
        [timed_ms(partial(run_tool_output, ["cgget", *reads, f"{cg.root.name}/{a}"])) for a in sample])
    out["cgget_sample"] = len(sample)
    everyone = [f"{cg.root.name}/{a}" for a in ids]
    out["cgget_all_ms"] = [timed_ms(lambda: run_tool_output(["cgget", *reads, *everyone]))
                           for _ in range(p["cgget_all_repeats"])]
    progress(f"stats: cgget per group p50 {out['cgget_per_group']['p50']:.1f} ms, "
             f"one cgget for all {out['cgget_all_ms']} ms")
    for account_id in ids:
        cg.delete(account_id, 10)  # cgroupd's delete: cgroup.kill for the populated ones
    for proc in sleepers:
        proc.wait(10)
    cg.fs.rmdir(cg.root)
    return out


def _report(r: Report) -> dict[str, Any]:
    return {"elapsed_s": r.elapsed_s, "checked": r.checked, "total": r.total, "complete": r.complete,
            "recreated": len(r.recreated), "rewritten": len(r.rewritten), "unknown": len(r.unknown),
            "failed": len(r.failed), "first_failures": r.failed[:3]}


def bench_reconcile(p: dict[str, Any]) -> dict[str, Any]:
    cg = Cgroups(KernelFs(MOUNT), MOUNT / "npanel-reconcile.slice")
    now = datetime.now(UTC)
    accounts = [Account(f"r{i:05d}", "default", LIMITS, False, now, now) for i in range(p["reconcile"])]

    def run(label: str) -> dict[str, Any]:
        report = reconcile(cg, accounts, limit_s=p["reconcile_limit_s"], every=1000,
                           progress=lambda r: progress(f"{label}: {r.summary()}"))
        return _report(report)

    gc.collect()
    before, rss0 = meminfo(), own_rss_kb()
    out: dict[str, Any] = {"accounts": len(accounts), "scratch": run("reconcile from scratch")}
    gc.collect()
    after = meminfo()
    out["memory_used_minus_own_rss_kib"] = (before["MemFree"] - after["MemFree"]
                                            - (own_rss_kb() - rss0)) / len(accounts)
    out["slab_kib"] = (after["Slab"] - before["Slab"]) / len(accounts)
    out["percpu_kib"] = (after["Percpu"] - before["Percpu"]) / len(accounts)
    out["noop"] = run("reconcile, nothing to do")
    drifted = accounts[:: p["drift_every"]]
    for account in drifted:
        (cg.path(account.account_id) / "pids.max").write_text("1000")
    removed = accounts[3 :: p["drift_every"] * 10]
    for account in removed:
        cg.fs.rmdir(cg.path(account.account_id))
    out["drift"] = {**run("reconcile after drift"), "pids_max_changed": len(drifted), "removed": len(removed)}
    readable = cgget_readable(f"{cg.root.name}/{accounts[0].account_id}", DRIFT_FILES)
    out["cgget_files"], out["cgget_refused"] = readable, [f for f in DRIFT_FILES if f not in readable]
    reads = [a for f in readable for a in ("-r", f)]
    everyone = [f"{cg.root.name}/{a.account_id}" for a in accounts]
    out["cgget_drift_read_s"] = timed_ms(lambda: run_tool_output(["cgget", *reads, *everyone])) / 1000
    progress(f"reconcile: one cgget of the drift files of all groups took {out['cgget_drift_read_s']:.1f} s")
    return out


def environment() -> dict[str, Any]:
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "controllers": (MOUNT / "cgroup.controllers").read_text().split(),
            "mem_total_kib": meminfo()["MemTotal"],
            "cgroup_tools": subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "cgroup-tools"],
                                           capture_output=True, text=True, check=False).stdout or "unknown"}


def main() -> int:
    out_dir = Path(sys.argv[1])
    params: dict[str, Any] = json.loads((out_dir / "params.json").read_text())
    result: dict[str, Any] = {"env": environment(), "calibration": calibrate()}
    progress(f"in the VM: {result['env']}; calibration {result['calibration']}")
    for name, bench in (("create", bench_create), ("stats", bench_stats), ("reconcile", bench_reconcile)):
        if name in params["only"]:
            start = time.monotonic()
            result[name] = bench(params)
            result[name]["section_s"] = time.monotonic() - start
            (out_dir / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    progress("all done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
