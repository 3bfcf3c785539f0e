"""Account groups on a CgroupFs: create, limit, freeze, move, kill, delete.

Synchronous and bounded in time; the service runs these in a worker thread so a
slow kernel write (memory.max below current use reclaims, then OOM-kills, before
it returns) never blocks the event loop.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from npanel.common.errors import FailedPrecondition, InvalidArgument, Unavailable

from . import cpu, io, memory, pids
from .fs import CgroupFs
from .model import IoLimit, Limits, check_account_id

log = logging.getLogger(__name__)
# The order controllers are written in; memory's own files follow memory.FILES.
CONTROLLERS = (cpu, memory, pids, io)
POLL_S = 0.01


def controllers_for(limits: Limits | None) -> tuple[str, ...]:
    """The controllers a group with `limits` needs enabled above it."""
    if limits is None:
        return ()
    needed = ["cpu", "memory", "pids"]
    if limits.io:
        needed.append("io")
    return tuple(needed)


def writes(limits: Limits, previous: Limits | None = None) -> list[tuple[str, str]]:
    """Every (file, value) `limits` needs, in the safe order: cpu, then memory
    min/low/high/max/swap, then pids, then io (resetting devices no longer limited)."""
    planned = [*cpu.writes(limits), *memory.writes(limits), *pids.writes(limits),
               *io.writes(limits, previous)]
    rank = {name: i for i, name in enumerate(memory.FILES)}
    return sorted(planned, key=lambda fv: (_controller_rank(fv[0]), rank.get(fv[0], 0)))


def _controller_rank(file: str) -> int:
    prefix = file.partition(".")[0]
    return [c.CONTROLLER for c in CONTROLLERS].index(prefix)


class Cgroups:
    def __init__(self, fs: CgroupFs, root: Path, *, proc: Path = Path("/proc"),
                 clock: Callable[[], float] = time.monotonic) -> None:
        if root != fs.mount and not root.is_relative_to(fs.mount):
            raise FailedPrecondition(f"cgroup root {root} is not inside the cgroup2 mount {fs.mount}")
        self.fs = fs
        self.root = root
        self._proc = proc
        self._clock = clock

    def path(self, account_id: str) -> Path:
        return self.root / check_account_id(account_id)

    def exists(self, account_id: str) -> bool:
        return self.fs.exists(self.path(account_id))

    def groups(self) -> list[str]:
        return self.fs.children(self.root) if self.fs.exists(self.root) else []

    def ensure_root(self, controllers: Iterable[str]) -> None:
        """Create the root and enable `controllers` top-down, mount to root, in
        each cgroup.subtree_control (cgroup-v2.rst "Enabling and Disabling")."""
        if not self.fs.exists(self.root):
            self.fs.mkdir(self.root)
        wanted = list(controllers)
        chain = [self.root, *self.root.parents]
        for level in reversed(chain[: chain.index(self.fs.mount) + 1]):
            offered = self.fs.read(level / "cgroup.controllers").split()
            enabled = self.fs.read(level / "cgroup.subtree_control").split()
            missing = [c for c in wanted if c not in offered]
            if missing:
                raise FailedPrecondition(
                    f"controller {' '.join(missing)} is not offered at {level} (cgroup.controllers: "
                    f"{' '.join(offered) or 'none'}); enable it in the parent or run on a full cgroup v2")
            todo = [c for c in wanted if c not in enabled]
            if todo:
                self._write(level / "cgroup.subtree_control", " ".join(f"+{c}" for c in todo))

    def create(self, account_id: str, limits: Limits | None) -> None:
        """Create the group with its limits; a group that fails half-way is removed."""
        group = self.path(account_id)
        self.ensure_root(controllers_for(limits))
        self.fs.mkdir(group)
        try:
            if limits is not None:
                self.write_all(group, writes(limits))
        except BaseException:
            self._remove_quietly(group)
            raise

    def apply(self, account_id: str, limits: Limits, previous: Limits | None = None) -> None:
        self.ensure_root(controllers_for(limits))
        self.write_all(self.path(account_id), writes(limits, previous))

    def write_all(self, group: Path, planned: Iterable[tuple[str, str]]) -> None:
        """The one function that writes limit files, in the order given."""
        for name, value in planned:
            self._write(group / name, value)

    def _write(self, path: Path, value: str) -> None:
        try:
            self.fs.write(path, value)
        except FileNotFoundError as exc:
            controller = path.name.partition(".")[0]
            raise FailedPrecondition(
                f"{path} does not exist: the kernel does not offer the {controller} controller "
                f"here (needed to write {value!r})") from exc
        except OSError as exc:
            if path.name == "io.max":
                raise InvalidArgument("io.device", value.split()[0],
                                      f"the kernel refused io.max ({exc.strerror})") from exc
            raise FailedPrecondition(f"writing {value!r} to {path} failed: {exc.strerror}") from exc

    def _remove_quietly(self, group: Path) -> None:
        try:
            self.fs.rmdir(group)
        except OSError as exc:
            log.error("could not remove half-created group %s: %s", group, exc)

    def drift(self, account_id: str, limits: Limits) -> list[tuple[str, str]]:
        """The writes needed where the kernel's files differ from `limits`."""
        group = self.path(account_id)
        stale = [(f, v) for f, v in writes(limits) if f != "io.max" and not self._same(group / f, v)]
        current_io = io.parse_max(self._read_or(group / "io.max", "") or "")
        wanted_io = {e.device: e for e in limits.io}
        stale += [("io.max", io.line(e)) for e in limits.io if current_io.get(e.device) != e]
        stale += [("io.max", io.line(IoLimit(d))) for d in current_io if d not in wanted_io]
        return stale

    def _same(self, path: Path, value: str) -> bool:
        current = self._read_or(path, None)
        if current is None:
            return False
        if path.name.startswith("memory."):
            return memory.same(value, current.strip())
        return current.strip() == value

    def _read_or(self, path: Path, default: str | None) -> str | None:
        try:
            return self.fs.read(path)
        except FileNotFoundError:
            return default

    def events(self, account_id: str) -> dict[str, str]:
        text = self.fs.read(self.path(account_id) / "cgroup.events")
        return dict(line.split(None, 1) for line in text.splitlines() if line.strip())

    def set_frozen(self, account_id: str, frozen: bool, limit_s: float = 10.0) -> None:
        """Write cgroup.freeze and wait until cgroup.events reports it."""
        self._write(self.path(account_id) / "cgroup.freeze", "1" if frozen else "0")
        want = "1" if frozen else "0"
        if not self._wait(lambda: self.events(account_id).get("frozen") == want, limit_s):
            raise Unavailable(f"account {account_id!r}: cgroup.events did not show frozen {want} "
                              f"within {limit_s:g} s; retry")

    def procs(self, account_id: str) -> list[int]:
        return [int(p) for p in self.fs.read(self.path(account_id) / "cgroup.procs").split()]

    def delete(self, account_id: str, limit_s: float = 10.0) -> int:
        """Kill every process, wait for populated 0, remove (retrying EBUSY).
        Returns how many processes the group held; a missing group is 0."""
        group = self.path(account_id)
        if not self.fs.exists(group):
            return 0
        held = len(self.procs(account_id))
        if held:
            self._write(group / "cgroup.kill", "1")
            if not self._wait(lambda: self.events(account_id).get("populated") == "0", limit_s):
                raise Unavailable(f"account {account_id!r}: processes still alive {limit_s:g} s after "
                                  "cgroup.kill; retry the delete")
        deadline = self._clock() + limit_s
        while True:
            try:
                self.fs.rmdir(group)
                return held
            except OSError as exc:
                if exc.errno != errno.EBUSY or self._clock() > deadline:
                    raise Unavailable(f"could not remove {group}: {exc.strerror}; retry") from exc
                time.sleep(POLL_S)

    def move(self, account_id: str, pids_: Iterable[int], descendants: bool) -> tuple[list[int], list[int]]:
        """Move processes in; a PID that exited is reported, not fatal."""
        target = self.path(account_id) / "cgroup.procs"
        if not self.fs.exists(self.path(account_id)):
            raise FailedPrecondition(f"group {self.path(account_id)} does not exist; run the reconciler")
        moved: list[int] = []
        vanished: list[int] = []
        for pid in pids_:
            for each in (self.tree(pid) if descendants else [pid]):
                try:
                    self.fs.write(target, str(each))
                    moved.append(each)
                except ProcessLookupError:
                    vanished.append(each)
        return moved, vanished

    def tree(self, pid: int) -> list[int]:
        """`pid` and its descendants, parents first, from /proc/<pid>/task/*/children."""
        found, todo = [], [pid]
        while todo:
            current = todo.pop(0)
            found.append(current)
            for task in sorted((self._proc / str(current) / "task").glob("*/children")):
                try:
                    todo += [int(c) for c in task.read_text().split()]
                except OSError:
                    continue
        return found

    def _wait(self, done: Callable[[], bool], limit_s: float) -> bool:
        deadline = self._clock() + limit_s
        while not done():
            if self._clock() > deadline:
                return False
            time.sleep(POLL_S)
        return True
