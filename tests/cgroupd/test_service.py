"""cgroupd over gRPC with real PostgreSQL, in simulation mode over tmp_path:
the API, audit in the same transaction, bad input that changes nothing, the
flag gate, the reconciler and events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import grpc
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from npanel.cgroupd.fs import SimulatedFs
from npanel.cgroupd.main import CgroupdService
from npanel.cgroupd.v1 import cgroupd_pb2 as pb
from npanel.cgroupd.v1 import cgroupd_pb2_grpc
from npanel.common.server import running
from npanel.common.settings import CgroupdSettings, ServiceSettings

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from npanel.cgroupd.v1.cgroupd_pb2_grpc import CgroupServiceAsyncStub

pytestmark = pytest.mark.integration
MiB = 1 << 20


class Flags:
    def __init__(self) -> None:
        self.on = True

    def is_enabled(self, flag: str, account_id: str | None = None) -> bool:
        return self.on and flag == "cgroups_isolation"


@dataclass
class Stack:
    service: CgroupdService
    stub: CgroupServiceAsyncStub
    flags: Flags
    root: Path
    registry: CollectorRegistry
    conn: asyncpg.Connection


@pytest_asyncio.fixture
async def stack(database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    env = {"NPANEL_DATABASE_URL": database_url, "NPANEL_CGROUPD_LISTEN": "127.0.0.1:0",
           "NPANEL_CGROUPD_METRICS_LISTEN": "127.0.0.1:0", "NPANEL_SHUTDOWN_GRACE": "1",
           "NPANEL_CGROUPD_RECONCILE_INTERVAL": "3600", "NPANEL_CGROUPD_EVENT_INTERVAL": "3600"}
    settings = ServiceSettings.read("cgroupd", env)
    config = CgroupdSettings.from_environ({**env, "NPANEL_CGROUPD_MODE": "simulation"})
    flags, root = Flags(), tmp_path / "mnt" / "npanel.slice"
    service = CgroupdService(settings, config, gate=flags, fs=(SimulatedFs(root.parent), root))
    registry = CollectorRegistry()
    conn = await asyncpg.connect(database_url)
    async with running(service, settings, registry) as handle, \
            grpc.aio.insecure_channel(handle.address) as channel:
        yield Stack(service, cgroupd_pb2_grpc.CgroupServiceStub(channel), flags, root, registry, conn)
    await conn.close()


async def _error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def _rows(s: Stack) -> tuple[int, int, int]:
    return (await s.conn.fetchval("SELECT count(*) FROM cgroup_configs"),
            await s.conn.fetchval("SELECT count(*) FROM cgroup_events"),
            await s.conn.fetchval("SELECT count(*) FROM audit_log"))


def _create(account: str = "alice", package: str = "basic", **limits: int) -> pb.CreateAccountRequest:
    return pb.CreateAccountRequest(account_id=account, package=package,
                                   limits=pb.Limits(**limits),  # type: ignore[arg-type]
                                   actor="ops")


@pytest.mark.asyncio
async def test_lifecycle_is_audited_and_labelled_simulated(stack: Stack) -> None:
    account = await stack.stub.CreateAccount(_create(pids_max=100), timeout=10)
    assert account.simulated and account.package == "basic"
    assert account.limits.cpu_percent == 25 and account.limits.pids_max == 100
    assert (stack.root / "alice" / "cpu.max").read_text() == "25000 100000"
    updated = await stack.stub.UpdateLimits(pb.UpdateLimitsRequest(
        account_id="alice", limits=pb.Limits(memory_max_bytes=128 * MiB), actor="ops"), timeout=10)
    assert updated.limits.memory_max_bytes == 128 * MiB and updated.limits.cpu_percent == 25
    assert (await stack.stub.Freeze(pb.FreezeRequest(account_id="alice", actor="ops"), timeout=10)).frozen
    assert "frozen 1" in (stack.root / "alice" / "cgroup.events").read_text()
    assert not (await stack.stub.Thaw(pb.ThawRequest(account_id="alice", actor="ops"), timeout=10)).frozen
    stats = await stack.stub.GetStats(pb.GetStatsRequest(account_ids=["alice"]), timeout=10)
    assert stats.simulated and stats.stats[0].pids.max == 100
    listing = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=10)
    assert [a.account_id for a in listing.accounts] == ["alice"]
    deleted = await stack.stub.DeleteAccount(pb.DeleteAccountRequest(account_id="alice", actor="ops"),
                                             timeout=10)
    assert deleted.simulated and not (stack.root / "alice").exists()
    actions = [r["action"] for r in await stack.conn.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["cgroup.created", "cgroup.updated", "cgroup.frozen", "cgroup.thawed", "cgroup.deleted"]
    kinds = [r["kind"] for r in await stack.conn.fetch("SELECT kind FROM cgroup_events ORDER BY id")]
    assert kinds == ["created", "updated", "frozen", "thawed", "deleted"]
    assert stack.registry.get_sample_value("npanel_cgroupd_simulated") == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(("request_", "code", "named"), [
    (_create("Bad.Name"), grpc.StatusCode.INVALID_ARGUMENT, "account_id='Bad.Name'"),
    (_create("user-1000.slice"), grpc.StatusCode.INVALID_ARGUMENT, "account_id='user-1000.slice'"),
    (_create(cpu_percent=1000), grpc.StatusCode.INVALID_ARGUMENT, "cpu_percent=1000"),
    (_create(memory_max_bytes=1 * MiB), grpc.StatusCode.INVALID_ARGUMENT, "memory_max_bytes=1048576"),
    (_create(pids_max=3), grpc.StatusCode.INVALID_ARGUMENT, "pids_max=3"),
    (_create(package="gold"), grpc.StatusCode.INVALID_ARGUMENT, "package='gold'"),
    (pb.CreateAccountRequest(account_id="a", limits=pb.Limits(io=[pb.IoLimit(device="/dev/nope", wbps=1)]),
                             actor="ops"), grpc.StatusCode.INVALID_ARGUMENT, "io.device='/dev/nope'"),
    (pb.CreateAccountRequest(account_id="a"), grpc.StatusCode.INVALID_ARGUMENT, "actor=''"),
])
async def test_bad_input_is_named_and_changes_nothing(stack: Stack, request_: pb.CreateAccountRequest,
                                                      code: grpc.StatusCode, named: str) -> None:
    before = await _rows(stack)
    error = await _error(stack.stub.CreateAccount(request_, timeout=10))
    assert error.code() == code and named in (error.details() or "")
    assert await _rows(stack) == before
    assert not stack.root.exists() or [p.name for p in stack.root.iterdir() if p.is_dir()] == []


@pytest.mark.asyncio
async def test_unknown_account_and_missing_controller(stack: Stack) -> None:
    for call in (stack.stub.UpdateLimits(pb.UpdateLimitsRequest(account_id="ghost", actor="ops",
                                                                limits=pb.Limits(pids_max=20)), timeout=10),
                 stack.stub.DeleteAccount(pb.DeleteAccountRequest(account_id="ghost", actor="ops"),
                                          timeout=10),
                 stack.stub.GetStats(pb.GetStatsRequest(account_ids=["ghost"]), timeout=10)):
        error = await _error(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND and "'ghost'" in (error.details() or "")
    (stack.root.parent / "cgroup.controllers").write_text("cpu memory")
    before = await _rows(stack)
    error = await _error(stack.stub.CreateAccount(_create("bob"), timeout=10))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "pids" in (error.details() or "")
    assert await _rows(stack) == before and not (stack.root / "bob").exists()


@pytest.mark.asyncio
async def test_flag_off_refuses_changes_and_pauses_the_reconciler(stack: Stack) -> None:
    await stack.stub.CreateAccount(_create("carol"), timeout=10)
    stack.flags.on = False
    before = await _rows(stack)
    error = await _error(stack.stub.Freeze(pb.FreezeRequest(account_id="carol", actor="ops"), timeout=10))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "cgroups_isolation" in (error.details() or "")
    assert await _rows(stack) == before
    (stack.root / "carol" / "pids.max").write_text("max")
    assert await stack.service.accounts.reconcile() is None
    assert (stack.root / "carol" / "pids.max").read_text() == "max"
    listing = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=10)
    assert [a.account_id for a in listing.accounts] == ["carol"]


@pytest.mark.asyncio
async def test_reconciler_recreates_rewrites_and_reports_unknown(stack: Stack) -> None:
    await stack.stub.CreateAccount(_create("dora"), timeout=10)
    await stack.stub.CreateAccount(_create("erin"), timeout=10)
    stack.service.groups.delete("dora", 1)
    (stack.root / "erin" / "pids.max").write_text("max")
    stack.service.groups.create("stray", None)
    report = await stack.service.accounts.reconcile()
    assert report is not None and report.complete
    assert report.recreated == ["dora"] and report.rewritten == [("erin", "pids.max")]
    assert report.unknown == ["stray"] and (stack.root / "stray").exists()
    assert (stack.root / "erin" / "pids.max").read_text() == "256"


@pytest.mark.asyncio
async def test_limit_hits_become_events_streams_and_metrics(stack: Stack) -> None:
    await stack.stub.CreateAccount(_create("fred"), timeout=10)
    await stack.service.sample()
    (stack.root / "fred" / "pids.events").write_text("max 3\n")
    (stack.root / "fred" / "memory.events").write_text("low 0\nhigh 0\nmax 1\noom 1\noom_kill 1\n")
    stream = stack.stub.WatchEvents(pb.WatchEventsRequest(account_id="fred", since_id=1), timeout=10)
    await stack.service.sample()
    seen = []
    async for event in stream:
        seen.append((event.kind, event.resource))
        if len(seen) == 3:
            break
    stream.cancel()
    assert sorted(seen) == [("limit_exceeded", "memory"), ("limit_exceeded", "pids"), ("oom_kill", "memory")]
    labels = {"account_id": "fred", "resource_type": "pids"}
    assert stack.registry.get_sample_value("npanel_cgroups_limit_exceeded_total", labels) == 3
    assert stack.registry.get_sample_value("npanel_account_count") == 1
