"""asyncpg connections and pools, with a bounded wait for PostgreSQL at start-up."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypeVar

import asyncpg

from .settings import DatabaseSettings, redact_url

log = logging.getLogger(__name__)
T = TypeVar("T")

# A connection of its own or one borrowed from a pool: both run queries alike.
Connection: TypeAlias = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

# Errors that mean "not reachable yet" rather than "misconfigured".
_TRANSIENT = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL did not accept connections within the configured wait."""


async def retry_connect(make: Callable[[], Awaitable[T]], url: str, timeout_s: float) -> T:
    """Await `make()` until PostgreSQL accepts it or `timeout_s` runs out."""
    deadline = time.monotonic() + timeout_s
    delay, attempt = 0.05, 0
    while True:
        attempt += 1
        try:
            return await make()
        except _TRANSIENT as exc:
            if time.monotonic() + delay > deadline:
                raise DatabaseUnavailable(
                    f"PostgreSQL at {redact_url(url)} did not accept connections within "
                    f"{timeout_s:g} s (last error: {exc!r}); check that it is running and "
                    "that NPANEL_DATABASE_URL is right"
                ) from exc
            if attempt in (2, 10) or attempt % 30 == 0:
                log.warning("waiting for PostgreSQL at %s (attempt %d): %r",
                            redact_url(url), attempt, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def connect(settings: DatabaseSettings, application: str) -> asyncpg.Connection:
    return await retry_connect(
        lambda: asyncpg.connect(settings.url, server_settings={"application_name": application}),
        settings.url,
        settings.connect_timeout_s,
    )


async def create_pool(settings: DatabaseSettings, application: str) -> asyncpg.Pool:
    return await retry_connect(
        lambda: asyncpg.create_pool(
            settings.url,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            server_settings={"application_name": application},
        ),
        settings.url,
        settings.connect_timeout_s,
    )


async def open_pool(settings: DatabaseSettings, application: str) -> asyncpg.Pool:
    """A service's start-up: wait for PostgreSQL, apply pending migrations (safe
    while other services do the same), then open the pool."""
    from . import migrations

    conn = await connect(settings, f"{application}-migrate")
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()
    return await create_pool(settings, application)


class PoolStore:
    """Base of every service's store: attached to its pool at service start.

    Servicers are built before the bootstrap calls start(), so their stores exist
    before the pool does; until it is attached they answer UNAVAILABLE ("still
    starting"), which callers retry.
    """

    service = "npanel"

    def __init__(self, pool: asyncpg.Pool | None = None) -> None:
        self._attached = pool

    def attach(self, pool: asyncpg.Pool) -> None:
        self._attached = pool

    @property
    def _pool(self) -> asyncpg.Pool:
        if self._attached is None:
            from .errors import Unavailable

            raise Unavailable(f"{self.service} is still starting (database not connected yet); "
                              "retry shortly")
        return self._attached
