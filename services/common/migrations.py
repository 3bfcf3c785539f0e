"""Numbered SQL migrations, applied once each, safely from many processes at once.

Files are `NNNN_name.sql` in services/common/migrations/. The runner holds a
PostgreSQL advisory lock while it works, so five services starting together
apply each migration exactly once; the others wait, then find nothing to do.
Each file's SHA-256 is recorded when applied; an applied file whose contents
changed later is refused, because the databases already migrated would silently
differ from new ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# Arbitrary constant shared by every npanel process: "the migration lock".
MIGRATION_LOCK_KEY = 0x6E70616E656C  # "npanel"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migrations on disk and in the database disagree, or one failed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def parse_migrations(files: Iterable[tuple[str, str]]) -> list[Migration]:
    """Build the ordered list from (filename, text) pairs, refusing bad names."""
    found: dict[int, Migration] = {}
    for filename, text in files:
        m = _NAME.match(filename)
        if not m:
            raise MigrationError(
                f"migration file {filename!r} is not named NNNN_lowercase_name.sql; rename it"
            )
        migration = Migration(int(m.group(1)), m.group(2), text)
        if migration.version in found:
            raise MigrationError(
                f"migrations {found[migration.version].filename!r} and {filename!r} share "
                f"version {migration.version}; renumber one of them"
            )
        found[migration.version] = migration
    return [found[v] for v in sorted(found)]


def bundled_migrations() -> list[Migration]:
    """The migrations shipped inside the npanel package."""
    folder = resources.files("npanel.common").joinpath("migrations")
    return parse_migrations(
        (f.name, f.read_text(encoding="utf-8"))
        for f in folder.iterdir()
        if f.name.endswith(".sql")
    )


def check_applied(migrations: list[Migration], applied: dict[int, tuple[str, str]]) -> None:
    """Refuse applied migrations whose file has since been edited."""
    for m in migrations:
        if m.version in applied and applied[m.version][1] != m.checksum:
            raise MigrationError(
                f"migration {m.filename} was edited after it was applied (recorded checksum "
                f"{applied[m.version][1][:12]}..., file now {m.checksum[:12]}...); applied "
                "migrations are immutable: restore the file and put the change in a new "
                "numbered migration"
            )
    unknown = sorted(set(applied) - {m.version for m in migrations})
    if unknown:
        # A newer release has migrated this database; this one can still run.
        log.warning("database has migrations this release does not know: %s", unknown)


async def _acquire_lock(conn: asyncpg.Connection, progress: Callable[[str], None]) -> None:
    started = next_report = time.monotonic()
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_KEY):
        if (now := time.monotonic()) >= next_report:
            progress(f"waiting for another process to finish migrating ({now - started:.0f} s)")
            next_report = now + 5
        await asyncio.sleep(0.1)


async def migrate(
    conn: asyncpg.Connection,
    migrations: list[Migration] | None = None,
    progress: Callable[[str], None] = log.info,
) -> list[Migration]:
    """Apply every pending migration; return those this call applied."""
    migrations = bundled_migrations() if migrations is None else migrations
    await _acquire_lock(conn, progress)
    try:
        await conn.execute(_BOOTSTRAP)
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {r["version"]: (r["name"], r["checksum"]) for r in rows}
        check_applied(migrations, applied)
        done = []
        for m in (m for m in migrations if m.version not in applied):
            await _apply(conn, m, progress)
            done.append(m)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def _apply(conn: asyncpg.Connection, m: Migration, progress: Callable[[str], None]) -> None:
    started = time.monotonic()
    try:
        async with conn.transaction():
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                m.version, m.name, m.checksum,
            )
    except asyncpg.PostgresError as exc:
        raise MigrationError(
            f"migration {m.filename} failed and was rolled back: {exc}; fix the SQL and run "
            "`npanel migrate` again"
        ) from exc
    progress(f"applied {m.filename} in {(time.monotonic() - started) * 1000:.0f} ms")
