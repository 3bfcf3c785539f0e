from __future__ import annotations

import asyncio
import json
import os
import sys

import asyncpg
import pytest

from npanel.common.migrations import Migration, MigrationError, bundled_migrations, migrate

pytestmark = pytest.mark.integration


async def _versions(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        return [r["version"] for r in rows]
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_applies_once_then_is_idempotent(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        first = await migrate(conn, progress=lambda _l: None)
        second = await migrate(conn, progress=lambda _l: None)
        assert [m.version for m in first] == [m.version for m in bundled_migrations()]
        assert second == []
        assert await conn.fetchval("SELECT to_regclass('audit_log') IS NOT NULL")
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_five_processes_migrating_at_once(empty_database_url: str) -> None:
    env = {**os.environ, "NPANEL_DATABASE_URL": empty_database_url}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "npanel.cli", "migrate", "--json", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(5)
    ]
    outputs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0] * 5, outputs
    # Exactly one process applied each migration; the others found nothing to do.
    applied = [line for out, _ in outputs for line in out.decode().splitlines() if "applied" in line]
    reports = [line for line in applied if line.startswith("{")]
    total = sum(len(json.loads(r)["applied"]) for r in reports)
    assert total == len(bundled_migrations())
    assert await _versions(empty_database_url) == [m.version for m in bundled_migrations()]


@pytest.mark.asyncio
async def test_edited_migration_is_refused_and_changes_nothing(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        original = [Migration(1, "first", "CREATE TABLE first_t (id int)")]
        await migrate(conn, original, progress=lambda _l: None)
        edited = [
            Migration(1, "first", "CREATE TABLE first_t (id bigint)"),
            Migration(2, "second", "CREATE TABLE second_t (id int)"),
        ]
        with pytest.raises(MigrationError, match=r"0001_first\.sql was edited"):
            await migrate(conn, edited, progress=lambda _l: None)
        assert not await conn.fetchval("SELECT to_regclass('second_t') IS NOT NULL")
        # The lock was released: a correct set still applies.
        await migrate(conn, [original[0], edited[1]], progress=lambda _l: None)
        assert await conn.fetchval("SELECT to_regclass('second_t') IS NOT NULL")
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_failing_migration_rolls_back_entirely(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        broken = [Migration(1, "broken", "CREATE TABLE half_t (id int); SELECT 1/0;")]
        with pytest.raises(MigrationError, match=r"0001_broken\.sql failed and was rolled back"):
            await migrate(conn, broken, progress=lambda _l: None)
        assert not await conn.fetchval("SELECT to_regclass('half_t') IS NOT NULL")
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
    finally:
        await conn.close()
