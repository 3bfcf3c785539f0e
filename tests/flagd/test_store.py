"""FlagStore against real PostgreSQL: atomic history, validation, pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from npanel.common.audit import verify_chain
from npanel.common.errors import InvalidArgument, NotFound
from npanel.flagd.model import FlagChange, ToggleQuery
from npanel.flagd.store import FlagStore

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield p
    await p.close()


async def _counts(pool: asyncpg.Pool) -> tuple[int, int]:
    toggles = await pool.fetchval("SELECT count(*) FROM feature_flag_toggles")
    audits = await pool.fetchval("SELECT count(*) FROM audit_log")
    return toggles, audits


@pytest.mark.asyncio
async def test_fifteen_flags_seeded_all_disabled(pool: asyncpg.Pool) -> None:
    flags = await FlagStore(pool).list_flags()
    assert len(flags) == 15
    assert not any(f.enabled for f in flags)
    assert {f.track for f in flags} == {"A", "B", "C"}


@pytest.mark.asyncio
async def test_acknowledged_toggle_has_its_toggle_and_audit_rows(pool: asyncpg.Pool) -> None:
    store = FlagStore(pool)
    flag, action = await store.set_flag(
        FlagChange("agent_watchdog", "alice", "roll out watchdog", enabled=True))
    assert flag.enabled and action == "enabled"
    row = await pool.fetchrow("SELECT * FROM feature_flag_toggles")
    assert row is not None
    assert (row["feature_name"], row["actor"], row["action"], row["reason"]) == (
        "agent_watchdog", "alice", "enabled", "roll out watchdog")
    assert row["revision"] == flag.revision
    audit = await pool.fetchrow("SELECT actor, action, target_id FROM audit_log")
    assert audit is not None
    assert tuple(audit) == ("alice", "flag.enabled", "agent_watchdog")
    async with pool.acquire() as conn:
        assert await verify_chain(conn) == []


@pytest.mark.asyncio
async def test_failed_audit_insert_leaves_no_trace(pool: asyncpg.Pool) -> None:
    # Make the audit insert itself fail, as the original draft's did silently.
    await pool.execute("""
        CREATE FUNCTION fail_audit() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'audit storage failure'; END $$;
        CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log
            FOR EACH ROW EXECUTE FUNCTION fail_audit();
    """)
    store = FlagStore(pool)
    with pytest.raises(asyncpg.RaiseError, match="audit storage failure"):
        await store.set_flag(FlagChange("agent_watchdog", "alice", "try", enabled=True))
    assert await _counts(pool) == (0, 0)
    assert not await pool.fetchval("SELECT enabled FROM feature_flags WHERE name = 'agent_watchdog'")


@pytest.mark.asyncio
@pytest.mark.parametrize(("change", "error"), [
    (FlagChange("agent_watchdog", "alice", "r", rollout_percent=150), InvalidArgument),
    (FlagChange("agent_watchdog", "", "r", enabled=True), InvalidArgument),
    (FlagChange("agent_watchdog", "alice", "", enabled=True), InvalidArgument),
    (FlagChange("no_such_flag", "alice", "r", enabled=True), NotFound),
])
async def test_bad_input_changes_nothing(
    pool: asyncpg.Pool, change: FlagChange, error: type[Exception]
) -> None:
    before = await pool.fetch("SELECT * FROM feature_flags ORDER BY name")
    with pytest.raises(error):
        await FlagStore(pool).set_flag(change)
    assert await pool.fetch("SELECT * FROM feature_flags ORDER BY name") == before
    assert await _counts(pool) == (0, 0)


@pytest.mark.asyncio
async def test_no_op_change_writes_no_history(pool: asyncpg.Pool) -> None:
    flag, action = await FlagStore(pool).set_flag(
        FlagChange("agent_watchdog", "alice", "r", enabled=False))
    assert action is None and not flag.enabled
    assert await _counts(pool) == (0, 0)


@pytest.mark.asyncio
async def test_disable_all_is_one_transaction_with_rollback_rows(pool: asyncpg.Pool) -> None:
    store = FlagStore(pool)
    for name in ("agent_watchdog", "cgroups_isolation", "smart_defaults"):
        await store.set_flag(FlagChange(name, "alice", "on", enabled=True))
    disabled = await store.disable_all("bob", "incident 42")
    assert sorted(f.name for f in disabled) == ["agent_watchdog", "cgroups_isolation", "smart_defaults"]
    assert not await pool.fetchval("SELECT bool_or(enabled) FROM feature_flags")
    rows = await pool.fetch("SELECT action, actor FROM feature_flag_toggles WHERE action = 'rollback'")
    assert len(rows) == 3 and {r["actor"] for r in rows} == {"bob"}
    assert await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'flags.disable_all'") == 1


@pytest.mark.asyncio
async def test_changed_since_and_revision_order(pool: asyncpg.Pool) -> None:
    store = FlagStore(pool)
    start = max(f.revision for f in await store.list_flags())
    a, _ = await store.set_flag(FlagChange("agent_watchdog", "alice", "r", enabled=True))
    b, _ = await store.set_flag(FlagChange("smart_defaults", "alice", "r", rollout_percent=10))
    assert start < a.revision < b.revision
    assert [f.name for f in await store.changed_since(start)] == ["agent_watchdog", "smart_defaults"]
    assert [f.name for f in await store.changed_since(a.revision)] == ["smart_defaults"]


@pytest.mark.asyncio
async def test_toggle_history_pages_newest_first(pool: asyncpg.Pool) -> None:
    store = FlagStore(pool)
    for pct in range(1, 8):
        await store.set_flag(FlagChange("smart_defaults", "alice", f"step {pct}", rollout_percent=pct))
    await store.set_flag(FlagChange("agent_watchdog", "alice", "other", enabled=True))
    first = await store.list_toggles(ToggleQuery("smart_defaults", None, None, 5, None))
    rest = await store.list_toggles(ToggleQuery("smart_defaults", None, None, 5, first[-1].id))
    assert [t.new_rollout_percent for t in first + rest] == [7, 6, 5, 4, 3, 2, 1]
    assert {t.flag for t in first + rest} == {"smart_defaults"}
