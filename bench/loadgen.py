"""A closed-loop gRPC load generator, run as its own process by the benchmarks.

It keeps `--in-flight` unary calls outstanding until a shared wall-clock end;
only calls started inside [start_at, start_at + duration) are counted, so
several of these processes started a little apart still measure the same
window. Everything before start_at is warm-up. It prints one JSON object:
calls, errors, latencies (µs), and its own CPU seconds inside the window.

Two client styles, because on 2 cores the client's cost decides how hard the
server can be pushed:
- aio: grpc.aio, one asyncio task per call in flight, over `--channels` channels;
- future: the synchronous stub's `.future()` with done-callbacks that re-issue,
  so no Python coroutine or event loop runs per call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from npanel.flagd.v1 import flagd_pb2, flagd_pb2_grpc
from npanel.testing.v1 import testing_pb2, testing_pb2_grpc

CALL_TIMEOUT_S = 5.0
ACCOUNTS = 1000  # distinct account ids, so the server's bucketing sees varied input


def requests_for(call: str) -> list[Any]:
    if call == "evaluate":
        return [flagd_pb2.EvaluateRequest(flag="agent_watchdog",
                                          context=flagd_pb2.EvaluationContext(account_id=f"acct{i}"))
                for i in range(ACCOUNTS)]
    return [testing_pb2.EchoRequest(message=f"agent_watchdog/acct{i}") for i in range(ACCOUNTS)]


def method_of(call: str, channel: Any) -> Any:
    """The unary multicallable for `call` on an aio or a sync channel."""
    if call == "evaluate":
        return flagd_pb2_grpc.FlagServiceStub(channel).Evaluate
    return testing_pb2_grpc.EchoServiceStub(channel).Echo


@dataclass
class Window:
    """The measured interval, on this process's monotonic clock."""

    start: float
    end: float

    @classmethod
    def from_wall(cls, start_at: float, duration_s: float) -> Window:
        start = time.monotonic() + (start_at - time.time())
        return cls(start, start + duration_s)


@dataclass
class Tally:
    latencies_us: list[int] = field(default_factory=list)
    errors: int = 0
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, started: float, finished: float, ok: bool, window: Window) -> None:
        if started < window.start:
            return
        if ok:
            self.latencies_us.append(int((finished - started) * 1e6))
        else:
            self.errors += 1


def cpu_now() -> float:
    usage = os.times()
    return usage.user + usage.system


async def _cpu_marks(window: Window, tally: Tally) -> None:
    await asyncio.sleep(max(0.0, window.start - time.monotonic()))
    tally.cpu_start = cpu_now()
    await asyncio.sleep(max(0.0, window.end - time.monotonic()))
    tally.cpu_end = cpu_now()


async def _aio_worker(method: Any, requests: Sequence[Any], offset: int, window: Window,
                      tally: Tally) -> None:
    i = offset
    while (started := time.monotonic()) < window.end:
        try:
            await method(requests[i % len(requests)], timeout=CALL_TIMEOUT_S)
            ok = True
        except grpc.aio.AioRpcError:
            ok = False
        tally.record(started, time.monotonic(), ok, window)
        i += 1


async def run_aio(target: str, call: str, in_flight: int, channels: int, window: Window) -> Tally:
    tally = Tally()
    requests = requests_for(call)
    opened = [grpc.aio.insecure_channel(target) for _ in range(channels)]
    try:
        methods = [method_of(call, c) for c in opened]
        workers = [_aio_worker(methods[n % channels], requests, n * 97, window, tally)
                   for n in range(in_flight)]
        await asyncio.gather(_cpu_marks(window, tally), *workers)
    finally:
        for channel in opened:
            await channel.close(None)
    return tally


class _FutureSlot:
    """One call in flight; its done-callback records it and issues the next."""

    def __init__(self, method: Any, requests: Sequence[Any], offset: int, window: Window, tally: Tally,
                 finished: Callable[[], None]) -> None:
        self._method, self._requests, self._i = method, requests, offset
        self._window, self._tally, self._finished = window, tally, finished
        self._started = 0.0

    def issue(self) -> None:
        self._started = time.monotonic()
        if self._started >= self._window.end:
            self._finished()
            return
        self._i += 1
        future = self._method.future(self._requests[self._i % len(self._requests)], timeout=CALL_TIMEOUT_S)
        future.add_done_callback(self._done)

    def _done(self, future: grpc.Future[Any]) -> None:
        ok = future.exception() is None
        with self._tally.lock:
            self._tally.record(self._started, time.monotonic(), ok, self._window)
        self.issue()


def run_future(target: str, call: str, in_flight: int, channels: int, window: Window) -> Tally:
    tally = Tally()
    requests = requests_for(call)
    remaining = threading.Semaphore(0)
    opened = [grpc.insecure_channel(target) for _ in range(channels)]
    try:
        methods = [method_of(call, c) for c in opened]
        for n in range(in_flight):
            _FutureSlot(methods[n % channels], requests, n * 97, window, tally, remaining.release).issue()
        time.sleep(max(0.0, window.start - time.monotonic()))
        tally.cpu_start = cpu_now()
        time.sleep(max(0.0, window.end - time.monotonic()))
        tally.cpu_end = cpu_now()
        for _ in range(in_flight):  # bounded: every call has a CALL_TIMEOUT_S deadline
            remaining.acquire(timeout=CALL_TIMEOUT_S + 1)
    finally:
        for channel in opened:
            channel.close()
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--call", choices=("echo", "evaluate"), required=True)
    parser.add_argument("--mode", choices=("aio", "future"), default="aio")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--start-at", type=float, required=True, help="wall-clock (time.time) window start")
    parser.add_argument("--duration", type=float, required=True)
    args = parser.parse_args()
    window = Window.from_wall(args.start_at, args.duration)
    if args.mode == "aio":
        tally = asyncio.run(run_aio(args.target, args.call, args.in_flight, args.channels, window))
    else:
        tally = run_future(args.target, args.call, args.in_flight, args.channels, window)
    print(json.dumps({"latencies_us": tally.latencies_us, "errors": tally.errors,
                      "cpu_s": tally.cpu_end - tally.cpu_start}))


if __name__ == "__main__":
    main()
