"""Tiers, their prerequisites, and the PostgreSQL fixtures shared by every test."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import pytest_asyncio

from tests.support import database
from tests.support.flagd import Replica, start_replica
from tests.support.tiers import TIERS, in_ci, missing_prerequisite

_collected: Counter[str] = Counter()
_skipped: dict[str, str] = {}
_backend: list[str] = []


def _tier_of(item: pytest.Item) -> str:
    tiers = sorted({m.name for m in item.iter_markers() if m.name in TIERS})
    if len(tiers) != 1:
        raise pytest.UsageError(
            f"{item.nodeid} has tier markers {tiers}: mark it with exactly one of {', '.join(TIERS)}"
        )
    return tiers[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        _collected[_tier_of(item)] += 1


def pytest_runtest_setup(item: pytest.Item) -> None:
    tier = _tier_of(item)
    reason = missing_prerequisite(tier)
    if reason:
        _skipped[tier] = reason
        pytest.skip(f"{tier} tier skipped: {reason}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    write = terminalreporter.write_line
    terminalreporter.section("npanel test tiers")
    for tier in TIERS:
        if tier in _skipped:
            write(f"{tier:12} SKIPPED: {_skipped[tier]}")
        elif _collected[tier]:
            write(f"{tier:12} ran {_collected[tier]} test(s)")
        else:
            write(f"{tier:12} no tests selected (none written yet, or deselected)")
    if _backend:
        write(f"database backend: {_backend[0]}")
    if _skipped and in_ci():
        write("CI=true: a skipped tier fails the run", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped and in_ci() and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def pg_server() -> Iterator[database.PgServer]:
    server, stop = database.start_server()
    _backend.append(server.backend)
    try:
        yield server
    finally:
        stop()


@pytest.fixture(scope="session")
def pg_template(pg_server: database.PgServer) -> Iterator[str]:
    name = database.create_template(pg_server)
    yield name
    database.drop_database(pg_server, name)


@pytest.fixture
def database_url(pg_server: database.PgServer, pg_template: str) -> Iterator[str]:
    """A fresh database with every migration applied."""
    name = database.create_database(pg_server, template=pg_template)
    yield pg_server.url_for(name)
    database.drop_database(pg_server, name)


@pytest.fixture
def empty_database_url(pg_server: database.PgServer) -> Iterator[str]:
    """A fresh database with no migrations applied."""
    name = database.create_database(pg_server)
    yield pg_server.url_for(name)
    database.drop_database(pg_server, name)


@pytest_asyncio.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest_asyncio.fixture
async def flagd(database_url: str) -> AsyncIterator[Replica]:
    """A running flagd replica on the test's database."""
    async with start_replica(database_url) as replica:
        yield replica
