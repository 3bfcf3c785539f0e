"""gateway benchmarks: flagd Evaluate through the gateway (HTTP/JSON, gRPC) beside flagd direct,
the policy's per-request cost on a feature-gated route, and the idle gateway.

Run: .venv/bin/python bench/bench_gateway.py   (about 5 minutes; `--help` for parts and durations).
Needs `wrk` (Debian package wrk) for the HTTP load: a C client costs the shared 2 cores far less
than a Python one. Everything runs on 127.0.0.1 against a throwaway PostgreSQL; numbers go to
bench/results/gateway.json and gateway.md (the section pasted into docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import flagd_cases as cases
import loadgen
import loadrun
from bench_flagd import machine
from harness import (
    LOOPBACK,
    PYTHON,
    REPO,
    RESULTS_DIR,
    CpuMeter,
    ServiceProcess,
    command_line,
    free_port,
    host_busy_seconds,
    markdown_table,
    met,
    npanel_service,
    postgres,
    progress,
    ratio,
    rss_mb,
    service_process,
    utc_now,
    write_results,
)
from loadrun import LoadShape, run_load
from profiling import finish_py_spy, py_spy, start_py_spy, summarize_collapsed
from prometheus_client import CollectorRegistry

from npanel.common.flagclient import FlagClient
from npanel.gateway.exposed import exposed_files
from npanel.gateway.policy import FlagLookup, Policy
from npanel.gateway.ratelimit import RateLimiter
from npanel.gateway.routes import Route, build_routes
from npanel.gateway.store import TokenCache, TokenStore
from npanel.gateway.tokens import Token

PARTS = ("load", "policy", "idle")
HTTP_CALLS_PER_S = 2000  # issue 6: HTTP Evaluate through the gateway, 64 in flight
HTTP_P99_MS = 20.0
# flagd §1's hardest-hitting client on this machine: sync stub .future(), 1 process, 1 channel.
SHAPE = LoadShape("future", processes=1, in_flight=64, channels=1)
MAX_OTHERS_PCT = 25.0  # as loadrun.run_clean_load: a more disturbed window is measured again
EVALUATE = "/npanel.flagd.v1.FlagService/Evaluate"
GATED = "/npanel.cgroupd.v1.CgroupService/CreateAccount"  # feature_flag cgroups_isolation
GATE_FLAG = "cgroups_isolation"
EVALUATE_PATH = "/v1/flags/agent_watchdog:evaluate"
AUTH_ENV = "NPANEL_BENCH_AUTHORIZATION"
DIRECT, VIA_GRPC, VIA_HTTP = "(a) flagd direct, gRPC", "(b) gateway, gRPC", "(c) gateway, HTTP/JSON"
# One request per account id (as loadgen's 1,000), prepared once per wrk thread; done() prints JSON.
WRK_LUA = """
local auth = os.getenv("@ENV@")
local reqs, n = {}, 0
init = function(args)
  for i = 0, 999 do
    reqs[i + 1] = wrk.format("POST", "@PATH@",
      {["Authorization"] = auth, ["Content-Type"] = "application/json"},
      '{"context": {"accountId": "acct' .. i .. '"}}')
  end
end
request = function()
  n = n % 1000 + 1
  return reqs[n]
end
done = function(s, latency, requests)
  local e = s.errors
  io.write(string.format('{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %.1f, ' ..
    '"p99_us": %.1f, "max_us": %.1f}\\n', s.requests, s.duration,
    e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50), latency:percentile(99),
    latency.max))
end
""".replace("@ENV@", AUTH_ENV).replace("@PATH@", EVALUATE_PATH)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="gateway benchmarks (see docs/BENCHMARKS.md)")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measured window")
    p.add_argument("--duration", type=int, default=10, help="measured seconds per load window")
    p.add_argument("--rounds", type=int, default=3, help="interleaved passes over the three targets")
    p.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                   help="py-spy the gateway under HTTP load: auto = only when the HTTP target is missed")
    p.add_argument("--policy-calls", type=int, default=100_000, help="Policy.admit calls per repeat")
    p.add_argument("--idle", type=float, default=60.0, help="seconds of idle measurement")
    args = p.parse_args(argv)
    args.parts = [x for x in args.only.split(",") if x]
    if unknown := set(args.parts) - set(PARTS):
        p.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    return args


# -- the gRPC client: bench/loadgen.py plus a bearer token ---------------------------------------


class _Authorized:
    """loadgen's unary multicallable, sending `authorization` on every call (sync .future() or aio)."""

    def __init__(self, method: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._method, self._metadata = method, metadata

    def __call__(self, request: Any, timeout: float) -> Any:
        return self._method(request, timeout=timeout, metadata=self._metadata)

    def future(self, request: Any, timeout: float) -> Any:
        return self._method.future(request, timeout=timeout, metadata=self._metadata)


def loadgen_child() -> None:
    """`bench_gateway.py --loadgen-child <loadgen args>`: loadgen.py, its calls carrying the token."""
    plain, metadata = loadgen.method_of, (("authorization", os.environ[AUTH_ENV]),)
    loadgen.method_of = lambda call, channel: _Authorized(plain(call, channel), metadata)
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    loadgen.main()


def _spawn_authorized(address: str, call: str, shape: LoadShape, start_at: float, duration_s: float
                      ) -> list[subprocess.Popen[str]]:
    # loadrun._spawn's argv, with this file's child mode in place of loadgen.py (no metadata option).
    argv = [PYTHON, str(Path(__file__).resolve()), "--loadgen-child", "--target", address, "--call", call,
            "--mode", shape.mode, "--in-flight", str(shape.in_flight // shape.processes),
            "--channels", str(shape.channels), "--start-at", f"{start_at:.6f}", "--duration", str(duration_s)]
    return [subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
            for _ in range(shape.processes)]


# -- load windows ----------------------------------------------------------------------------------


def _row(target: str, calls: int, seconds: float, errors: int, p50_us: float, p99_us: float, max_us: float,
         cpu: dict[str, float]) -> dict[str, Any]:
    return {"target": target, "calls_per_s": calls / seconds, "calls": calls, "errors": errors,
            "p50_ms": p50_us / 1000, "p99_ms": p99_us / 1000, "max_ms": max_us / 1000, **cpu}


def grpc_window(name: str, server: ServiceProcess, other: ServiceProcess, args: argparse.Namespace
                ) -> dict[str, Any]:
    """run_load on `server` (gateway or flagd); the other process's CPU is read over the same window."""
    meter = CpuMeter(other.pid)
    other_pct: list[float] = []
    timer = threading.Timer(args.duration, lambda: other_pct.append(meter.percent()))

    def at_start() -> None:
        meter.start()
        timer.start()

    with mock.patch.object(loadrun, "_spawn", _spawn_authorized):
        r = run_load(name, server.pid, server.address, "evaluate", SHAPE, args.warmup, args.duration,
                     at_start=at_start)
    timer.join()
    pct = {server.name: r.server_cpu_pct, other.name: other_pct[0]}
    cpu = {"gateway_cpu_pct": pct["gateway"], "flagd_cpu_pct": pct["flagd"],
           "client_cpu_pct": r.client_cpu_pct, "others_cpu_pct": max(0.0, r.others_cpu_pct - other_pct[0])}
    progress(f"  ({other.name} {other_pct[0]:.0f}% over the same window; others without it "
             f"{cpu['others_cpu_pct']:.0f}%)")
    return _row(name, r.calls, r.duration_s, r.errors, r.p50_ms * 1000, r.p99_ms * 1000, r.max_ms * 1000,
                cpu)


def _wrk(url: str, lua: Path, seconds: int, in_flight: int) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{in_flight}", f"-d{seconds}s", "--timeout", f"{loadgen.CALL_TIMEOUT_S:g}s",
            "-s", str(lua), url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk exited with {done.returncode}:\n{done.stdout}\n{done.stderr}")
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def http_window(gw: Gateway, flagd: ServiceProcess, lua: Path, args: argparse.Namespace,
                at_start: Callable[[], None] | None = None) -> dict[str, Any]:
    """wrk (1 thread, 64 connections): a warm-up run, then the measured run with /proc meters around it."""
    url, gateway = gw.http_url, gw.process
    progress(f"{VIA_HTTP} <- wrk -t1 -c{SHAPE.in_flight}: {args.warmup:g} s warm-up, "
             f"{args.duration} s measured")
    _wrk(url, lua, max(1, round(args.warmup)), SHAPE.in_flight)
    meters = {p.name: CpuMeter(p.pid) for p in (gateway, flagd)}
    for m in meters.values():
        m.start()
    host0, client0, wall0 = host_busy_seconds(), _children_cpu(), time.monotonic()
    if at_start is not None:
        at_start()
    out = _wrk(url, lua, args.duration, SHAPE.in_flight)
    wall = time.monotonic() - wall0
    pct = {name: m.percent() for name, m in meters.items()}
    client = 100 * (_children_cpu() - client0) / wall
    host = 100 * (host_busy_seconds() - host0) / wall
    cpu = {"gateway_cpu_pct": pct["gateway"], "flagd_cpu_pct": pct["flagd"], "client_cpu_pct": client,
           "others_cpu_pct": max(0.0, host - client - sum(pct.values()))}
    row = _row(VIA_HTTP, out["requests"], out["duration_us"] / 1e6, out["errors"], out["p50_us"],
               out["p99_us"], out["max_us"], cpu)
    progress(f"  {row['calls_per_s']:,.0f} req/s, p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, "
             f"errors {row['errors']}, CPU: gateway {pct['gateway']:.0f}%, flagd {pct['flagd']:.0f}%, "
             f"wrk {client:.0f}%, others {cpu['others_cpu_pct']:.0f}%")
    return row


def least_disturbed(run: Callable[[], dict[str, Any]], tries: int = 3) -> dict[str, Any]:
    runs = [run()]
    while runs[-1]["others_cpu_pct"] > MAX_OTHERS_PCT and len(runs) < tries:
        progress(f"  other programs used {runs[-1]['others_cpu_pct']:.0f}% CPU; measuring again")
        runs.append(run())
    return min(runs, key=lambda r: float(r["others_cpu_pct"]))


def compare(gw: Gateway, flagd: ServiceProcess, lua: Path, args: argparse.Namespace
            ) -> dict[str, list[dict[str, Any]]]:
    """Each target once per round, in turn, so slow drift of the shared machine hits all alike."""
    runs: dict[str, list[dict[str, Any]]] = {DIRECT: [], VIA_GRPC: [], VIA_HTTP: []}
    for n in range(1, args.rounds + 1):
        progress(f"round {n}/{args.rounds}")
        runs[DIRECT].append(least_disturbed(lambda: grpc_window(DIRECT, flagd, gw.process, args)))
        runs[VIA_GRPC].append(least_disturbed(lambda: grpc_window(VIA_GRPC, gw.process, flagd, args)))
        runs[VIA_HTTP].append(least_disturbed(lambda: http_window(gw, flagd, lua, args)))
    return runs


def profile_gateway(gw: Gateway, flagd: ServiceProcess, lua: Path, args: argparse.Namespace
                    ) -> dict[str, Any] | None:
    """py-spy (GIL holder, 200 Hz) of the gateway under HTTP load: collapsed stacks, then a flame graph."""
    binary = py_spy()
    if binary is None:
        progress("py-spy not installed (.venv/bin/pip install py-spy==0.4.3); skipping the profile")
        return None
    summary: dict[str, Any] = {}
    for fmt, name in (("raw", "gateway-http.collapsed"), ("flamegraph", "gateway-http.svg")):
        out = RESULTS_DIR / name
        spies: list[subprocess.Popen[bytes]] = []
        progress(f"profiling the gateway (pid {gw.process.pid}) under HTTP load -> {out}")

        def spy(out: Path = out, fmt: str = fmt, spies: list[subprocess.Popen[bytes]] = spies) -> None:
            spies.append(start_py_spy(binary, gw.process.pid, args.duration, out, fmt))

        try:
            load = http_window(gw, flagd, lua, args, at_start=spy)
        finally:
            for proc in spies:
                finish_py_spy(proc, limit_s=60)
        summary[fmt] = {"file": str(out.relative_to(REPO)), "load": load}
    total, spots = summarize_collapsed(RESULTS_DIR / "gateway-http.collapsed")
    summary["samples"], summary["hotspots"] = total, [vars(s) for s in spots]
    return summary


# -- processes -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gateway:
    process: ServiceProcess  # its gRPC port is process.address
    http_url: str


@contextmanager
def gateway_process(url: str, flagd: ServiceProcess, label: str = "gateway") -> Iterator[Gateway]:
    grpc_port, http_port = free_port(), free_port()
    env = {"NPANEL_DATABASE_URL": url, "NPANEL_GATEWAY_LISTEN": f"{LOOPBACK}:{grpc_port}",
           "NPANEL_GATEWAY_HTTP_LISTEN": f"{LOOPBACK}:{http_port}",
           "NPANEL_GATEWAY_METRICS_LISTEN": f"{LOOPBACK}:0", "NPANEL_FLAGD_ADDRESS": flagd.address,
           # Far above the load, so every request passes the limiters (their cost is still paid).
           "NPANEL_GATEWAY_RATE_LIMIT_IP": "10000000", "NPANEL_GATEWAY_RATE_LIMIT_TOKEN": "10000000",
           "NPANEL_LOG_LEVEL": "warning", "NPANEL_SHUTDOWN_GRACE": "2"}
    argv = [PYTHON, "-m", "npanel.cli", "serve", "gateway"]
    with service_process(label, argv, f"{LOOPBACK}:{grpc_port}", env) as gateway:
        yield Gateway(gateway, f"http://{LOOPBACK}:{http_port}")


def bootstrap_token(url: str) -> str:
    argv = [PYTHON, "-m", "npanel.cli", "tokens", "--json", "create", "--bootstrap", "--name", "bench",
            "--role", "admin"]
    done = subprocess.run(argv, cwd=REPO, env={**os.environ, "NPANEL_DATABASE_URL": url},
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`npanel tokens create --bootstrap` exited with {done.returncode}: {done.stderr}")
    secret: str = json.loads(done.stdout)["secret"]
    return secret


# -- Policy.admit, in process ----------------------------------------------------------------------


class _MemoryTokens(TokenStore):
    """The store behind TokenCache, answering from memory: only the cache's own cost is measured."""

    def __init__(self, token: Token) -> None:  # no pool: the two methods the cache calls are replaced
        self._token = token

    async def lookup(self, secret: str) -> Token | None:
        return self._token

    async def touch(self, name: str) -> None:
        return None


class _SetFlags:
    def __init__(self, enabled: set[str]) -> None:
        self._enabled = enabled

    def is_enabled(self, flag: str, account_id: str | None = None) -> bool:
        return flag in self._enabled


async def _us_per_call(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    began = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - began) / calls * 1e6


async def _nothing() -> None:
    return None


async def policy_cases(flagd_address: str, calls: int, repeats: int = 5) -> dict[str, dict[str, float]]:
    """µs per Policy.admit on the Evaluate route (no flag) and a gated route, cache and limiters warm."""
    routes: dict[str, Route] = build_routes(exposed_files())
    token = Token("bench", "admin", "npn_bench0", datetime.now(UTC), "bench", None, None, None)
    client = FlagClient(flagd_address)
    client.start()
    try:
        if not await client.wait_ready(10):
            raise RuntimeError(f"FlagClient got no snapshot from flagd at {flagd_address} within 10 s")

        def policy(flags: FlagLookup) -> Policy:
            return Policy(TokenCache(_MemoryTokens(token)), flags, RateLimiter(10**7), RateLimiter(10**7),
                          CollectorRegistry())

        memory, real = policy(_SetFlags({GATE_FLAG})), policy(client)
        auth, ip, account = "Bearer npn_bench-secret", LOOPBACK, "acct17"
        cases_: dict[str, Callable[[], Awaitable[object]]] = {
            "ungated route (flagd Evaluate)": lambda: memory.admit(routes[EVALUATE], auth, ip, account),
            "gated route, in-memory FlagLookup": lambda: memory.admit(routes[GATED], auth, ip, account),
            "gated route, real FlagClient": lambda: real.admit(routes[GATED], auth, ip, account),
            "empty coroutine (loop floor)": _nothing}
        out = {}
        for label, fn in cases_.items():
            await fn()  # warms the token cache (and fails loudly if the route would refuse)
            runs = [await _us_per_call(fn, calls) for _ in range(repeats)]
            out[label] = {"median_us": statistics.median(runs), "best_us": min(runs), "calls": calls,
                          "repeats": repeats}
            progress(f"Policy.admit {label}: median {out[label]['median_us']:.2f} µs/call")
        return out
    finally:
        await client.close()


# -- idle ------------------------------------------------------------------------------------------


def idle(processes: Sequence[ServiceProcess], seconds: float) -> dict[str, dict[str, float]]:
    meters = [CpuMeter(p.pid) for p in processes]
    for m in meters:
        m.start()
    began = time.monotonic()
    while (left := seconds - (time.monotonic() - began)) > 0:
        time.sleep(min(10.0, left))
        now = ", ".join(f"{p.name} {m.percent():.2f}% {rss_mb(p.pid):.1f} MB"
                        for p, m in zip(processes, meters, strict=True))
        progress(f"idle {time.monotonic() - began:4.0f}/{seconds:g} s: {now}")
    return {p.name: {"cpu_pct": m.percent(), "rss_mb": rss_mb(p.pid), "peak_rss_mb": rss_mb(p.pid, "VmHWM"),
                     "seconds": seconds} for p, m in zip(processes, meters, strict=True)}


# -- report ----------------------------------------------------------------------------------------


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    keys = ("calls_per_s", "p50_ms", "p99_ms", "errors", "gateway_cpu_pct", "flagd_cpu_pct", "client_cpu_pct",
            "others_cpu_pct")
    return {name: {**{k: statistics.median(r[k] for r in rs) for k in keys},
                   "min": min(r["calls_per_s"] for r in rs), "max": max(r["calls_per_s"] for r in rs)}
            for name, rs in runs.items()}


def load_section(results: dict[str, Any]) -> str:
    load = results["load"]
    s = summarize(load["runs"])
    a, b, c = s[DIRECT], s[VIA_GRPC], s[VIA_HTTP]
    rows = [[name, v["calls_per_s"], f"{v['min']:,.0f}-{v['max']:,.0f}", v["p50_ms"], v["p99_ms"],
             v["errors"], v["gateway_cpu_pct"], v["flagd_cpu_pct"], v["client_cpu_pct"], v["others_cpu_pct"],
             ratio(v["calls_per_s"], a["calls_per_s"]), ratio(v["p99_ms"], a["p99_ms"])]
            for name, v in s.items()]
    ok = c["calls_per_s"] >= HTTP_CALLS_PER_S and c["p99_ms"] < HTTP_P99_MS
    text = (f"### 1. Evaluate through the gateway\n\n{_stamp(results)}\n\n"
            f"64 calls in flight, closed loop, medians of {len(load['runs'][DIRECT])} interleaved rounds "
            "(range = lowest-highest calls/s):\n\n"
            + markdown_table(["target", "calls/s", "range", "p50 ms", "p99 ms", "errors", "gateway CPU %",
                              "flagd CPU %", "client CPU %", "others CPU %", "calls/s ÷ (a)", "p99 ÷ (a)"],
                             rows)
            + f"\n\nRatios: (c)/(a) {ratio(c['calls_per_s'], a['calls_per_s']):.2f}x calls/s, "
            f"{ratio(c['p99_ms'], a['p99_ms']):.2f}x p99; (b)/(a) "
            f"{ratio(b['calls_per_s'], a['calls_per_s']):.2f}x calls/s, "
            f"{ratio(b['p99_ms'], a['p99_ms']):.2f}x p99.\n\n"
            f"Target HTTP >= {HTTP_CALLS_PER_S:,} req/s with p99 < {HTTP_P99_MS:g} ms: **{met(ok)}** "
            f"({c['calls_per_s']:,.0f} req/s, p99 {c['p99_ms']:.2f} ms).")
    if load.get("profile"):
        text += "\n\n" + profile_tables(load["profile"])
    return text


def profile_tables(profile: dict[str, Any]) -> str:
    spots = profile["hotspots"]
    by_self = sorted(spots, key=lambda h: -h["self_pct"])[:15]
    by_total = [h for h in sorted(spots, key=lambda h: -h["total_pct"]) if h["total_pct"] < 95][:25]
    return (f"py-spy of the gateway under the HTTP load ({profile['raw']['load']['calls_per_s']:,.0f} req/s "
            f"while sampled), {profile['samples']:,} samples; flame graph `{profile['flamegraph']['file']}`, "
            f"stacks `{profile['raw']['file']}`.\n\n"
            + markdown_table(["function (by self time)", "self %", "inclusive %"],
                             [[h["function"], h["self_pct"], h["total_pct"]] for h in by_self]) + "\n\n"
            + markdown_table(["function (by inclusive time)", "inclusive %", "self %"],
                             [[h["function"], h["total_pct"], h["self_pct"]] for h in by_total]))


def policy_section(results: dict[str, Any]) -> str:
    p = results["policy"]
    floor = p["empty coroutine (loop floor)"]["median_us"]
    rows = [[k, v["median_us"], v["best_us"], v["median_us"] - floor] for k, v in p.items()]
    gate = p["gated route, real FlagClient"]["median_us"] - p["ungated route (flagd Evaluate)"]["median_us"]
    return (f"### 2. Gated-route overhead: Policy.admit in process\n\n{_stamp(results)}\n\n"
            + markdown_table(["case", "median µs/call", "best µs/call", "minus floor µs"], rows)
            + f"\n\nThe feature-flag check adds {gate:.2f} µs per request "
            "(real FlagClient, gated - ungated).")


def idle_section(results: dict[str, Any]) -> str:
    i = results["idle"]
    g = i["gateway-idle"]
    rows = [[k, v["rss_mb"], v["peak_rss_mb"], v["cpu_pct"], ratio(g["rss_mb"], v["rss_mb"])]
            for k, v in i.items()]
    return (f"### 3. Idle gateway\n\n{_stamp(results)}\n\n{g['seconds']:g} s, no traffic:\n\n"
            + markdown_table(["process", "RSS MB", "peak RSS MB", "CPU % of a core", "gateway RSS ÷ this"],
                             rows))


def _stamp(results: dict[str, Any]) -> str:
    return f"Command: `{results['command']}`  \nDate: {results['date']}"


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    head = (f"## gateway\n\nMachine: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, grpcio "
            f"{m['grpcio']}, kernel {m['kernel']}, load average at start "
            f"{', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}.")
    parts = {"load": load_section, "policy": policy_section, "idle": idle_section}
    return "\n\n".join([head, *(fn(results) for key, fn in parts.items() if key in results)])


# -- main ------------------------------------------------------------------------------------------


def run_parts(url: str, args: argparse.Namespace, results: dict[str, Any]) -> None:
    secret = bootstrap_token(url)
    os.environ[AUTH_ENV] = f"Bearer {secret}"  # for wrk's script and the loadgen children
    if set(args.parts) & {"load", "policy"}:
        with npanel_service("flagd", url) as flagd:
            cases.set_flag(flagd.address, cases.ROLLOUT_FLAG, enabled=True, rollout=50)  # as flagd §1
            cases.set_flag(flagd.address, GATE_FLAG, enabled=True, rollout=100)
            with gateway_process(url, flagd) as gateway:
                if "load" in args.parts:
                    lua = RESULTS_DIR / "gateway-wrk.lua"
                    lua.write_text(WRK_LUA)
                    load: dict[str, Any] = {"runs": compare(gateway, flagd, lua, args)}
                    http = summarize(load["runs"])[VIA_HTTP]
                    missed = http["calls_per_s"] < HTTP_CALLS_PER_S or http["p99_ms"] >= HTTP_P99_MS
                    if args.profile == "always" or (args.profile == "auto" and missed):
                        load["profile"] = profile_gateway(gateway, flagd, lua, args)
                    results["load"] = load
            if "policy" in args.parts:
                results["policy"] = asyncio.run(policy_cases(flagd.address, args.policy_calls))
    if "idle" in args.parts:
        # Fresh processes: after the load their heaps would overstate idle memory.
        with npanel_service("flagd", url, label="flagd-idle") as flagd, \
                gateway_process(url, flagd, label="gateway-idle") as gateway:
            progress(f"idle: measuring {args.idle:g} s")
            results["idle"] = idle([gateway.process, flagd], args.idle)


def main() -> int:
    args = parse_args()
    if "load" in args.parts and shutil.which("wrk") is None:
        print("wrk not found: `apt-get install -y wrk`, or run with --only policy,idle", file=sys.stderr)
        return 2
    results: dict[str, Any] = {"date": utc_now(), "command": command_line(), "machine": machine()}
    progress(f"gateway benchmarks ({', '.join(args.parts)}) on {results['machine']['cpus']} CPUs")
    with postgres() as url:
        run_parts(url, args, results)
    markdown = render(results)
    json_path, md_path = write_results("gateway", results, markdown)
    print("\n" + markdown + "\n", flush=True)
    progress(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--loadgen-child"]:
        loadgen_child()
    else:
        sys.exit(main())
