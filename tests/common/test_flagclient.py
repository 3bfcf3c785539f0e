"""The shared flag client against a real flagd: follows changes, goes stale, catches up."""

from __future__ import annotations

import socket

import pytest
from prometheus_client import CollectorRegistry

from npanel.common.flagclient import FlagClient
from npanel.flagd.v1 import flagd_pb2 as pb
from tests.support.flagd import Replica, start_replica
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _toggle(replica: Replica, name: str, enabled: bool) -> int:
    flag = await replica.stub.SetFlag(
        pb.SetFlagRequest(name=name, enabled=enabled, actor="t", reason="t"), timeout=5)
    return int(flag.revision)


@pytest.mark.asyncio
async def test_follows_toggles_and_defaults_unknown_to_disabled(flagd: Replica) -> None:
    client = FlagClient(flagd.address)
    client.start()
    try:
        assert await client.wait_ready(5)
        assert not client.is_enabled("agent_watchdog")
        assert not client.is_enabled("never_heard_of_it")
        revision = await _toggle(flagd, "agent_watchdog", True)
        assert await client.wait_for_revision(revision, 5)
        assert client.is_enabled("agent_watchdog", "acct1")
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_stale_while_flagd_is_down_then_catches_up(database_url: str) -> None:
    listen = f"127.0.0.1:{_free_port()}"
    registry = CollectorRegistry()
    client = FlagClient(listen, registry)
    async with start_replica(database_url, listen) as first:
        client.start()
        assert await client.wait_ready(5)
        revision = await _toggle(first, "smart_defaults", True)
        assert await client.wait_for_revision(revision, 5)
        assert registry.get_sample_value("npanel_flag_client_stale") == 0
    try:
        # flagd is gone: the last known value is still served, marked stale.
        assert await eventually(lambda: client.stale, 5)
        assert registry.get_sample_value("npanel_flag_client_stale") == 1
        assert client.is_enabled("smart_defaults")
        async with start_replica(database_url, listen) as second:
            revision = await _toggle(second, "smart_defaults", False)
            assert await client.wait_for_revision(revision, 10)
            assert not client.is_enabled("smart_defaults") and not client.stale
            assert registry.get_sample_value("npanel_flag_client_reconnects_total") == 1
    finally:
        await client.close()
