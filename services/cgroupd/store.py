"""Desired state (cgroup_configs) and events (cgroup_events) in PostgreSQL.

Each change is one transaction holding the account's row lock: the row, the
kernel change (a callback run inside the transaction), the event row and the
audit row. A kernel failure rolls everything back, so the API's "changes
nothing" holds for the database; groups.py undoes what it half-did in the kernel.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable

import asyncpg

from npanel.common import audit
from npanel.common.db import Connection, PoolStore
from npanel.common.errors import FailedPrecondition

from .model import Account, Event, Limits, account_not_found

_COLUMNS = "account_id, package, limits, frozen, created_at, updated_at"
_EVENT_COLUMNS = "id, account_id, kind, resource, severity, message, details, created_at"
Kernel = Callable[[Account | None], Awaitable[object]]


def _account(row: asyncpg.Record) -> Account:
    return Account(account_id=row["account_id"], package=row["package"],
                   limits=Limits.from_json(row["limits"]), frozen=row["frozen"],
                   created_at=row["created_at"], updated_at=row["updated_at"])


def _event(row: asyncpg.Record) -> Event:
    return Event(id=row["id"], account_id=row["account_id"], kind=row["kind"],
                 resource=row["resource"], severity=row["severity"], message=row["message"],
                 details=json.loads(row["details"]), created_at=row["created_at"])


class CgroupStore(PoolStore):
    service = "cgroupd"

    async def list_accounts(self) -> list[Account]:
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM cgroup_configs ORDER BY account_id")
        return [_account(r) for r in rows]

    async def get(self, account_id: str) -> Account:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM cgroup_configs WHERE account_id = $1", account_id)
        if row is None:
            raise account_not_found(account_id)
        return _account(row)

    async def create(self, account_id: str, package: str, limits: Limits, actor: str,
                     kernel: Kernel) -> tuple[Account, Event]:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""INSERT INTO cgroup_configs (account_id, package, limits) VALUES ($1, $2, $3::jsonb)
                    ON CONFLICT (account_id) DO NOTHING RETURNING {_COLUMNS}""",
                account_id, package, limits.to_json())
            if row is None:
                raise FailedPrecondition(f"account {account_id!r} already exists; use UpdateLimits")
            account = _account(row)
            await kernel(None)
            event = await self._record(conn, actor, "created", account, {"limits": limits.to_json()},
                                       f"created with package {package}")
        return account, event

    async def change(self, account_id: str, actor: str, kind: str, kernel: Kernel, *,
                     limits: Limits | None = None, frozen: bool | None = None) -> tuple[Account, Event]:
        """Update limits and/or frozen under the row lock, with the kernel change."""
        async with self._pool.acquire() as conn, conn.transaction():
            before = await self._locked(conn, account_id)
            row = await conn.fetchrow(
                f"""UPDATE cgroup_configs SET limits = COALESCE($2::jsonb, limits),
                        frozen = COALESCE($3, frozen), updated_at = now()
                    WHERE account_id = $1 RETURNING {_COLUMNS}""",
                account_id, None if limits is None else limits.to_json(), frozen)
            assert row is not None  # locked above
            after = _account(row)
            await kernel(before)
            details = {"before": before.limits.to_json(), "after": after.limits.to_json(),
                       "frozen": after.frozen}
            event = await self._record(conn, actor, kind, after, details, f"{kind} by {actor}")
        return after, event

    async def delete(self, account_id: str, actor: str, kernel: Kernel) -> Event:
        async with self._pool.acquire() as conn, conn.transaction():
            before = await self._locked(conn, account_id)
            killed = await kernel(before)
            await conn.execute("DELETE FROM cgroup_configs WHERE account_id = $1", account_id)
            return await self._record(conn, actor, "deleted", before, {"killed": killed},
                                      f"deleted; {killed} process(es) killed")

    async def audit_only(self, account_id: str, actor: str, action: str, details: dict[str, object]) -> None:
        """An acknowledged change with no configuration row change (MoveProcesses)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await self._locked(conn, account_id)
            await audit.record(conn, audit.AuditEntry(
                actor=actor, action=f"cgroup.{action}", target_type="account", target_id=account_id,
                details=details))

    async def _locked(self, conn: Connection, account_id: str) -> Account:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM cgroup_configs WHERE account_id = $1 FOR UPDATE", account_id)
        if row is None:
            raise account_not_found(account_id)
        return _account(row)

    async def _record(self, conn: Connection, actor: str, kind: str, account: Account,
                      details: dict[str, object], message: str) -> Event:
        severity = "warning" if kind in ("deleted", "frozen") else "info"
        event = (await insert_events(conn, [Event(account.account_id, kind, severity, message,
                                                  details=details)]))[0]
        await audit.record(conn, audit.AuditEntry(
            actor=actor, action=f"cgroup.{kind}", target_type="account", target_id=account.account_id,
            details={**details, "package": account.package}))
        return event

    async def add_events(self, events: Iterable[Event]) -> list[Event]:
        batch = list(events)
        if not batch:
            return []
        async with self._pool.acquire() as conn:
            return await insert_events(conn, batch)

    async def events_after(self, since_id: int, account_id: str | None, limit: int = 1000) -> list[Event]:
        rows = await self._pool.fetch(
            f"""SELECT {_EVENT_COLUMNS} FROM cgroup_events
                WHERE id > $1 AND ($2::text IS NULL OR account_id = $2) ORDER BY id LIMIT $3""",
            since_id, account_id, limit)
        return [_event(r) for r in rows]


async def insert_events(conn: Connection, events: list[Event]) -> list[Event]:
    rows = await conn.fetch(
        f"""INSERT INTO cgroup_events (account_id, kind, resource, severity, message, details)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])
            RETURNING {_EVENT_COLUMNS}""",
        [e.account_id for e in events], [e.kind for e in events], [e.resource for e in events],
        [e.severity for e in events], [e.message for e in events],
        [json.dumps(dict(e.details), default=str) for e in events])
    return [_event(r) for r in rows]
