"""flagd.evaluation.v1.Service against a real grpc.aio server on loopback.

The last test drives the real OpenFeature SDK and flagd provider (RPC mode) in
a subprocess: the provider bundles its own generated flagd.evaluation.v1 code,
which would collide with ours in protobuf's default descriptor pool.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import json_format, struct_pb2

from npanel.flagd.cache import SUBSCRIBER_BACKLOG, FlagCache
from npanel.flagd.evaluator import Evaluation, evaluate
from npanel.flagd.openfeature import OpenFeatureServicer, add_to_server
from npanel.openfeature.evaluation.v1 import evaluation_pb2 as pb
from npanel.openfeature.evaluation.v1 import evaluation_pb2_grpc
from tests.flagd.factories import make_flag
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ACCOUNTS = [f"acct-{i}" for i in range(40)]


@dataclass
class Served:
    server: grpc.aio.Server
    stub: evaluation_pb2_grpc.ServiceAsyncStub
    cache: FlagCache
    recorded: list[Evaluation]
    port: int


def sample_cache() -> FlagCache:
    cache = FlagCache()
    cache.apply([
        make_flag("always_on", revision=1, track="A"),
        make_flag("dark", enabled=False, revision=2, track="B"),
        make_flag("half", rollout=50, revision=3, track="C"),
    ])
    return cache


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Served]:
    cache, recorded = sample_cache(), list[Evaluation]()
    server = grpc.aio.server()
    add_to_server(OpenFeatureServicer(cache, recorded.append, keep_alive_s=0.2), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(server, evaluation_pb2_grpc.ServiceStub(channel), cache, recorded, port)
    finally:
        await channel.close(None)
        await server.stop(None)


def context(**fields: Any) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(fields)
    return struct


async def resolve(served: Served, key: str, **fields: Any) -> pb.ResolveBooleanResponse:
    return await served.stub.ResolveBoolean(pb.ResolveBooleanRequest(flag_key=key, context=context(**fields)))


@pytest.mark.asyncio
async def test_enabled_flag_is_on_static_with_metadata(served: Served) -> None:
    answer = await resolve(served, "always_on")
    assert (answer.value, answer.reason, answer.variant) == (True, "STATIC", "on")
    assert json_format.MessageToDict(answer.metadata) == {"revision": 1.0, "track": "A"}
    assert [(e.flag, e.value) for e in served.recorded] == [("always_on", True)]


@pytest.mark.asyncio
async def test_disabled_flag_is_off_with_reason_disabled(served: Served) -> None:
    answer = await resolve(served, "dark", targetingKey="acct-1")
    assert (answer.value, answer.reason, answer.variant) == (False, "DISABLED", "off")
    assert len(served.recorded) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "request_type"), [
    ("ResolveString", pb.ResolveStringRequest),
    ("ResolveInt", pb.ResolveIntRequest),
    ("ResolveFloat", pb.ResolveFloatRequest),
    ("ResolveObject", pb.ResolveObjectRequest),
])
async def test_non_boolean_resolve_is_type_mismatch(served: Served, method: str, request_type: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await getattr(served.stub, method)(request_type(flag_key="always_on"))
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (error.value.details() or "").startswith("TYPE_MISMATCH: flag 'always_on'")
    assert served.recorded == []


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "request_type"), [
    ("ResolveBoolean", pb.ResolveBooleanRequest),
    ("ResolveString", pb.ResolveStringRequest),
    ("ResolveInt", pb.ResolveIntRequest),
    ("ResolveFloat", pb.ResolveFloatRequest),
    ("ResolveObject", pb.ResolveObjectRequest),
])
async def test_unknown_flag_is_not_found(served: Served, method: str, request_type: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await getattr(served.stub, method)(request_type(flag_key="no_such_flag"))
    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    assert (error.value.details() or "").startswith("FLAG_NOT_FOUND: flag 'no_such_flag'")
    assert served.recorded == []


@pytest.mark.asyncio
async def test_partial_rollout_is_decided_per_targeting_key(served: Served) -> None:
    flag = served.cache.get("half")
    assert flag is not None
    answers = {}
    for account in ACCOUNTS:
        first = await resolve(served, "half", targetingKey=account)
        again = await resolve(served, "half", targetingKey=account)
        assert (first.value, first.reason) == (again.value, "SPLIT")
        assert first.value == evaluate(flag, account).value
        assert first.variant == ("on" if first.value else "off")
        answers[account] = first.value
    assert set(answers.values()) == {True, False}  # 40 accounts at 50 %: both sides occur


@pytest.mark.asyncio
async def test_account_id_is_the_fallback_for_targeting_key(served: Served) -> None:
    flag = served.cache.get("half")
    assert flag is not None
    for account in ACCOUNTS[:10]:
        # The python provider sends targetingKey null when the context has none.
        answer = await resolve(served, "half", targetingKey=None, account_id=account)
        assert answer.value == evaluate(flag, account).value


@pytest.mark.asyncio
async def test_partial_rollout_without_targeting_key_is_off(served: Served) -> None:
    answer = await resolve(served, "half")
    assert (answer.value, answer.reason, answer.variant) == (False, "ERROR", "off")
    assert answer.metadata.fields["error"].string_value == "TARGETING_KEY_MISSING"
    assert served.recorded[-1].error == "TARGETING_KEY_MISSING"


@pytest.mark.asyncio
async def test_resolve_all_answers_every_flag_for_the_context(served: Served) -> None:
    account = next(a for a in ACCOUNTS if evaluate(make_flag("half", rollout=50), a).value)
    answer = await served.stub.ResolveAll(pb.ResolveAllRequest(context=context(targetingKey=account)))
    got = {key: (f.bool_value, f.reason, f.variant) for key, f in answer.flags.items()}
    assert got == {
        "always_on": (True, "STATIC", "on"),
        "dark": (False, "DISABLED", "off"),
        "half": (True, "SPLIT", "on"),
    }
    assert all(f.WhichOneof("value") == "bool_value" for f in answer.flags.values())
    assert answer.flags["dark"].metadata.fields["track"].string_value == "B"
    assert sorted(e.flag for e in served.recorded) == ["always_on", "dark", "half"]


async def next_event(stream: Any) -> pb.EventStreamResponse:
    response: pb.EventStreamResponse = await asyncio.wait_for(stream.read(), 5)
    return response


@pytest.mark.asyncio
async def test_event_stream_sends_ready_then_changes(served: Served) -> None:
    stream = served.stub.EventStream(pb.EventStreamRequest())
    ready = await next_event(stream)
    assert ready.type == "provider_ready"
    served.cache.apply([make_flag("always_on", enabled=False, revision=10)])
    change = await next_event(stream)
    assert change.type == "configuration_change"
    assert json_format.MessageToDict(change.data) == {"flags": {"always_on": {"type": "update"}}}
    served.cache.apply([make_flag("brand_new", revision=11)])
    change = await next_event(stream)
    assert json_format.MessageToDict(change.data) == {"flags": {"brand_new": {"type": "write"}}}
    stream.cancel()


@pytest.mark.asyncio
async def test_event_stream_keeps_alive_when_idle(served: Served) -> None:
    stream = served.stub.EventStream(pb.EventStreamRequest())
    assert (await next_event(stream)).type == "provider_ready"
    keep_alive = await next_event(stream)  # the fixture's interval is 0.2 s
    assert keep_alive.type == "keep_alive"
    assert not keep_alive.HasField("data")
    stream.cancel()


@pytest.mark.asyncio
async def test_lagging_event_stream_ends_unavailable(served: Served) -> None:
    stream = served.stub.EventStream(pb.EventStreamRequest())
    assert (await next_event(stream)).type == "provider_ready"
    # No await in between: the stream cannot drain while the changes pile up.
    for revision in range(100, 100 + SUBSCRIBER_BACKLOG + 1):
        served.cache.apply([make_flag("always_on", revision=revision)])
    with pytest.raises(grpc.aio.AioRpcError) as error:
        while True:
            await next_event(stream)
    assert error.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "reconnect" in (error.value.details() or "")


@pytest.mark.asyncio
async def test_server_shutdown_ends_the_event_stream(served: Served) -> None:
    stream = served.stub.EventStream(pb.EventStreamRequest())
    assert (await next_event(stream)).type == "provider_ready"
    assert served.cache.watchers == 1
    await served.server.stop(0.1)
    with pytest.raises(grpc.aio.AioRpcError):
        while True:
            await next_event(stream)
    # The server unsubscribes when its generator is closed, just after the client sees the end.
    assert await eventually(lambda: served.cache.watchers == 0, 2)


SDK_SCRIPT = """
import json, sys
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext

port, accounts = int(sys.argv[1]), json.loads(sys.argv[2])
api.set_provider_and_wait(FlagdProvider(
    host="127.0.0.1", port=port, resolver_type=ResolverType.RPC, deadline_ms=5000))
client = api.get_client()
out = {}
for key in ("always_on", "dark", "no_such_flag"):
    # Default True: a disabled flag answered with the caller's default would show.
    details = client.get_boolean_details(key, True)
    code = details.error_code.value if details.error_code else None
    out[key] = [details.value, str(details.reason.value if hasattr(details.reason, "value")
                                   else details.reason), details.variant, code]
out["value"] = [client.get_boolean_value("always_on", False), client.get_boolean_value("dark", True)]
out["half"] = [client.get_boolean_value("half", True, EvaluationContext(targeting_key=a)) for a in accounts]
api.shutdown()
print(json.dumps(out))
"""


def sdk_version() -> str | None:
    try:
        return metadata.version("openfeature-provider-flagd")
    except metadata.PackageNotFoundError:
        return None


@pytest.mark.asyncio
@pytest.mark.skipif(sdk_version() is None, reason="openfeature-provider-flagd is not installed")
async def test_openfeature_sdk_flagd_provider_evaluates_npanel_flags(served: Served) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SDK_SCRIPT, str(served.port), json.dumps(ACCOUNTS[:10]),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    out = json.loads(stdout.decode().strip().splitlines()[-1])
    assert out["always_on"] == [True, "STATIC", "on", None]
    assert out["dark"] == [False, "DISABLED", "off", None]
    assert out["no_such_flag"][0] is True and out["no_such_flag"][3] == "FLAG_NOT_FOUND"
    assert out["value"] == [True, False]
    flag = served.cache.get("half")
    assert flag is not None
    assert out["half"] == [evaluate(flag, a).value for a in ACCOUNTS[:10]]
