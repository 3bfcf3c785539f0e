"""The targets of cgroupd's benchmarks and the markdown tables built from one run's results."""

from __future__ import annotations

import statistics
from typing import Any

from harness import markdown_table, met, ratio

CREATE_P50_MS = 5.0
STATS_MS = 200.0
SCRAPE_MS = 500.0
RECONCILE_S = 30.0


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _range(values: list[float]) -> str:
    return f"{min(values):,.1f}-{max(values):,.1f}"


def slowdown(r: dict[str, Any]) -> dict[str, float]:
    """VM ÷ host for the two calibration workloads (pure Python, syscalls)."""
    vm, host = r["calibration"], r["host_calibration"]
    return {k: ratio(vm[k], host[k]) for k in vm}


def targets(r: dict[str, Any]) -> str:
    rows: list[list[object]] = []
    if "create" in r:
        p50, p99 = r["create"]["cgroupd"]["p50"], r["create"]["cgroupd"]["p99"]
        rows.append(["create-with-limits p50 < 5 ms", f"p50 {p50:.2f} ms, p99 {p99:.2f} ms",
                     met(p50 < CREATE_P50_MS)])
    if "stats" in r:
        s = r["stats"]
        rows.append([f"GetStats for {s['accounts']:,} accounts < 200 ms",
                     f"{_med(s['read_ms']):,.0f} ms (read), {_med(s['read_encode_ms']):,.0f} ms (+ protobuf)",
                     met(_med(s["read_encode_ms"]) < STATS_MS)])
        rows.append([f"scrape of {s['accounts']:,} accounts < 500 ms", f"{_med(s['scrape_ms']):,.0f} ms",
                     met(_med(s["scrape_ms"]) < SCRAPE_MS)])
    if "reconcile" in r:
        c = r["reconcile"]
        worst = max(c["scratch"]["elapsed_s"], c["noop"]["elapsed_s"], c["drift"]["elapsed_s"])
        done = c["scratch"]["complete"] and c["noop"]["complete"] and c["drift"]["complete"]
        rows.append([f"reconcile {c['accounts']:,} accounts < 30 s",
                     f"{c['scratch']['elapsed_s']:.1f} s from scratch, "
                     f"{c['noop']['elapsed_s']:.1f} s nothing to do",
                     met(done and worst < RECONCILE_S)])
    return markdown_table(["target (measured in the VM)", "measured", "result"], rows)


def calibration(r: dict[str, Any]) -> str:
    factor = slowdown(r)
    names = {"parse_cpu_stat_us": "parse a cpu.stat text (cgroupd's parser), µs",
             "open_read_close_us": "open+read+close /proc/self/stat, µs"}
    rows = [[names[k], r["host_calibration"][k], r["calibration"][k], factor[k]] for k in names]
    return markdown_table(["fixed workload", "host", "VM", "VM ÷ host"], rows)


def create(r: dict[str, Any]) -> str:
    c = r["create"]
    base = c["cgroupd"]["p50"]
    labels = [("cgroupd", "(a) cgroupd `Cgroups.create` (KernelFs)"),
              ("floor", "(b) plain mkdir + 6 write(2), no checks"),
              ("cgroup_tools", "(c) cgroup-tools: cgcreate + cgset"),
              ("cgcreate", "  of it: cgcreate"), ("cgset", "  of it: cgset (6 -r)"),
              ("spawn_pair", "(d) two `/bin/true` spawns (exec floor)")]
    rows = [[label, int(c[k]["n"]), c[k]["p50"], c[k]["p90"], c[k]["p99"], c[k]["max"], c[k]["mean"],
             ratio(c[k]["p50"], base)] for k, label in labels]
    headers = ["method", "groups", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms", "p50 ÷ (a)"]
    return markdown_table(headers, rows)


def stats(r: dict[str, Any]) -> str:
    s = r["stats"]
    n = s["accounts"]
    base = _med(s["read_ms"])
    per_group = s["cgget_per_group"]["mean"] * n
    rows: list[list[object]] = [
        [f"(a) cgroupd read_stats x {n:,} (GetStats' worker half)", _med(s["read_ms"]), _range(s["read_ms"]),
         base * 1000 / n, 1.0],
        ["(b) (a) + GetStatsResponse protobuf, serialized", _med(s["read_encode_ms"]),
         _range(s["read_encode_ms"]),
         _med(s["read_encode_ms"]) * 1000 / n, ratio(_med(s["read_encode_ms"]), base)],
        ["(c) Prometheus scrape (`generate_latest`)", _med(s["scrape_ms"]), _range(s["scrape_ms"]),
         _med(s["scrape_ms"]) * 1000 / n, ratio(_med(s["scrape_ms"]), base)],
        [f"(d) one `cgget` for all {n:,} groups, {len(s['cgget_files'])} of the {s['files_per_group']} files",
         _med(s["cgget_all_ms"]),
         _range(s["cgget_all_ms"]), _med(s["cgget_all_ms"]) * 1000 / n, ratio(_med(s["cgget_all_ms"]), base)],
        [f"(e) one `cgget` per group ({s['cgget_sample']} timed, x {n // s['cgget_sample']})", per_group,
         f"p50 {s['cgget_per_group']['p50']:.0f} / p99 {s['cgget_per_group']['p99']:.0f} per call",
         per_group * 1000 / n, ratio(per_group, base)],
    ]
    sim = r.get("host_simulated")
    if sim:
        rows += [[f"(f) host, native speed: (a) on SimulatedFs in tmpfs, {n:,} groups", _med(sim["read_ms"]),
                  _range(sim["read_ms"]), _med(sim["read_ms"]) * 1000 / n, ratio(_med(sim["read_ms"]), base)],
                 ["(g) host, native speed: (c) on SimulatedFs in tmpfs", _med(sim["scrape_ms"]),
                  _range(sim["scrape_ms"]), _med(sim["scrape_ms"]) * 1000 / n,
                  ratio(_med(sim["scrape_ms"]), base)]]
    return markdown_table(["what", "ms (median)", "range ms", "µs per account", "÷ (a)"], rows)


def reconcile(r: dict[str, Any]) -> str:
    c = r["reconcile"]
    n = c["accounts"]
    rows: list[list[object]] = [
        [label, c[k]["elapsed_s"], c[k]["elapsed_s"] * 1e6 / n / 1000, c[k]["recreated"], c[k]["rewritten"],
         c[k]["failed"], "yes" if c[k]["complete"] else "NO"]
        for k, label in (("scratch", "(a) from scratch (every group missing)"),
                         ("noop", "(b) again, nothing to do (drift check)"),
                         ("drift", f"(c) after drift: {c['drift']['pids_max_changed']} pids.max changed, "
                                   f"{c['drift']['removed']} groups removed"))]
    if "create" in r:
        tools = r["create"]["cgroup_tools"]["mean"] * n / 1000
        rows.append([f"(d) cgroup-tools, from scratch: {n:,} x mean cgcreate+cgset (extrapolated)", tools,
                     r["create"]["cgroup_tools"]["mean"], n, "", "", "not run"])
    files = len(c["cgget_files"])
    rows.append([f"(e) cgroup-tools, drift read only: one `cgget` of {files} files of every group",
                 c["cgget_drift_read_s"], c["cgget_drift_read_s"] * 1000 / n, "", "", "", "read only"])
    return markdown_table(["pass", "seconds", "ms per account", "recreated", "files rewritten", "failed",
                           "complete"], rows)


def memory(r: dict[str, Any]) -> str:
    rows = []
    if "stats" in r:
        m = r["stats"]["memory"]
        rows.append([f"{int(m['groups']):,} groups (GetStats set)", m["slab_kib"], m["percpu_kib"],
                     m["used_minus_own_rss_kib"], m["parent_memory_stat_kernel_kib"],
                     m["parent_memory_stat_percpu_kib"]])
    if "reconcile" in r:
        c = r["reconcile"]
        rows.append([f"{c['accounts']:,} groups (reconcile from scratch)", c["slab_kib"], c["percpu_kib"],
                     c["memory_used_minus_own_rss_kib"], "", ""])
    headers = ["created", "Slab KiB/group", "Percpu KiB/group", "MemFree drop - own RSS KiB/group",
               "parent memory.stat kernel KiB/group", "parent memory.stat percpu KiB/group"]
    return markdown_table(headers, rows)


def section(r: dict[str, Any]) -> str:
    env = r["env"]
    parts = [f"Command: `{r['command']}`  \nDate: {r['date']}  \n"
             f"VM: kernel {env['kernel']}, {env['cpus']} vCPUs (TCG, no KVM), "
             f"{env['mem_total_kib'] // 1024} MiB, Python {env['python']}, "
             f"cgroup-tools {env['cgroup_tools']}; boot + run {r['vm_seconds']:.0f} s; "
             f"host load average {r['host_load_at_start']:.1f} at the start (2 CPUs, shared)",
             targets(r), "Calibration (the same fixed work on the host and in the VM):", calibration(r)]
    for key, title, table in (("create", "Create-with-limits", create), ("stats", "GetStats", stats),
                              ("reconcile", "Reconcile", reconcile)):
        if key in r:
            parts += [f"{title}:", table(r)]
    if "stats" in r or "reconcile" in r:
        parts += ["Kernel memory per group:", memory(r)]
    return "\n\n".join(parts)
