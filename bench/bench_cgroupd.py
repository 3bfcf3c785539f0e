"""cgroupd: create-with-limits, GetStats for 1,000 accounts, reconcile 5,000 accounts,
side by side with Debian's cgroup-tools, inside ONE virtme-ng VM (a full cgroup v2 kernel).

The host's cgroup mount has no controllers to limit (ARCHITECTURE.md), so every figure
is taken in the VM that `make test-vm` uses: Debian's kernel, plain emulation (no KVM),
the repository seen over 9p. The VM runs bench/cgroupd_vm/inner.py and writes its JSON
into a host directory (--rwdir); this script prints the tables and writes
bench/results/cgroupd.{json,md}. Without the VM tools it prints "skipped: <why>" and
exits 0.

Usage: bench/bench_cgroupd.py [--create 500] [--tools-create 200] [--stats 1000]
                              [--reconcile 5000] [--only create,stats,reconcile]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cgroupd_vm import report
from cgroupd_vm.measure import calibrate, timed_ms
from harness import REPO, RESULTS_DIR, command_line, progress, utc_now, write_results
from prometheus_client import CollectorRegistry, generate_latest

from npanel.cgroupd.fs import SimulatedFs
from npanel.cgroupd.groups import Cgroups
from npanel.cgroupd.metrics import CgroupdMetrics
from npanel.cgroupd.model import DEFAULT_LIMITS
from npanel.cgroupd.sampler import read_stats

VENV_BIN = Path(sys.executable).parent
OUT_DIR = REPO / "build" / "bench-cgroupd-vm"
TOOLS = ("cgcreate", "cgset", "cgget")


def find_kernel() -> str | None:
    chosen = os.environ.get("NPANEL_VM_KERNEL")
    if chosen:
        return chosen
    def version(p: Path) -> list[int | str]:
        return [int(x) if x.isdigit() else x for x in p.name.replace("-", ".").split(".")]

    kernels = sorted(Path("/boot").glob("vmlinuz-*"), key=version)
    return str(kernels[-1]) if kernels else None


def missing(path: str) -> str | None:
    """Why the VM cannot run here, or None."""
    if find_kernel() is None:
        return "no kernel in /boot (apt-get install linux-image-amd64)"
    if shutil.which("vng", path=path) is None:
        return "vng missing (.venv/bin/pip install virtme-ng==1.42)"
    if shutil.which("qemu-system-x86_64", path=path) is None:
        return "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
    absent = [t for t in TOOLS if shutil.which(t, path=path) is None]
    if absent:
        return f"{' '.join(absent)} missing (apt-get install cgroup-tools): nothing to compare with"
    return None


def host_simulated(accounts: int, repeats: int = 3) -> dict[str, list[float]]:
    """GetStats' read and the scrape at native speed, on SimulatedFs in tmpfs: the same
    cgroupd code and file formats, with plain files standing in for the kernel's (which
    costs the kernel less than generating cpu.stat or memory.events)."""
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as top:
        groups = Cgroups(SimulatedFs(Path(top)), Path(top) / "npanel.slice")
        ids = [f"s{i:05d}" for i in range(accounts)]
        for account_id in ids:
            groups.create(account_id, DEFAULT_LIMITS)

        def read_all() -> None:
            for account_id in ids:
                if groups.fs.exists(groups.path(account_id)):
                    read_stats(groups.fs, groups.path(account_id), account_id)

        registry = CollectorRegistry()
        CgroupdMetrics(registry, groups, lambda: ids)
        read_all()
        return {"read_ms": [timed_ms(read_all) for _ in range(repeats)],
                "scrape_ms": [timed_ms(lambda: generate_latest(registry)) for _ in range(repeats)]}


def run_vm(params: dict[str, Any], path: str, memory: str, timeout_s: float) -> float:
    """Boot one VM running the inner benchmark; echo its progress lines; return seconds taken."""
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    OUT_DIR.mkdir(parents=True)
    (OUT_DIR / "params.json").write_text(json.dumps(params))
    log = OUT_DIR / "inner.log"
    inner = (f"cd {shlex.quote(str(REPO / 'bench'))} && {shlex.quote(str(VENV_BIN / 'python'))} "
             f"-m cgroupd_vm.inner {shlex.quote(str(OUT_DIR))} > {shlex.quote(str(log))} 2>&1; "
             f"echo $? > {shlex.quote(str(OUT_DIR / 'exit-code'))}")
    # KVM hangs on these machines (ARCHITECTURE.md): plain emulation, 9p root, as scripts/run-vm-tests.sh.
    argv = ["vng", "--run", str(find_kernel()), "--disable-kvm", "--force-9p", "--memory", memory,
            "--rwdir", str(OUT_DIR), "--exec", inner]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    start, shown = time.monotonic(), 0
    progress(f"booting the VM: {shlex.join(argv[:9])} ... (log {RESULTS_DIR / 'cgroupd-vm.log'})")
    with (RESULTS_DIR / "cgroupd-vm.log").open("wb") as vm_log:
        proc = subprocess.Popen(argv, stdout=vm_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PATH": path}, start_new_session=True)
        while proc.poll() is None:
            if time.monotonic() - start > timeout_s:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                raise RuntimeError(f"the VM ran longer than {timeout_s:g} s and was stopped; see {log}")
            time.sleep(2)
            lines = log.read_text(errors="replace").splitlines() if log.exists() else []
            for line in lines[shown:]:
                print(f"    vm {line}", flush=True)
            shown = max(shown, len(lines))
    return time.monotonic() - start


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--create", type=int, default=500,
                        help="groups created by cgroupd and by plain syscalls")
    parser.add_argument("--tools-create", type=int, default=200,
                        help="groups created by cgcreate + cgset (each ~0.5 s in the VM)")
    parser.add_argument("--stats", type=int, default=1000, help="accounts read by GetStats and the scrape")
    parser.add_argument("--reconcile", type=int, default=5000, help="accounts reconciled")
    parser.add_argument("--only", default="create,stats,reconcile", help="comma-separated parts to run")
    parser.add_argument("--memory", default="1G", help="VM memory (vng --memory)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before the VM is stopped")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # vng calls virtme-run from its bin folder
    why = missing(path)
    if why:
        print(f"bench_cgroupd: skipped: {why}")
        return 0
    params = {"only": args.only.split(","), "create": args.create, "tools_create": args.tools_create,
              "spawn_pairs": 50, "rounds": 10, "stats": args.stats, "populated": max(1, args.stats // 10),
              "stats_repeats": 3, "cgget_sample": min(100, args.stats), "cgget_all_repeats": 3,
              "reconcile": args.reconcile, "reconcile_limit_s": 1200.0, "drift_every": 10}
    date, command, load = utc_now(), command_line(), os.getloadavg()[0]
    host_calibration = calibrate()
    progress(f"host calibration: {host_calibration}")
    host_sim = host_simulated(args.stats) if "stats" in params["only"] else {}
    progress(f"host, SimulatedFs in tmpfs, {args.stats} accounts: {host_sim}")
    vm_seconds = run_vm(params, path, args.memory, args.timeout)
    result_path = OUT_DIR / "result.json"
    if not result_path.exists():
        tail = (OUT_DIR / "inner.log").read_text()[-4000:] if (OUT_DIR / "inner.log").exists() else "(none)"
        print(f"bench_cgroupd: the VM wrote no results; its log:\n{tail}")
        return 1
    result: dict[str, Any] = json.loads(result_path.read_text())
    result.update(command=command, date=date, params=params, host_calibration=host_calibration,
                  vm_seconds=vm_seconds, host_load_at_start=load,
                  host_simulated=host_sim)
    markdown = report.section(result)
    json_path, md_path = write_results("cgroupd", result, markdown)
    print("\n" + markdown + "\n")
    progress(f"wrote {json_path} and {md_path}")
    exit_code = (OUT_DIR / "exit-code").read_text().strip() if (OUT_DIR / "exit-code").exists() else "?"
    if exit_code != "0":
        print(f"bench_cgroupd: the benchmark inside the VM exited with {exit_code}; "
              f"see {OUT_DIR / 'inner.log'}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
