"""`npanel flags ...` as an operator runs it: through a running gateway to a running flagd."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.support.flagd import Replica
from tests.support.gateway import Gateway, start_gateway

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def gw(database_url: str, flagd: Replica) -> AsyncIterator[Gateway]:
    async with start_gateway(database_url, {"flagd": flagd.address}) as gateway:
        yield gateway


async def _npanel(gw: Gateway, *args: str, role: str = "admin") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "npanel.cli", "flags", "--gateway", gw.grpc_address,
        "--token", gw.tokens[role], *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return int(proc.returncode or 0), out.decode(), err.decode()


@pytest.mark.asyncio
async def test_list_json_has_every_field(gw: Gateway) -> None:
    code, out, _ = await _npanel(gw, "--json", "list")
    flags = json.loads(out)["flags"]
    assert code == 0 and len(flags) == 15
    assert all(f["enabled"] is False and f["rolloutPercent"] == 100 for f in flags)


@pytest.mark.asyncio
async def test_enable_rollout_history_for_people(gw: Gateway) -> None:
    code, out, _ = await _npanel(gw, "enable", "quota_enforcement", "--reason", "go")
    assert code == 0 and out.startswith("quota_enforcement: enabled, rollout 100%")
    code, out, _ = await _npanel(gw, "rollout", "quota_enforcement", "25", "--reason", "canary")
    assert code == 0 and "rollout 25%" in out
    code, out, _ = await _npanel(gw, "history", "quota_enforcement")
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "FLAG", "ACTION", "ACTOR", "CHANGE", "REASON"]
    assert "rollout" in lines[1] and "on/100% -> on/25%" in lines[1] and "canary" in lines[1]
    assert "enabled" in lines[2] and gw.names["admin"] in lines[2]  # the actor is the token's name


@pytest.mark.asyncio
async def test_bad_input_exits_non_zero_with_the_field(gw: Gateway) -> None:
    code, _, err = await _npanel(gw, "rollout", "quota_enforcement", "130", "--reason", "oops")
    assert code == 1 and "INVALID_ARGUMENT: rollout_percent=130" in err
    code, _, err = await _npanel(gw, "enable", "nope", "--reason", "x")
    assert code == 1 and "NOT_FOUND" in err and "npanel flags list" in err
    code, _, err = await _npanel(gw, "enable", "quota_enforcement")
    assert code == 2 and "--reason" in err
    code, out, _ = await _npanel(gw, "--json", "history")
    assert json.loads(out) == {"toggles": [], "nextPageToken": ""}
    code, _, err = await _npanel(gw, "enable", "quota_enforcement", "--reason", "x", role="viewer")
    assert code == 1 and "PERMISSION_DENIED" in err and "admin role" in err


@pytest.mark.asyncio
async def test_unreachable_flagd_says_what_to_check() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "npanel.cli", "flags", "--gateway", "127.0.0.1:1", "--token", "x", "list",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 1 and "is the gateway running at 127.0.0.1:1?" in err.decode()


@pytest.mark.asyncio
async def test_missing_token_says_how_to_get_one(gw: Gateway, tmp_path: object) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "npanel.cli", "flags", "--gateway", gw.grpc_address,
        "--token-file", "/nonexistent/token", "list", cwd=str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 1 and "UNAUTHENTICATED" in err.decode()
    assert "npanel tokens create" in err.decode()
