"""DatabaseSync: a notification sent while the listener is gone is not a lost update."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from npanel.common.settings import DatabaseSettings
from npanel.flagd.cache import FlagCache
from npanel.flagd.store import CHANNEL, FlagStore
from npanel.flagd.sync import DatabaseSync
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
APP = "npanel-flagd-listen-test"


@pytest.mark.asyncio
async def test_missed_notification_is_caught_up_on_reconnect(
    database_url: str, pg_server: object
) -> None:
    database = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(pg_server.admin_url)  # type: ignore[attr-defined]
    writer = await asyncpg.connect(database_url)  # opened before connections are blocked
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=2)
    cache = FlagCache()
    states: list[bool] = []
    sync = DatabaseSync(DatabaseSettings(database_url, 1, 2, 5), FlagStore(pool), cache,
                        application=APP, ping_s=0.2, on_connected=states.append)
    await sync.load()
    task = asyncio.create_task(sync.run())
    try:
        assert await eventually(lambda: sync.connected)
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", APP)
        assert await eventually(lambda: not sync.connected)
        # The change and its NOTIFY commit while nobody listens.
        await writer.execute("""
            UPDATE feature_flags SET enabled = true, revision = nextval('feature_flag_revision')
            WHERE name = 'health_scoring'""")
        await writer.execute("SELECT pg_notify($1, '0')", CHANNEL)
        await asyncio.sleep(0.5)
        assert not cache.get("health_scoring").enabled  # type: ignore[union-attr]
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        assert await eventually(lambda: cache.get("health_scoring").enabled)  # type: ignore[union-attr]
        assert states[:3] == [True, False, True]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await pool.close()
        await writer.close()
        await admin.close()
