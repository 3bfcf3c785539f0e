"""The four flagd measurements; bench_flagd.py runs them and reports.

Each returns plain data (dicts of numbers) so the report and the JSON file are
built from the same values.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from harness import CpuMeter, ServiceProcess, percentile, progress, rss_mb
from loadrun import LoadResult, LoadShape, run_clean_load

from npanel.common.flagclient import FlagClient
from npanel.flagd.v1 import flagd_pb2, flagd_pb2_grpc

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from npanel.flagd.v1.flagd_pb2_grpc import FlagServiceAsyncStub

ROLLOUT_FLAG = "agent_watchdog"  # enabled at 50%, so every evaluation runs the bucketing
DISABLED_FLAG = "cgroups_isolation"  # the migration creates every flag disabled
TOGGLED_FLAG = "graceful_reloads"  # propagation flips this one, leaving the others alone
UNKNOWN_FLAG = "no_such_flag"


def set_flag(address: str, name: str, *, enabled: bool, rollout: int | None = None) -> int:
    """SetFlag through `address`; returns the new revision."""
    with grpc.insecure_channel(address) as channel:
        stub = flagd_pb2_grpc.FlagServiceStub(channel)
        request = flagd_pb2.SetFlagRequest(name=name, enabled=enabled, actor="bench", reason="bench")
        if rollout is not None:
            request.rollout_percent = rollout
        flag = stub.SetFlag(request, timeout=10)
        return flag.revision


# -- 1. Evaluate over gRPC --------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    process: ServiceProcess
    call: str  # "echo" or "evaluate"


def pick_shape(flagd: Target, shapes: Sequence[LoadShape], warmup_s: float, duration_s: float) -> tuple[
        LoadShape, list[LoadResult]]:
    """Try each client shape against flagd; the one with the most calls/s loads it hardest."""
    trials = [run_clean_load(flagd.name, flagd.process.pid, flagd.process.address, flagd.call, shape,
                       warmup_s, duration_s) for shape in shapes]
    best = max(range(len(shapes)), key=lambda i: trials[i].calls_per_s)
    progress(f"hardest-hitting client: {shapes[best].label}")
    return shapes[best], trials


def compare_targets(targets: Sequence[Target], shape: LoadShape, warmup_s: float, duration_s: float,
                    rounds: int) -> list[list[LoadResult]]:
    """Each target once per round, in turn, so slow drift of the shared machine hits all alike."""
    results: list[list[LoadResult]] = [[] for _ in targets]
    for round_no in range(1, rounds + 1):
        progress(f"comparison round {round_no}/{rounds}")
        for i, t in enumerate(targets):
            results[i].append(run_clean_load(t.name, t.process.pid, t.process.address, t.call, shape,
                                       warmup_s, duration_s))
    return results


def each_target(targets: Sequence[Target], shape: LoadShape, warmup_s: float, duration_s: float) -> list[
        LoadResult]:
    """One run per target with `shape` (e.g. fewer calls in flight, to see latency without queueing)."""
    return [run_clean_load(t.name, t.process.pid, t.process.address, t.call, shape, warmup_s, duration_s)
            for t in targets]


# -- 2. FlagClient.is_enabled from its cache ------------------------------------------------


def _time_calls(fn: Callable[[str, str], bool], flag: str, calls: int, accounts: Sequence[str]) -> float:
    """Seconds per call of fn(flag, account) over `calls` calls, loop included."""
    ids = itertools.islice(itertools.cycle(accounts), calls)
    began = time.perf_counter()
    for account in ids:
        fn(flag, account)
    return (time.perf_counter() - began) / calls


def _noop(flag: str, account: str) -> bool:
    return False


async def client_cache(address: str, calls: int, repeats: int) -> dict[str, dict[str, float]]:
    """is_enabled for a 50% rollout, a disabled and an unknown flag, against an empty function."""
    client = FlagClient(address)
    client.start()
    try:
        if not await client.wait_ready(10):
            raise RuntimeError(f"FlagClient got no snapshot from flagd at {address} within 10 s")
        accounts = [f"acct{i}" for i in range(1000)]
        cases: list[tuple[str, Callable[[str, str], bool], str]] = [
            ("rollout 50% (bucketing)", client.is_enabled, ROLLOUT_FLAG),
            ("disabled", client.is_enabled, DISABLED_FLAG),
            ("unknown flag", client.is_enabled, UNKNOWN_FLAG),
            ("empty function (loop floor)", _noop, ROLLOUT_FLAG)]
        out = {}
        for label, fn, flag in cases:
            runs = [_time_calls(fn, flag, calls, accounts) * 1e6 for _ in range(repeats)]
            out[label] = {"median_us": statistics.median(runs), "best_us": min(runs), "calls": calls,
                          "repeats": repeats}
            progress(f"is_enabled {label}: median {out[label]['median_us']:.3f} µs/call")
        return out
    finally:
        await client.close()


# -- 3. Toggle propagation A -> PostgreSQL -> B -> watcher -----------------------------------------


async def _toggle_once(stub: FlagServiceAsyncStub, client: FlagClient, enabled: bool) -> tuple[float, float]:
    """(SetFlag round trip, response-to-arrival at B) in seconds; arrival is inf on timeout."""
    request = flagd_pb2.SetFlagRequest(name=TOGGLED_FLAG, enabled=enabled, actor="bench", reason="bench")
    began = time.perf_counter()
    flag = await stub.SetFlag(request, timeout=10)
    answered = time.perf_counter()
    if not await client.wait_for_revision(flag.revision, 2.0):
        return answered - began, float("inf")
    seen = client.get(TOGGLED_FLAG)
    if seen is None or seen.enabled != enabled:
        raise RuntimeError(f"replica B reports {TOGGLED_FLAG}={seen} at revision {flag.revision}, "
                           f"expected enabled={enabled}")
    return answered - began, time.perf_counter() - answered


async def propagation(a: str, b: str, toggles: int) -> dict[str, Any]:
    client = FlagClient(b)
    client.start()
    try:
        if not await client.wait_ready(10):
            raise RuntimeError(f"FlagClient got no snapshot from replica B at {b} within 10 s")
        async with grpc.aio.insecure_channel(a) as channel:
            stub: FlagServiceAsyncStub = flagd_pb2_grpc.FlagServiceStub(channel)
            writes, delays = [], []
            for i in range(toggles):
                write, delay = await _toggle_once(stub, client, enabled=i % 2 == 0)
                writes.append(write)
                delays.append(delay)
                if (i + 1) % 50 == 0:
                    progress(f"toggles {i + 1}/{toggles}, last propagation {delay * 1000:.1f} ms")
    finally:
        await client.close()
    return _propagation_summary(writes, delays)


def _propagation_summary(writes: list[float], delays: list[float]) -> dict[str, Any]:
    arrived = sorted(d * 1000 for d in delays if d != float("inf"))
    w = sorted(x * 1000 for x in writes)
    # From the moment SetFlag was sent: what an operator waits for until every replica answers anew.
    total = sorted((x + d) * 1000 for x, d in zip(writes, delays, strict=True) if d != float("inf"))
    return {"sent_to_seen_p50_ms": percentile(total, 50), "sent_to_seen_p99_ms": percentile(total, 99),
            "toggles": len(delays), "lost": len(delays) - len(arrived),
            "p50_ms": percentile(arrived, 50), "p99_ms": percentile(arrived, 99),
            "max_ms": arrived[-1] if arrived else float("nan"),
            "setflag_p50_ms": percentile(w, 50), "setflag_p99_ms": percentile(w, 99),
            "before_response": sum(1 for d in arrived if d < 0.05)}


# -- 4. Idle ---------------------------------------------------------------------------------------


async def idle(processes: Sequence[ServiceProcess], flagd_address: str, seconds: float) -> dict[str, Any]:
    """RSS and CPU of each process over `seconds` with no traffic; one FlagClient follows flagd."""
    client = FlagClient(flagd_address)
    client.start()
    try:
        if not await client.wait_ready(10):
            raise RuntimeError(f"FlagClient got no snapshot from flagd at {flagd_address} within 10 s")
        meters = [CpuMeter(p.pid) for p in processes]
        for meter in meters:
            meter.start()
        began = time.monotonic()
        while (left := seconds - (time.monotonic() - began)) > 0:
            await asyncio.sleep(min(10.0, left))
            now = ", ".join(f"{p.name} {m.percent():.2f}% {rss_mb(p.pid):.1f} MB"
                            for p, m in zip(processes, meters, strict=True))
            progress(f"idle {time.monotonic() - began:4.0f}/{seconds:g} s: {now}")
        return {p.name: {"cpu_pct": m.percent(), "rss_mb": rss_mb(p.pid),
                         "peak_rss_mb": rss_mb(p.pid, "VmHWM"), "seconds": seconds}
                for p, m in zip(processes, meters, strict=True)}
    finally:
        await client.close()
