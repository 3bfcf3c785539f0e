from __future__ import annotations

import asyncio
from itertools import pairwise

import asyncpg
import pytest

from npanel.common.audit import AuditEntry, AuditError, head, record, verify_chain
from npanel.common.logs import request_id_var

pytestmark = pytest.mark.integration


def _entry(n: int) -> AuditEntry:
    return AuditEntry(actor="admin", action="flag.enable", target_type="flag",
                      target_id=f"f{n}", details={"n": n})


async def _append(conn: asyncpg.Connection, n: int) -> int:
    async with conn.transaction():
        return await record(conn, _entry(n))


@pytest.mark.asyncio
async def test_appended_rows_form_an_intact_chain(conn: asyncpg.Connection) -> None:
    ids = [await _append(conn, n) for n in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    assert await verify_chain(conn) == []
    rows = await conn.fetch("SELECT prev_hash, row_hash FROM audit_log ORDER BY id")
    assert rows[0]["prev_hash"] == b"\x00" * 32
    for prev, cur in pairwise(rows):
        assert cur["prev_hash"] == prev["row_hash"]
    newest = await head(conn)
    assert newest is not None and newest[0] == 5


@pytest.mark.asyncio
async def test_request_id_comes_from_the_call_context(conn: asyncpg.Connection) -> None:
    token = request_id_var.set("req-7")
    try:
        await _append(conn, 1)
    finally:
        request_id_var.reset(token)
    assert await conn.fetchval("SELECT request_id FROM audit_log") == "req-7"


@pytest.mark.asyncio
@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET actor = 'mallory'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
])
async def test_update_delete_truncate_are_refused(conn: asyncpg.Connection, statement: str) -> None:
    await _append(conn, 1)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute(statement)
    assert await conn.fetchval("SELECT actor FROM audit_log") == "admin"


@pytest.mark.asyncio
async def test_altered_row_is_detected(conn: asyncpg.Connection) -> None:
    for n in range(4):
        await _append(conn, n)
    # Tampering needs the table owner to switch the guard off first.
    await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_immutable")
    await conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 2")
    await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_immutable")
    problems = await verify_chain(conn)
    assert [(p.id, p.problem) for p in problems] == [
        (2, "contents do not match row_hash (row was altered)")
    ]


@pytest.mark.asyncio
async def test_deleted_row_is_detected(conn: asyncpg.Connection) -> None:
    for n in range(4):
        await _append(conn, n)
    await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_immutable")
    await conn.execute("DELETE FROM audit_log WHERE id = 3")
    await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_immutable")
    problems = await verify_chain(conn)
    assert [p.id for p in problems] == [4]
    assert "rows missing before this one" in problems[0].problem


@pytest.mark.asyncio
async def test_recording_outside_a_transaction_is_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(AuditError, match="inside the transaction"):
        await record(conn, _entry(1))
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0


@pytest.mark.asyncio
async def test_rolled_back_change_leaves_no_row_and_no_gap(conn: asyncpg.Connection) -> None:
    with pytest.raises(RuntimeError):
        async with conn.transaction():
            await record(conn, _entry(1))
            raise RuntimeError("the change itself failed")
    assert await _append(conn, 2) == 1
    assert await verify_chain(conn) == []


@pytest.mark.asyncio
async def test_concurrent_writers_keep_one_chain(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=8, max_size=8)
    try:
        async def writer(w: int) -> None:
            for n in range(10):
                async with pool.acquire() as c, c.transaction():
                    await record(c, _entry(w * 100 + n))

        await asyncio.gather(*(writer(w) for w in range(8)))
        async with pool.acquire() as c:
            assert await c.fetchval("SELECT count(*) FROM audit_log") == 80
            assert await verify_chain(c) == []
    finally:
        await pool.close()
