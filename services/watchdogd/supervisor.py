"""All targets at once: one Runner task per target, operator actions, incident streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from .checks import make_probe
from .drivers import make_driver
from .engine import Runner
from .metrics import WatchdogMetrics
from .model import Incident, SavedState, Target, target_not_found
from .store import WatchdogStore

log = logging.getLogger(__name__)
SUBSCRIBER_QUEUE = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class TargetStatus:
    target: Target
    state: str
    restarts_in_window: int
    last_failure: str
    pid: int


class Broadcast:
    """Incidents to every WatchIncidents stream; a subscriber that falls behind is dropped."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Incident | None]] = set()

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Incident | None]]:
        queue: asyncio.Queue[Incident | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def publish(self, incident: Incident) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(incident)
            except asyncio.QueueFull:
                self._queues.discard(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)  # tells the stream it lagged


class RecordingSink:
    """The store, plus an announcement of every incident written."""

    def __init__(self, store: WatchdogStore, broadcast: Broadcast) -> None:
        self._store = store
        self._broadcast = broadcast

    def _announce(self, incident: Incident) -> Incident:
        self._broadcast.publish(incident)
        return incident

    async def open_incident(self, target: str, detected_at: datetime, failure_type: str, evidence: str,
                            last_log_lines: list[str]) -> Incident:
        return self._announce(await self._store.open_incident(
            target, detected_at, failure_type, evidence, last_log_lines))

    async def update_incident(self, incident_id: int, restart_count: int, gave_up: bool) -> Incident:
        return self._announce(await self._store.update_incident(incident_id, restart_count, gave_up))

    async def resolve_incident(self, incident_id: int, recovered_at: datetime, recovery_seconds: float,
                               restart_count: int) -> Incident:
        return self._announce(await self._store.resolve_incident(
            incident_id, recovered_at, recovery_seconds, restart_count))

    async def open_incident_of(self, target: str) -> Incident | None:
        return await self._store.open_incident_of(target)

    async def load_state(self, target: str) -> SavedState | None:
        return await self._store.load_state(target)

    async def save_state(self, target: str, state: SavedState) -> None:
        await self._store.save_state(target, state)


class Supervisor:
    def __init__(self, store: WatchdogStore, metrics: WatchdogMetrics, restarts_enabled: Callable[[], bool],
                 *, systemctl: str = "systemctl", docker_socket: str = "/var/run/docker.sock") -> None:
        self.broadcast = Broadcast()
        self._sink = RecordingSink(store, self.broadcast)
        self._metrics = metrics
        self._restarts_enabled = restarts_enabled
        self._systemctl = systemctl
        self._docker_socket = docker_socket
        self._runners: dict[str, tuple[Runner, asyncio.Task[None]]] = {}
        self._changes = asyncio.Lock()

    async def change(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run a stored change and its application to the running supervisor as one step.

        Changes are serialised (a remove cannot slip between a put's store write
        and its runner, nor two puts of one name run at once), and shielded: a
        caller that goes away (an RPC deadline) does not cut a change that was
        already stored and audited short of taking effect.
        """
        async def serialised() -> T:
            async with self._changes:
                return await work()

        task = asyncio.ensure_future(serialised())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_retrieve)
            raise

    def _runner(self, name: str) -> Runner:
        if name not in self._runners:
            raise target_not_found(name)
        return self._runners[name][0]

    async def apply(self, target: Target, *, fresh: bool = False) -> None:
        """Start supervising `target`, replacing (and stopping) a previous definition.

        `fresh`: a changed definition starts with fresh counters. The old runner
        may have stored its counters after the change cleared them, so they are
        cleared again once it has stopped."""
        await self.remove(target.name)
        if fresh:
            try:  # the change is stored and audited: a failure here must not leave it unsupervised
                await self._sink.save_state(target.name, SavedState(False, (), 0))
            except Exception as exc:
                log.warning("%s: could not clear the stored counters again (%r); the old runner's "
                            "last save may be restored", target.name, exc)
        runner: Runner
        driver = make_driver(target.driver, lambda code: runner.child_exited(code),
                             systemctl=self._systemctl, docker_socket=self._docker_socket)
        runner = Runner(target, make_probe(target.check), driver, self._sink, self._metrics,
                        self._restarts_enabled)
        await runner.restore()
        task = asyncio.create_task(runner.run(), name=f"watchdog {target.name}")
        task.add_done_callback(_report_crash)
        self._runners[target.name] = (runner, task)

    async def remove(self, name: str) -> None:
        entry = self._runners.pop(name, None)
        if entry is None:
            return
        runner, task = entry
        while not task.done():  # cancelled again should a step swallow the first cancel
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        await runner.close()
        self._metrics.forget(name, runner.target.check.kind)

    def names(self) -> list[str]:
        return sorted(self._runners)

    def status(self, name: str) -> TargetStatus:
        runner = self._runner(name)
        machine = runner.machine
        return TargetStatus(runner.target, machine.state.value, machine.restarts_in_window(),
                            machine.last_failure, runner.driver.pid)

    def set_target(self, target: Target) -> None:
        """Record a stored change (e.g. paused) that needs no restart of the runner."""
        runner = self._runner(target.name)
        runner.target = target
        if target.paused:
            runner.machine.pause()
        else:
            runner.machine.resume()
            runner.poke()

    def reset(self, name: str) -> None:
        self._runner(name).reset()

    async def close(self) -> None:
        # Children of process targets are stopped together, each with its bounded wait.
        await asyncio.gather(*(self.remove(name) for name in list(self._runners)))


def _retrieve(task: asyncio.Future[Any]) -> None:
    """A shielded change whose caller left: its error is logged, not lost."""
    if not task.cancelled() and task.exception() is not None:
        log.error("a target change failed after its caller left: %r", task.exception())


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped by a bug: %r", task.get_name(), task.exception())
