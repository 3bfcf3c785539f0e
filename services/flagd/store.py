"""Flags in PostgreSQL. Each change is one transaction: the flag row, its
feature_flag_toggles row, its audit_log row and the NOTIFY that tells the other
replicas. An acknowledged change therefore always has both history rows, and
a failed one leaves none (the original draft's audit insert failed silently).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from npanel.common import audit
from npanel.common.db import Connection, PoolStore
from npanel.common.logs import request_id_var

from .model import (
    Flag,
    FlagChange,
    Toggle,
    ToggleQuery,
    action_for,
    check_actor_reason,
    flag_not_found,
)

CHANNEL = "npanel_flags"
# Flag writers take this lock first, so revisions commit in the order they are
# drawn and "changed after revision N" never misses a slower transaction.
WRITE_LOCK = 0x666C616773  # "flags"
_FLAG_COLUMNS = """name, description, track, enabled, rollout_percent, required,
                   created_at, updated_at, revision"""


def _flag(row: asyncpg.Record) -> Flag:
    return Flag(**dict(row))


def _toggle(row: asyncpg.Record) -> Toggle:
    before, after = json.loads(row["previous_state"]), json.loads(row["new_state"])
    return Toggle(
        id=row["id"], flag=row["feature_name"], actor=row["actor"], action=row["action"],
        previous_enabled=before["enabled"], previous_rollout_percent=before["rollout_percent"],
        new_enabled=after["enabled"], new_rollout_percent=after["rollout_percent"],
        reason=row["reason"], request_id=row["request_id"] or "", created_at=row["created_at"],
        revision=row["revision"],
    )


@dataclass(frozen=True)
class Applied:
    flag: Flag
    action: str


class FlagStore(PoolStore):
    service = "flagd"

    async def list_flags(self) -> list[Flag]:
        rows = await self._pool.fetch(f"SELECT {_FLAG_COLUMNS} FROM feature_flags ORDER BY name")
        return [_flag(r) for r in rows]

    async def changed_since(self, revision: int) -> list[Flag]:
        rows = await self._pool.fetch(
            f"SELECT {_FLAG_COLUMNS} FROM feature_flags WHERE revision > $1 ORDER BY revision",
            revision)
        return [_flag(r) for r in rows]

    async def set_flag(self, change: FlagChange) -> tuple[Flag, str | None]:
        """Apply `change`; return the flag and the action recorded (None: no change)."""
        change.validate()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
            row = await conn.fetchrow(
                f"SELECT {_FLAG_COLUMNS} FROM feature_flags WHERE name = $1 FOR UPDATE", change.name)
            if row is None:
                raise flag_not_found(change.name)
            before = _flag(row)
            action = action_for(before, change.apply(before))
            if action is None:
                return before, None
            applied = await _write(conn, before, change.apply(before), action,
                                   change.actor, change.reason)
            await _audit(conn, change.actor, f"flag.{action}", [applied], change.reason)
            await _notify(conn, applied.flag.revision)
        return applied.flag, action

    async def disable_all(self, actor: str, reason: str) -> list[Flag]:
        """The emergency rollback: every enabled flag off, in one transaction."""
        check_actor_reason(actor, reason)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
            rows = await conn.fetch(
                f"SELECT {_FLAG_COLUMNS} FROM feature_flags WHERE enabled ORDER BY name FOR UPDATE")
            applied = []
            for before in map(_flag, rows):
                off = FlagChange(before.name, actor, reason, enabled=False).apply(before)
                applied.append(await _write(conn, before, off, "rollback", actor, reason))
            if applied:
                await _audit(conn, actor, "flags.disable_all", applied, reason)
                await _notify(conn, max(a.flag.revision for a in applied))
        return [a.flag for a in applied]

    async def list_toggles(self, query: ToggleQuery) -> list[Toggle]:
        query.validate()
        rows = await self._pool.fetch(
            """
            SELECT * FROM feature_flag_toggles
            WHERE ($1::text IS NULL OR feature_name = $1)
              AND ($2::timestamptz IS NULL OR created_at >= $2)
              AND ($3::timestamptz IS NULL OR created_at < $3)
              AND ($4::bigint IS NULL OR id < $4)
            ORDER BY id DESC LIMIT $5
            """,
            query.flag, query.since, query.until, query.before_id, query.page_size)
        return [_toggle(r) for r in rows]


async def _write(
    conn: Connection, before: Flag, after: Flag, action: str, actor: str, reason: str
) -> Applied:
    row = await conn.fetchrow(
        f"""
        UPDATE feature_flags
        SET enabled = $2, rollout_percent = $3, updated_at = now(),
            revision = nextval('feature_flag_revision')
        WHERE name = $1
        RETURNING {_FLAG_COLUMNS}
        """,
        after.name, after.enabled, after.rollout_percent)
    assert row is not None  # locked FOR UPDATE by the caller, so it still exists
    flag = _flag(row)
    await conn.execute(
        """
        INSERT INTO feature_flag_toggles
            (feature_name, actor, action, previous_state, new_state, reason, request_id, revision)
        VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $8)
        """,
        flag.name, actor, action, json.dumps(before.state()), json.dumps(flag.state()),
        reason, request_id_var.get() or None, flag.revision)
    return Applied(flag, action)


async def _audit(conn: Connection, actor: str, action: str, applied: Iterable[Applied], reason: str) -> None:
    changes = [{"flag": a.flag.name, "action": a.action, "state": a.flag.state(),
                "revision": a.flag.revision} for a in applied]
    target = changes[0]["flag"] if len(changes) == 1 else "*"
    await audit.record(conn, audit.AuditEntry(
        actor=actor, action=action, target_type="feature_flag", target_id=str(target),
        details={"reason": reason, "changes": changes}))


async def _notify(conn: Connection, revision: int) -> None:
    # Delivered at commit, and only if the transaction commits.
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(revision))
