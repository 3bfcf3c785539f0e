"""The audit log: one row per acknowledged change, written in the change's transaction.

The chain itself (ids, prev_hash, row_hash) is maintained by the database trigger
of migration 0001, so no writer can append outside it; this module only records
and verifies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .db import Connection
from .logs import request_id_var


class AuditError(RuntimeError):
    """An audit row could not be written the way the rules require."""


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    action: str
    target_type: str
    target_id: str
    details: Mapping[str, Any] = field(default_factory=dict)
    # Defaults to the id of the request being handled (see logs.request_id_var).
    request_id: str | None = None


@dataclass(frozen=True)
class ChainProblem:
    id: int
    problem: str


async def record(conn: Connection, entry: AuditEntry) -> int:
    """Append `entry` inside the caller's open transaction; return its id.

    Refusing to run outside a transaction is what guarantees that an
    acknowledged change has its audit row and a rolled-back one has none.
    Call it last in the transaction: the chain lock is held until commit.
    """
    if not conn.is_in_transaction():
        raise AuditError(
            f"audit row for {entry.action} on {entry.target_type}/{entry.target_id} must be "
            "written inside the transaction that makes the change"
        )
    request_id = entry.request_id or request_id_var.get() or None
    audit_id: int = await conn.fetchval(
        """
        INSERT INTO audit_log (actor, action, target_type, target_id, request_id, details)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb)
        RETURNING id
        """,
        entry.actor, entry.action, entry.target_type, entry.target_id, request_id,
        json.dumps(dict(entry.details), sort_keys=True, default=str),
    )
    return audit_id


async def verify_chain(conn: Connection) -> list[ChainProblem]:
    """Every break in the hash chain, in id order; empty when the log is intact."""
    rows = await conn.fetch("SELECT id, problem FROM npanel_audit_verify()")
    return [ChainProblem(r["id"], r["problem"]) for r in rows]


async def head(conn: Connection) -> tuple[int, str] | None:
    """The newest row's id and hash: worth recording elsewhere, since a chain
    rewritten from some row onwards is only detectable against a saved head."""
    row = await conn.fetchrow("SELECT id, row_hash FROM audit_log ORDER BY id DESC LIMIT 1")
    return None if row is None else (row["id"], bytes(row["row_hash"]).hex())
