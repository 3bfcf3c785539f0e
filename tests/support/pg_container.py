"""A throw-away PostgreSQL server for the integration tier, run by testcontainers.

``start_postgres_container()`` starts ``PostgresContainer`` from the image named by
``NPANEL_TEST_PG_IMAGE`` (default ``npanel/postgres:15``, the offline image that
``scripts/build-base-images.sh`` builds; on an ordinary machine ``postgres:15``
works as well) and returns an asyncpg-compatible URL plus a function that stops
and removes the container.

Why the environment defaults below (set with ``os.environ.setdefault``, so a value
exported by the caller or CI wins, and set before testcontainers is imported,
because testcontainers reads them into its config at import time):

- ``TESTCONTAINERS_RYUK_DISABLED=true``: Ryuk, the reaper sidecar, is an image
  from Docker Hub that cannot be pulled on machines without registry access; the
  stop function removes the container instead.
- ``TESTCONTAINERS_CONNECTION_MODE=docker_host`` and ``TC_HOST=127.0.0.1``: the
  build machines carry a ``/.dockerenv`` file, so testcontainers believes it runs
  inside a container and would hand out the bridge's private address. Tests reach
  containers only through ports published on 127.0.0.1.

The container port is published on 127.0.0.1 only (never on all interfaces), with a
random free host port. Readiness is testcontainers' own check for
``PostgresContainer``: it runs ``psql --host 127.0.0.1 -c 'select version();'``
inside the container until it succeeds, which needs the target user, password and
database to exist. The npanel/postgres entrypoint only listens on TCP once its
initialisation is complete, so that check cannot pass early.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

DEFAULT_IMAGE = "npanel/postgres:15"
"""Image used when ``NPANEL_TEST_PG_IMAGE`` is not set."""

LOOPBACK = "127.0.0.1"

_TESTCONTAINERS_ENV = {
    "TESTCONTAINERS_RYUK_DISABLED": "true",
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
    "TC_HOST": LOOPBACK,
}


def set_testcontainers_defaults() -> None:
    """Set the testcontainers environment defaults (see the module docstring)."""
    for key, value in _TESTCONTAINERS_ENV.items():
        os.environ.setdefault(key, value)


def docker_available(timeout: float = 3.0) -> bool:
    """Return True only when a Docker engine answers a ping within ``timeout`` seconds.

    Never raises: a missing docker SDK, an unset or unreachable ``DOCKER_HOST``, a
    socket without an engine behind it and a refused permission all mean False.
    """
    try:
        import docker
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=timeout)
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def start_postgres_container(
    *,
    image: str | None = None,
    username: str = "npanel",
    password: str = "npanel",
    dbname: str = "npanel",
) -> tuple[str, Callable[[], None]]:
    """Start PostgreSQL in a container and wait until it accepts queries.

    Returns ``(url, stop)``: ``url`` is ``postgresql://user:pass@127.0.0.1:PORT/db``,
    usable by asyncpg as is; ``stop()`` removes the container and its anonymous
    data volume (calling it more than once is harmless).

    Raises whatever testcontainers raises when the engine is missing or the
    container does not become ready; check ``docker_available()`` first.
    """
    set_testcontainers_defaults()
    from testcontainers.community.postgres import PostgresContainer

    container = PostgresContainer(
        image or os.environ.get("NPANEL_TEST_PG_IMAGE", DEFAULT_IMAGE),
        username=username,
        password=password,
        dbname=dbname,
        driver=None,
    )
    # Publish on loopback only, random host port. testcontainers' own helpers
    # (with_exposed_ports / with_bind_ports) publish on every interface; the docker
    # SDK's (host_ip, host_port) form binds one address.
    bindings: dict[str, Any] = {"5432/tcp": (LOOPBACK, None)}
    container.ports = bindings
    container.start()

    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            container.stop()

    try:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5432)
    except BaseException:
        stop()
        raise
    return f"postgresql://{username}:{password}@{host}:{port}/{dbname}", stop
