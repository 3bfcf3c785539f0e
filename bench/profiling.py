"""py-spy around a load run, and a text summary of where the samples fell.

A flame graph (svg) is for people; the summary (self and inclusive share of
samples per function, from py-spy's collapsed "raw" output) goes into the
report so the cause of a missed target is written down, not just pictured.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import REPO

# "func (path/to/file.py:123)" -> "func (file.py)": lines split one function into many rows.
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy binary next to this interpreter or on PATH; None when not installed."""
    local = REPO / ".venv" / "bin" / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start_py_spy(binary: str, pid: int, seconds: float, out: Path, fmt: str) -> subprocess.Popen[bytes]:
    """Sample whichever thread of `pid` holds the GIL, 200 times a second, without pausing it.

    A Python server saturates when its GIL is busy, so GIL holders are where the
    time goes; threads parked in epoll would only dilute the picture. Time inside
    Cython/C (grpc's cygrpc, protobuf) counts to the Python frame that called it.
    """
    argv = [binary, "record", "-d", str(int(seconds)), "-p", str(pid), "-o", str(out), "-f", fmt,
            "--gil", "--nonblocking", "-r", "200"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish_py_spy(proc: subprocess.Popen[bytes], limit_s: float) -> None:
    _, err = proc.communicate(timeout=limit_s)
    if proc.returncode != 0:
        raise RuntimeError(f"py-spy exited with {proc.returncode}: {err.decode(errors='replace').strip()}")


@dataclass(frozen=True)
class Hotspot:
    function: str
    self_pct: float
    total_pct: float


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match['func']} ({Path(match['file']).name})"


def summarize_collapsed(path: Path) -> tuple[int, list[Hotspot]]:
    """Total samples and every function's self and inclusive share, from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    within: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f]
        total += count
        if frames:
            own[frames[-1]] += count
        for name in set(frames):
            within[name] += count
    return total, [Hotspot(name, 100 * own[name] / total, 100 * n / total) for name, n in within.items()]
