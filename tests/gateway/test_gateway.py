"""The gateway with real flagd and echo backends: auth, roles, gating, limits, transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import grpc
import pytest
import pytest_asyncio

from npanel.flagd.v1 import flagd_pb2 as fpb
from npanel.flagd.v1 import flagd_pb2_grpc
from npanel.testing.v1 import testing_pb2 as tpb
from tests.support.flagd import Replica
from tests.support.gateway import Gateway, start_echo, start_gateway
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
ECHO = "/npanel.testing.v1.EchoService/Echo"


@pytest_asyncio.fixture
async def gw(database_url: str, flagd: Replica) -> AsyncIterator[Gateway]:
    async with start_echo() as echo, \
            start_gateway(database_url, {"flagd": flagd.address, "echo": echo.address}) as gateway:
        yield gateway


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def _enable(flagd: Replica, name: str, enabled: bool = True) -> None:
    await flagd.stub.SetFlag(fpb.SetFlagRequest(name=name, enabled=enabled, actor="t", reason="t"),
                             timeout=5)


@pytest.mark.asyncio
async def test_role_matrix_over_grpc(gw: Gateway) -> None:
    """Every exposed unary method: no token 401, a lower role 403, enough role passes auth."""
    rank = {"viewer": 1, "operator": 2, "admin": 3}
    for route in gw.service.routes.values():
        if route.server_streaming:
            continue
        call = gw.channel.unary_unary(route.full_method, None, None)
        assert await _code(call(b"", timeout=5)) == grpc.StatusCode.UNAUTHENTICATED, route.full_method
        for role in rank:
            code = await _code(call(b"", metadata=gw.auth(role), timeout=5))
            if rank[role] < route.role:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (route.full_method, role)
            else:
                assert code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), \
                    (route.full_method, role, code)


@pytest.mark.asyncio
async def test_unknown_or_revoked_token_is_refused(gw: Gateway) -> None:
    stub = flagd_pb2_grpc.FlagServiceStub(gw.channel)
    bad = (("authorization", "Bearer npn_not-a-real-token"),)
    assert await _code(stub.ListFlags(fpb.ListFlagsRequest(), metadata=bad, timeout=5)) \
        == grpc.StatusCode.UNAUTHENTICATED
    await gw.service.tokens.revoke(gw.names["viewer"], "test", "admin")
    await asyncio.sleep(2.1)  # the token cache's TTL
    assert await _code(stub.ListFlags(fpb.ListFlagsRequest(), metadata=gw.auth("viewer"), timeout=5)) \
        == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.asyncio
async def test_actor_is_the_token_name(gw: Gateway, database_url: str) -> None:
    stub = flagd_pb2_grpc.FlagServiceStub(gw.channel)
    await stub.SetFlag(fpb.SetFlagRequest(name="smart_defaults", enabled=True, actor="spoofed",
                                          reason="via gateway"), metadata=gw.auth("admin"), timeout=5)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval(
            "SELECT actor FROM audit_log WHERE action = 'flag.enabled'") == gw.names["admin"]
        assert await conn.fetchval("SELECT actor FROM feature_flag_toggles") == gw.names["admin"]
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_feature_gate_follows_the_flag(gw: Gateway, flagd: Replica) -> None:
    echo = gw.channel.unary_unary(ECHO, request_serializer=tpb.EchoRequest.SerializeToString,
                                  response_deserializer=tpb.EchoResponse.FromString)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await echo(tpb.EchoRequest(message="hi"), metadata=gw.auth("operator"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "Feature soak_testing is not enabled"
    async with aiohttp.ClientSession() as http, http.post(f"{gw.http}/v1/echo", json={"message": "hi"},
                         headers={"Authorization": f"Bearer {gw.tokens['operator']}"}) as r:
        assert r.status == 404 and (await r.json())["message"] == "Feature soak_testing is not enabled"
    started = time.monotonic()
    await _enable(flagd, "soak_testing")
    assert await eventually(lambda: gw.service.flags is not None
                            and gw.service.flags.is_enabled("soak_testing"), 2)
    took = time.monotonic() - started
    answer = await echo(tpb.EchoRequest(message="hi"), metadata=gw.auth("operator"), timeout=5)
    assert answer.message == "hi" and took < 2


@pytest.mark.asyncio
async def test_backend_errors_pass_through_and_a_dead_backend_is_named(
    database_url: str, flagd: Replica
) -> None:
    async with start_gateway(database_url, {"flagd": flagd.address, "echo": "127.0.0.1:1"}) as gw:
        await _enable(flagd, "soak_testing")
        assert await eventually(lambda: gw.service.flags is not None
                                and gw.service.flags.is_enabled("soak_testing"), 5)
        echo = gw.channel.unary_unary(ECHO, None, None)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await echo(tpb.EchoRequest().SerializeToString(), metadata=gw.auth("admin"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "backend echo at 127.0.0.1:1 is unavailable" in (caught.value.details() or "")
        assert time.monotonic() - started < 5  # never a hang
        async with aiohttp.ClientSession() as http, http.post(f"{gw.http}/v1/echo", json={},
                             headers={"Authorization": f"Bearer {gw.tokens['admin']}"}) as r:
            assert r.status == 503
        assert gw.registry.get_sample_value(
            "npanel_api_backend_errors_total", {"backend": "echo", "code": "UNAVAILABLE"}) == 2


@pytest.mark.asyncio
async def test_deadline_is_the_lower_of_the_gateways_and_the_clients(
    database_url: str, flagd: Replica
) -> None:
    async with start_echo() as echo, start_gateway(
            database_url, {"flagd": flagd.address, "echo": echo.address}, deadline_s=0.5) as gw:
        await _enable(flagd, "soak_testing")
        assert await eventually(lambda: gw.service.flags is not None
                                and gw.service.flags.is_enabled("soak_testing"), 5)
        call = gw.channel.unary_unary(ECHO, None, None)
        slow = tpb.EchoRequest(delay_ms=3000).SerializeToString()
        started = time.monotonic()
        assert await _code(call(slow, metadata=gw.auth("admin"), timeout=10)) \
            == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2  # the gateway's 0.5 s, not the client's 10 s
        started = time.monotonic()
        assert await _code(call(slow, metadata=gw.auth("admin"), timeout=0.2)) \
            == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 0.45


@pytest.mark.asyncio
async def test_rate_limits(database_url: str, flagd: Replica) -> None:
    async with start_gateway(database_url, {"flagd": flagd.address}, ip_per_min=5) as gw:
        stub = flagd_pb2_grpc.FlagServiceStub(gw.channel)
        for _ in range(5):
            await stub.ListFlags(fpb.ListFlagsRequest(), metadata=gw.auth("viewer"), timeout=5)
        call = stub.ListFlags(fpb.ListFlagsRequest(), metadata=gw.auth("viewer"), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        trailers: Any = caught.value.trailing_metadata() or ()
        assert dict(trailers).get("retry-after") == "12"
        async with aiohttp.ClientSession() as http, http.get(f"{gw.http}/v1/flags",
                            headers={"Authorization": f"Bearer {gw.tokens['viewer']}"}) as r:
            assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
    async with start_gateway(database_url, {"flagd": flagd.address}, token_per_min=3) as gw:
        stub = flagd_pb2_grpc.FlagServiceStub(gw.channel)
        codes = [await _code(stub.ListFlags(fpb.ListFlagsRequest(), metadata=gw.auth("admin"), timeout=5))
                 for _ in range(4)]
        assert codes[:3] == [grpc.StatusCode.OK] * 3 and codes[3] == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await _code(stub.ListFlags(fpb.ListFlagsRequest(), metadata=gw.auth("viewer"), timeout=5)) \
            == grpc.StatusCode.OK  # another token has its own bucket
        assert gw.registry.get_sample_value("npanel_api_rate_limited_total", {"scope": "token"}) == 1


@pytest.mark.asyncio
async def test_reflection_serves_the_exposed_services_like_grpcurl_needs(gw: Gateway) -> None:
    """What `grpcurl -plaintext 127.0.0.1:50050 list` and `describe` ask for."""
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(gw.channel)
    requests = [reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(
                    file_containing_symbol="npanel.flagd.v1.FlagService")]
    answers = [a async for a in stub.ServerReflectionInfo(iter(requests), timeout=5)]
    names = {s.name for s in answers[0].list_services_response.service}
    assert {"npanel.flagd.v1.FlagService", "npanel.watchdogd.v1.WatchdogService",
            "npanel.cgroupd.v1.CgroupService", "npanel.gateway.v1.TokenService"} <= names
    assert answers[1].file_descriptor_response.file_descriptor_proto  # descriptors for `describe`
