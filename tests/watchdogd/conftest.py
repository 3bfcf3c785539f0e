"""The `watchdog` fixture: a watchdogd in this process, restarts enabled (agent_watchdog on)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.support.flagd import Replica
from tests.watchdogd.support import Watchdog, set_agent_watchdog, start_watchdog


@pytest_asyncio.fixture
async def watchdog(database_url: str, flagd: Replica) -> AsyncIterator[Watchdog]:
    await set_agent_watchdog(flagd)
    async with start_watchdog(database_url, flagd.address) as wd:
        yield wd
