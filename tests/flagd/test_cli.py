"""`npanel flags ...` as an operator runs it, against a running flagd."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from tests.support.flagd import Replica

pytestmark = pytest.mark.integration


async def _npanel(replica: Replica, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "npanel.cli", "flags", "--flagd", replica.address, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return int(proc.returncode or 0), out.decode(), err.decode()


@pytest.mark.asyncio
async def test_list_json_has_every_field(flagd: Replica) -> None:
    code, out, _ = await _npanel(flagd, "--json", "list")
    flags = json.loads(out)["flags"]
    assert code == 0 and len(flags) == 15
    assert all(f["enabled"] is False and f["rolloutPercent"] == 100 for f in flags)


@pytest.mark.asyncio
async def test_enable_rollout_history_for_people(flagd: Replica) -> None:
    code, out, _ = await _npanel(flagd, "enable", "quota_enforcement", "--reason", "go", "--actor", "ops")
    assert code == 0 and out.startswith("quota_enforcement: enabled, rollout 100%")
    code, out, _ = await _npanel(flagd, "rollout", "quota_enforcement", "25", "--reason", "canary")
    assert code == 0 and "rollout 25%" in out
    code, out, _ = await _npanel(flagd, "history", "quota_enforcement")
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "FLAG", "ACTION", "ACTOR", "CHANGE", "REASON"]
    assert "rollout" in lines[1] and "on/100% -> on/25%" in lines[1] and "canary" in lines[1]
    assert "enabled" in lines[2] and "ops" in lines[2]


@pytest.mark.asyncio
async def test_bad_input_exits_non_zero_with_the_field(flagd: Replica) -> None:
    code, _, err = await _npanel(flagd, "rollout", "quota_enforcement", "130", "--reason", "oops")
    assert code == 1 and "INVALID_ARGUMENT: rollout_percent=130" in err
    code, _, err = await _npanel(flagd, "enable", "nope", "--reason", "x")
    assert code == 1 and "NOT_FOUND" in err and "npanel flags list" in err
    code, _, err = await _npanel(flagd, "enable", "quota_enforcement")
    assert code == 2 and "--reason" in err
    code, out, _ = await _npanel(flagd, "--json", "history")
    assert json.loads(out) == {"toggles": [], "nextPageToken": ""}


@pytest.mark.asyncio
async def test_unreachable_flagd_says_what_to_check() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "npanel.cli", "flags", "--flagd", "127.0.0.1:1", "list",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 1 and "is flagd running at 127.0.0.1:1?" in err.decode()
