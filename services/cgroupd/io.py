"""The io controller: io.max lines "MAJ:MIN rbps=.. wbps=.. riops=.. wiops=.."
(cgroup-v2.rst, "IO Interface Files"); "max" means unlimited.

Devices are resolved to whole disks by number: the kernel throttles a disk's
request queue, and io.max refuses a partition (ENODEV/EINVAL).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from npanel.common.errors import InvalidArgument

from .model import IoLimit, Limits

CONTROLLER = "io"
KEYS = ("rbps", "wbps", "riops", "wiops")
_NUMBER = re.compile(r"^(\d+):(\d+)$")


def line(entry: IoLimit) -> str:
    values = " ".join(f"{k}={getattr(entry, k) or 'max'}" for k in KEYS)
    return f"{entry.device} {values}"


def writes(limits: Limits, previous: Limits | None = None) -> list[tuple[str, str]]:
    """One io.max write per device; a device limited before and not now is reset."""
    now = {e.device for e in limits.io}
    gone = [IoLimit(e.device) for e in (previous.io if previous else ()) if e.device not in now]
    return [("io.max", line(e)) for e in (*limits.io, *gone)]


def parse_max(text: str) -> dict[str, IoLimit]:
    """io.max as read back: only devices with a limit appear."""
    found: dict[str, IoLimit] = {}
    for raw in text.splitlines():
        device, *pairs = raw.split()
        values = {k: (0 if v == "max" else int(v)) for k, _, v in (p.partition("=") for p in pairs)}
        found[device] = IoLimit(device, **{k: values.get(k, 0) for k in KEYS})
    return found


def resolve_device(spec: str, sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> str:
    """A device path or MAJ:MIN -> the whole disk's MAJ:MIN, or INVALID_ARGUMENT."""
    number = spec if _NUMBER.fullmatch(spec) else _number_of_path(spec, dev_root)
    block = sys_root / "dev" / "block" / number
    if not block.exists():
        raise InvalidArgument("io.device", spec, f"no block device {number} on this machine")
    if (block / "partition").exists():
        # /sys/dev/block/M:N links into .../<disk>/<partition>; the disk is the parent.
        disk_dev = block.resolve().parent / "dev"
        return disk_dev.read_text().strip()
    return number


def _number_of_path(spec: str, dev_root: Path) -> str:
    path = Path(spec)
    if not path.is_absolute() or not path.is_relative_to(dev_root):
        raise InvalidArgument("io.device", spec, f"must be MAJ:MIN or a block device under {dev_root}")
    try:
        info = path.stat()
    except OSError as exc:
        raise InvalidArgument("io.device", spec, f"cannot be read ({exc.strerror})") from exc
    if not stat.S_ISBLK(info.st_mode):
        raise InvalidArgument("io.device", spec, "is not a block device")
    return f"{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"
