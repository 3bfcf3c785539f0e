"""The cgroup filesystem seam: a small Protocol, the kernel implementation, and
the explicit simulation over a directory tree (ARCHITECTURE.md "Local default").

Every path is checked to lie inside the mount before any disk access. Writes go
out as one write(2) each, because the kernel parses one line per write (io.max).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Protocol

from npanel.common.errors import FailedPrecondition

SIMULATED_CONTROLLERS = "cpuset cpu io memory pids"


class CgroupFs(Protocol):
    @property
    def mount(self) -> Path:
        """The cgroup2 mount point (the simulation's top directory)."""
        ...

    @property
    def simulated(self) -> bool: ...

    def read(self, path: Path) -> str: ...

    def write(self, path: Path, value: str) -> None: ...

    def mkdir(self, path: Path) -> None: ...

    def rmdir(self, path: Path) -> None: ...

    def children(self, path: Path) -> list[str]: ...

    def exists(self, path: Path) -> bool: ...


def find_cgroup2_mount(path: Path, mountinfo: str) -> Path | None:
    """The cgroup2 mount point that contains `path`, from /proc/self/mountinfo text."""
    best: Path | None = None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or right.split()[:1] != ["cgroup2"]:
            continue
        point = Path(fields[4].replace("\\040", " "))
        if path == point or path.is_relative_to(point):
            best = point if best is None or len(point.parts) > len(best.parts) else best
    return best


class KernelFs:
    """The real cgroup2 filesystem under `mount`."""

    simulated = False

    def __init__(self, mount: Path) -> None:
        self._mount = mount

    @property
    def mount(self) -> Path:
        return self._mount

    def check(self, path: Path) -> Path:
        """`path` when it lies inside the mount, else a refusal naming it."""
        if not path.is_absolute() or ".." in path.parts or not (
                path == self._mount or path.is_relative_to(self._mount)):
            raise FailedPrecondition(f"refusing to touch {path}: it is not inside the cgroup mount "
                                     f"{self._mount}")
        return path

    def read(self, path: Path) -> str:
        return self.check(path).read_text()

    def write(self, path: Path, value: str) -> None:
        fd = os.open(self.check(path), os.O_WRONLY)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def mkdir(self, path: Path) -> None:
        self.check(path).mkdir()

    def rmdir(self, path: Path) -> None:
        self.check(path).rmdir()

    def children(self, path: Path) -> list[str]:
        return sorted(p.name for p in self.check(path).iterdir() if p.is_dir())

    def exists(self, path: Path) -> bool:
        return self.check(path).exists()


class SimulatedFs(KernelFs):
    """A directory tree that behaves like cgroupfs closely enough for the API:
    interface files appear on mkdir, freeze updates cgroup.events, cgroup.kill
    empties the group. It never signals a real process and enforces nothing."""

    simulated = True

    def __init__(self, mount: Path) -> None:
        super().__init__(mount)
        mount.mkdir(parents=True, exist_ok=True)
        self._init_files(mount, SIMULATED_CONTROLLERS)

    @staticmethod
    def _init_files(path: Path, controllers: str) -> None:
        defaults = {
            "cgroup.controllers": controllers, "cgroup.subtree_control": "", "cgroup.procs": "",
            "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.freeze": "0", "cgroup.kill": "",
            "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\n"
                        "throttled_usec 0\n",
            "memory.current": "0", "memory.peak": "0", "memory.swap.current": "0",
            "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
            "pids.current": "0", "pids.events": "max 0\n", "io.stat": "", "io.max": "",
            "memory.high": "max", "memory.max": "max", "memory.swap.max": "max", "pids.max": "max",
            "cpu.max": "max 100000", "cpu.weight": "100",
        }
        for name, text in defaults.items():
            if not (path / name).exists():
                (path / name).write_text(text)

    def mkdir(self, path: Path) -> None:
        super().mkdir(path)
        offered = (path.parent / "cgroup.subtree_control").read_text()
        self._init_files(path, offered)

    def read(self, path: Path) -> str:
        # Like the kernel: a group is offered what its parent enables for children.
        if path.name == "cgroup.controllers" and path.parent != self.mount:
            return super().read(path.parent.parent / "cgroup.subtree_control")
        return super().read(path)

    def rmdir(self, path: Path) -> None:
        self.check(path)
        if any(p.is_dir() for p in path.iterdir()) or self._procs(path):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))
        for item in path.iterdir():
            item.unlink()
        path.rmdir()

    def write(self, path: Path, value: str) -> None:
        group, name = self.check(path).parent, path.name
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        if name == "cgroup.subtree_control":
            self._subtree_control(path, value)
        elif name == "cgroup.freeze":
            path.write_text(value)
            self._events(group)
        elif name == "cgroup.kill":
            (group / "cgroup.procs").write_text("")
            self._events(group)
        elif name == "cgroup.procs":
            self._add_proc(group, value)
        elif name == "io.max":
            self._io_max(path, value)
        else:
            path.write_text(value)

    def _subtree_control(self, path: Path, value: str) -> None:
        enabled = set(path.read_text().split())
        offered = set(self.read(path.parent / "cgroup.controllers").split())
        for token in value.split():
            if token[1:] not in offered:
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
            (enabled.add if token[0] == "+" else enabled.discard)(token[1:])
        path.write_text(" ".join(sorted(enabled)))

    @staticmethod
    def _procs(group: Path) -> list[str]:
        return (group / "cgroup.procs").read_text().split()

    def _add_proc(self, group: Path, value: str) -> None:
        if not Path(f"/proc/{int(value)}").exists():
            raise ProcessLookupError(errno.ESRCH, os.strerror(errno.ESRCH), value)
        # Recorded only: a simulated group never holds or signals a real process.
        for other in self.mount.rglob("cgroup.procs"):
            kept = [p for p in other.read_text().split() if p != value]
            other.write_text("\n".join(kept))
        (group / "cgroup.procs").write_text("\n".join([*self._procs(group), value]))
        self._events(group)

    def _events(self, group: Path) -> None:
        populated = 1 if self._procs(group) else 0
        frozen = (group / "cgroup.freeze").read_text().strip()
        (group / "cgroup.events").write_text(f"populated {populated}\nfrozen {frozen}\n")
        (group / "pids.current").write_text(str(len(self._procs(group))))

    @staticmethod
    def _io_max(path: Path, value: str) -> None:
        device, *pairs = value.split()
        lines = {ln.split()[0]: ln for ln in path.read_text().splitlines() if ln.strip()}
        if all(p.endswith("=max") for p in pairs):
            lines.pop(device, None)
        else:
            lines[device] = value
        path.write_text("".join(f"{ln}\n" for _, ln in sorted(lines.items())))
