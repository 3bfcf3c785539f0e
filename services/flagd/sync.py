"""Keeps this replica's FlagCache in step with PostgreSQL.

A dedicated connection LISTENs on the flags channel; each notification makes it
read what changed after the cache's revision. Notifications are hints, not
data: after every (re)connect, and every `resync_s` regardless, the whole table
is re-read, so a notification lost while disconnected (database restart,
network cut) is never a lost update. A ping every `ping_s` notices a connection
that died silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import asyncpg

from npanel.common.db import Connection
from npanel.common.settings import DatabaseSettings, redact_url

from .cache import FlagCache
from .store import CHANNEL, FlagStore

log = logging.getLogger(__name__)


class DatabaseSync:
    def __init__(
        self,
        database: DatabaseSettings,
        store: FlagStore,
        cache: FlagCache,
        *,
        application: str = "npanel-flagd-listen",
        ping_s: float = 2.0,
        resync_s: float = 30.0,
        on_connected: Callable[[bool], None] = lambda _up: None,
    ) -> None:
        self._database = database
        self._store = store
        self._cache = cache
        self._application = application
        self._ping_s = ping_s
        self._resync_s = resync_s
        self._on_connected = on_connected
        self._wake = asyncio.Event()
        self.connected = False

    async def load(self) -> None:
        """The first full read, before the service reports SERVING."""
        self._cache.apply(await self._store.list_flags())

    async def run(self) -> None:
        """Forever: connect, listen, follow changes; on any failure, reconnect."""
        delay = 0.1
        while True:
            try:
                await self._follow()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if self.connected:
                    log.warning("flag sync lost the database (%r); serving cached flags", exc)
                    delay = 0.1  # it was working a moment ago: retry at once
                self._set_connected(False)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _set_connected(self, up: bool) -> None:
        if up != self.connected:
            self.connected = up
            self._on_connected(up)

    async def _follow(self) -> None:
        conn = await asyncpg.connect(
            self._database.url, timeout=5, server_settings={"application_name": self._application})
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await conn.add_listener(CHANNEL, lambda *_args: self._wake.set())
            await self._resync()
            self._set_connected(True)
            log.info("flag sync following %s at revision %d",
                     redact_url(self._database.url), self._cache.revision)
            await self._loop(conn, lost)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)

    async def _loop(self, conn: Connection, lost: asyncio.Event) -> None:
        next_resync = time.monotonic() + self._resync_s
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):  # not wait_for: it can lose a cancel (3.11)
                async with asyncio.timeout(self._ping_s):
                    await self._wake.wait()
            if self._wake.is_set():
                self._wake.clear()
                self._cache.apply(await self._store.changed_since(self._cache.revision))
            elif time.monotonic() >= next_resync:
                await self._resync()
                next_resync = time.monotonic() + self._resync_s
            else:
                async with asyncio.timeout(self._ping_s):
                    await conn.fetchval("SELECT 1")
        raise ConnectionResetError("listen connection closed by the server")

    async def _resync(self) -> None:
        changed = self._cache.apply(await self._store.list_flags())
        if changed:
            log.info("flag resync found %d change(s) missed while disconnected", len(changed))
