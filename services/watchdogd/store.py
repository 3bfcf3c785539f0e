"""Targets and incidents in PostgreSQL.

Every operator action (put, remove, pause, resume, reset) writes its change and
its audit_log row in one transaction. What a watchdogd restart must not forget
(GAVE_UP, the restarts of the last hour) is in watchdog_target_state.
Incidents are written by watchdogd itself (not operator actions, so not
audited); their evidence columns are append-only (trigger of migration 0003).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from npanel.common import audit
from npanel.common.db import Connection, PoolStore

from .model import (
    Incident,
    IncidentQuery,
    SavedState,
    Target,
    check_actor_reason,
    target_from_doc,
    target_not_found,
)

_INCIDENT_COLUMNS = """id, target, detected_at, failure_type, evidence, last_log_lines, restart_count,
                       recovered_at, recovery_seconds, resolved, gave_up"""


def _target(row: asyncpg.Record | None) -> Target:
    assert row is not None  # INSERT/UPDATE ... RETURNING of a row known to exist
    return target_from_doc(row["name"], json.loads(row["spec"]), source=row["source"],
                           paused=row["paused"], updated_at=row["updated_at"])


def _incident(row: asyncpg.Record | None) -> Incident:
    assert row is not None  # RETURNING of a row known to exist
    values = dict(row)
    values["last_log_lines"] = tuple(values["last_log_lines"])
    return Incident(**values)


async def _audit(conn: Connection, actor: str, action: str, name: str, details: dict[str, Any]) -> None:
    await audit.record(conn, audit.AuditEntry(
        actor=actor, action=f"watchdog.{action}", target_type="watchdog_target", target_id=name,
        details=details))


class WatchdogStore(PoolStore):
    service = "watchdogd"

    async def list_targets(self) -> list[Target]:
        rows = await self._pool.fetch("SELECT * FROM watchdog_targets ORDER BY name")
        return [_target(r) for r in rows]

    async def put_target(self, target: Target, actor: str, reason: str) -> Target | None:
        """Create or replace; None when the stored target is already exactly this."""
        target.validate()
        check_actor_reason(actor, reason)
        async with self._pool.acquire() as conn, conn.transaction():
            before = await conn.fetchrow("SELECT * FROM watchdog_targets WHERE name = $1 FOR UPDATE",
                                         target.name)
            doc = target.spec_doc()
            if before is not None and json.loads(before["spec"]) == doc and before["source"] == target.source:
                return None
            row = await conn.fetchrow(
                """
                INSERT INTO watchdog_targets (name, spec, source) VALUES ($1, $2::jsonb, $3)
                ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, source = EXCLUDED.source,
                                                 updated_at = now()
                RETURNING *
                """, target.name, json.dumps(doc), target.source)
            # A changed definition starts with fresh counters (and leaves GAVE_UP).
            cleared = await conn.fetchval(
                "DELETE FROM watchdog_target_state WHERE name = $1 RETURNING gave_up", target.name)
            await _audit(conn, actor, "target.put", target.name,
                         {"reason": reason, "source": target.source, "spec": doc,
                          "replaced": before is not None, "counters_cleared": cleared is not None,
                          "was_gave_up": bool(cleared)})
        return _target(row)

    async def get_target(self, name: str) -> Target:
        row = await self._pool.fetchrow("SELECT * FROM watchdog_targets WHERE name = $1", name)
        if row is None:
            raise target_not_found(name)
        return _target(row)

    async def remove_target(self, name: str, actor: str, reason: str) -> None:
        check_actor_reason(actor, reason)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("DELETE FROM watchdog_targets WHERE name = $1 RETURNING spec", name)
            if row is None:
                raise target_not_found(name)
            await _audit(conn, actor, "target.remove", name,
                         {"reason": reason, "spec": json.loads(row["spec"])})

    async def set_paused(self, name: str, paused: bool, actor: str, reason: str) -> Target:
        check_actor_reason(actor, reason)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE watchdog_targets SET paused = $2, updated_at = now() WHERE name = $1 RETURNING *",
                name, paused)
            if row is None:
                raise target_not_found(name)
            await _audit(conn, actor, "target.pause" if paused else "target.resume", name,
                         {"reason": reason})
        return _target(row)

    async def reset_target(self, name: str, actor: str, reason: str, state_before: str) -> Target:
        """Forget the stored counters and GAVE_UP, with the audit row, in one transaction.

        The supervisor's in-memory reset follows (servicer.py)."""
        check_actor_reason(actor, reason)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM watchdog_targets WHERE name = $1 FOR UPDATE", name)
            if row is None:
                raise target_not_found(name)
            await conn.execute("DELETE FROM watchdog_target_state WHERE name = $1", name)
            await _audit(conn, actor, "target.reset", name, {"reason": reason, "state_before": state_before})
        return _target(row)

    async def load_state(self, name: str) -> SavedState | None:
        row = await self._pool.fetchrow(
            "SELECT gave_up, restarts, attempt FROM watchdog_target_state WHERE name = $1", name)
        if row is None:
            return None
        return SavedState(row["gave_up"], tuple(row["restarts"]), row["attempt"])

    async def save_state(self, name: str, state: SavedState) -> None:
        """Upsert; nothing when the target was removed meanwhile (no orphan rows)."""
        await self._pool.execute(
            """INSERT INTO watchdog_target_state (name, gave_up, restarts, attempt)
               SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM watchdog_targets WHERE name = $1)
               ON CONFLICT (name) DO UPDATE SET gave_up = EXCLUDED.gave_up, restarts = EXCLUDED.restarts,
                                                attempt = EXCLUDED.attempt, updated_at = now()""",
            name, state.gave_up, list(state.restarts), state.attempt)

    async def open_incident_of(self, target: str) -> Incident | None:
        """The target's latest incident if it is still open (a previous watchdogd's),
        and about this target: not one of a removed target of the same name."""
        row = await self._pool.fetchrow(
            f"""SELECT {_INCIDENT_COLUMNS} FROM agent_failures
                WHERE target = $1
                  AND detected_at >= (SELECT created_at FROM watchdog_targets WHERE name = $1)
                ORDER BY id DESC LIMIT 1""", target)
        return None if row is None or row["resolved"] else _incident(row)

    async def open_incident(self, target: str, detected_at: datetime, failure_type: str, evidence: str,
                            last_log_lines: list[str]) -> Incident:
        row = await self._pool.fetchrow(
            f"""INSERT INTO agent_failures (target, detected_at, failure_type, evidence, last_log_lines)
                VALUES ($1, $2, $3, $4, $5) RETURNING {_INCIDENT_COLUMNS}""",
            target, detected_at, failure_type, evidence, last_log_lines)
        return _incident(row)

    async def update_incident(self, incident_id: int, restart_count: int, gave_up: bool) -> Incident:
        row = await self._pool.fetchrow(
            f"""UPDATE agent_failures SET restart_count = $2, gave_up = gave_up OR $3
                WHERE id = $1 RETURNING {_INCIDENT_COLUMNS}""", incident_id, restart_count, gave_up)
        return _incident(row)

    async def resolve_incident(self, incident_id: int, recovered_at: datetime, recovery_seconds: float,
                               restart_count: int) -> Incident:
        row = await self._pool.fetchrow(
            f"""UPDATE agent_failures SET resolved = true, recovered_at = $2, recovery_seconds = $3,
                       restart_count = $4
                WHERE id = $1 RETURNING {_INCIDENT_COLUMNS}""",
            incident_id, recovered_at, recovery_seconds, restart_count)
        return _incident(row)

    async def list_incidents(self, query: IncidentQuery) -> list[Incident]:
        query.validate()
        rows = await self._pool.fetch(
            f"""SELECT {_INCIDENT_COLUMNS} FROM agent_failures
                WHERE ($1::text IS NULL OR target = $1) AND ($2::bigint IS NULL OR id < $2)
                  AND (NOT $3 OR NOT resolved)
                ORDER BY id DESC LIMIT $4""",
            query.target, query.before_id, query.unresolved_only, query.page_size)
        return [_incident(r) for r in rows]
