"""The gateway's HTTP/JSON side against real backends: routes, OFREP, OpenAPI, limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support.flagd import Replica
from tests.support.gateway import Gateway, start_echo, start_gateway

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def gw(database_url: str, flagd: Replica) -> AsyncIterator[Gateway]:
    async with start_echo() as echo, start_gateway(
            database_url, {"flagd": flagd.address, "echo": echo.address}, max_body=4096) as gateway:
        yield gateway


@pytest_asyncio.fixture
async def http(gw: Gateway) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {gw.tokens['admin']}"}
    async with aiohttp.ClientSession(base_url=gw.http, headers=headers) as session:
        yield session


async def _json(http: aiohttp.ClientSession, verb: str, path: str, status: int = 200,
                **kwargs: Any) -> Any:
    async with http.request(verb, path, **kwargs) as r:
        assert r.status == status, (verb, path, r.status, await r.text())
        return await r.json()


@pytest.mark.asyncio
async def test_flag_routes(http: aiohttp.ClientSession) -> None:
    flags = await _json(http, "GET", "/v1/flags")
    assert len(flags["flags"]) == 15
    one = await _json(http, "GET", "/v1/flags/agent_watchdog")
    assert one["name"] == "agent_watchdog" and one["enabled"] is False
    changed = await _json(http, "PATCH", "/v1/flags/agent_watchdog",
                          json={"enabled": True, "rolloutPercent": 50, "reason": "http"})
    assert changed["enabled"] is True and changed["rolloutPercent"] == 50
    e = await _json(http, "POST", "/v1/flags/agent_watchdog:evaluate", json={"context": {"accountId": "a1"}})
    assert e["reason"] == "SPLIT" and e["flag"] == "agent_watchdog"
    everything = await _json(http, "POST", "/v1/flags:evaluateAll", json={"context": {"accountId": "a1"}})
    assert len(everything["evaluations"]) == 15
    toggles = await _json(http, "GET", "/v1/toggles", params={"flag": "agent_watchdog", "pageSize": "10"})
    assert [t["action"] for t in toggles["toggles"]] == ["enabled"]
    off = await _json(http, "POST", "/v1/flags:disableAll", json={"reason": "drill"})
    assert off["disabled"] == ["agent_watchdog"]


@pytest.mark.asyncio
async def test_token_routes(http: aiohttp.ClientSession, gw: Gateway) -> None:
    created = await _json(http, "POST", "/v1/tokens", json={"name": "ci-bot", "role": "VIEWER"})
    assert created["secret"].startswith("npn_") and created["token"]["role"] == "VIEWER"
    names = [t["name"] for t in (await _json(http, "GET", "/v1/tokens"))["tokens"]]
    assert "ci-bot" in names
    me = await _json(http, "GET", "/v1/whoami")
    assert me["name"] == gw.names["admin"]
    revoked = await _json(http, "POST", "/v1/tokens/ci-bot:revoke", json={"reason": "rotated"})
    assert revoked["revokedAt"]


@pytest.mark.asyncio
async def test_bad_requests_name_the_field(http: aiohttp.ClientSession) -> None:
    bad = await _json(http, "PATCH", "/v1/flags/agent_watchdog", 400,
                      json={"rolloutPercent": 150, "reason": "x"})
    assert bad["code"] == 3 and "rollout_percent=150" in bad["message"]
    unknown = await _json(http, "PATCH", "/v1/flags/agent_watchdog", 400, json={"enabeld": True})
    assert "enabeld" in unknown["message"]
    assert (await _json(http, "GET", "/v1/flags/nope", 404))["code"] == 5
    assert "no route" in (await _json(http, "GET", "/v2/nothing", 404))["message"]
    notjson = await _json(http, "POST", "/v1/flags:evaluateAll", 400, data=b"{nope")
    assert "is not JSON" in notjson["message"]
    too_big = await _json(http, "POST", "/v1/flags:evaluateAll", 413, data=b"x" * 8192)
    assert "larger than 4096 bytes" in too_big["message"]


@pytest.mark.asyncio
async def test_watch_streams_ndjson(http: aiohttp.ClientSession) -> None:
    async with http.get("/v1/flags:watch") as r:
        assert r.status == 200 and r.headers["Content-Type"] == "application/x-ndjson"
        first = json.loads(await r.content.readline())
    assert first["result"]["kind"] == "SNAPSHOT" and len(first["result"]["flags"]) == 15


@pytest.mark.asyncio
async def test_ofrep_single_bulk_and_etag(http: aiohttp.ClientSession, flagd: Replica) -> None:
    one = await _json(http, "POST", "/ofrep/v1/evaluate/flags/smart_defaults",
                      json={"context": {"targetingKey": "acct1"}})
    assert one == {"key": "smart_defaults", "value": False, "reason": "DISABLED", "variant": "off",
                   "metadata": {"revision": one["metadata"]["revision"]}}
    missing = await _json(http, "POST", "/ofrep/v1/evaluate/flags/nope", 404, json={})
    assert missing["errorCode"] == "FLAG_NOT_FOUND"
    body = {"context": {"targetingKey": "acct1"}}
    async with http.post("/ofrep/v1/evaluate/flags", json=body) as r:
        assert r.status == 200 and len((await r.json())["flags"]) == 15
        tag = r.headers["ETag"]
    async with http.post("/ofrep/v1/evaluate/flags", json=body, headers={"If-None-Match": tag}) as r:
        assert r.status == 304 and await r.read() == b""
    async with http.post("/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": "acct2"}},
                         headers={"If-None-Match": tag}) as r:
        assert r.status == 200 and r.headers["ETag"] != tag  # another context
    await _json(http, "PATCH", "/v1/flags/smart_defaults", json={"enabled": True, "reason": "x"})
    async with http.post("/ofrep/v1/evaluate/flags", json=body, headers={"If-None-Match": tag}) as r:
        assert r.status == 200 and r.headers["ETag"] != tag  # a new revision


@pytest.mark.asyncio
async def test_openapi_lists_exactly_what_is_served(http: aiohttp.ClientSession, gw: Gateway) -> None:
    document = await _json(http, "GET", "/openapi.json")
    documented = {(verb.upper(), path) for path, ops in document["paths"].items() for verb in ops}
    served = {(r.http.verb, r.http.template) for r in gw.service.routes.values() if r.http}
    served |= {("POST", "/ofrep/v1/evaluate/flags/{key}"), ("POST", "/ofrep/v1/evaluate/flags")}
    assert documented == served
    for verb, template in served:
        path = template.replace("{name}", "x").replace("{flag}", "x").replace("{key}", "x")
        async with http.request(verb, path, data=b"{}") as r:
            body = await r.json()
            assert not (r.status == 404 and "no route" in str(body.get("message"))), (verb, path)


@pytest.mark.asyncio
async def test_request_id_is_returned_and_propagated(http: aiohttp.ClientSession) -> None:
    async with http.get("/v1/flags", headers={"X-Request-Id": "req-http-1"}) as r:
        assert r.headers["X-Request-Id"] == "req-http-1"
    async with http.get("/v1/flags") as r:
        assert len(r.headers["X-Request-Id"]) == 32
    async with http.patch("/v1/flags/audit_logs_v2", json={"enabled": True, "reason": "rid"},
                          headers={"X-Request-Id": "req-http-2"}):
        pass
    toggles = await _json(http, "GET", "/v1/toggles", params={"flag": "audit_logs_v2"})
    assert toggles["toggles"][0]["requestId"] == "req-http-2"


@pytest.mark.asyncio
async def test_api_metrics_by_route_template(http: aiohttp.ClientSession, gw: Gateway) -> None:
    await _json(http, "GET", "/v1/flags/agent_watchdog")
    labels = {"method": "GET", "endpoint": "/v1/flags/{name}", "status_code": "200"}
    assert gw.registry.get_sample_value("npanel_api_requests_total", labels) == 1
    assert gw.registry.get_sample_value(
        "npanel_api_response_time_seconds_count", {"method": "GET", "endpoint": "/v1/flags/{name}"}) == 1
