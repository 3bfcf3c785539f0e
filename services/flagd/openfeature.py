"""The OpenFeature flagd evaluation protocol over npanel's flags.

Serves `flagd.evaluation.v1.Service` and `flagd.evaluation.v2.Service` (which
current flagd providers call; an adapter over the v1 servicer), so an
OpenFeature SDK with its flagd provider in RPC mode evaluates npanel flags.
Every answer comes from `evaluate`, the platform's one evaluation function.

Semantics, as flagd answers (open-feature/flagd, flagd/pkg/service/
flag-evaluation/flag_evaluator*.go, core/pkg/model/{error,reason}.go):

- Account: the context's `targetingKey` (OpenFeature's standard key), else its
  `account_id`; strings, or whole numbers written as digits.
- Unknown flag: NOT_FOUND, as flagd; the message starts with FLAG_NOT_FOUND.
  Checked before the type, as flagd does.
- ResolveString/Int/Float/Object on a flag (npanel flags are all boolean):
  INVALID_ARGUMENT, as flagd's TYPE_MISMATCH; the message starts with it.
  Providers map the code (NOT_FOUND -> FLAG_NOT_FOUND, INVALID_ARGUMENT ->
  TYPE_MISMATCH), not the text, so the text also says what to do.
- Variants "on" / "off"; the reason is npanel's (STATIC, SPLIT, DISABLED,
  ERROR), each a reason string flagd itself uses.
- Metadata (a Struct, as flagd returns flag metadata): `revision` and `track`;
  `error` too when the evaluation had one.
- Disabled flag: value false, variant "off", reason DISABLED, status OK.
  flagd answers NOT_FOUND instead, and a provider then returns the caller's
  default, which may be true; for npanel "disabled" means off for everyone, so
  that would be wrong. DISABLED is a resolution reason of the OpenFeature spec,
  and flagd's draft ADR "Treat Disabled Flag Evaluation as Successful with
  Reason DISABLED" moves flagd the same way. Providers following that ADR use
  their code default only when the variant is omitted as well (python provider
  0.6.x: reason DEFAULT/DISABLED *and* no variant); we always send "off".
- Partial rollout without an account: `evaluate` answers off with reason
  ERROR (TARGETING_KEY_MISSING). It is sent as a normal answer (false, "off",
  ERROR, metadata error=TARGETING_KEY_MISSING), not as a status: the flagd
  protocol has no status for it (a provider would raise GENERAL and return the
  caller's default, again possibly true), and flagd itself answers a
  fractional rule without a targeting key with its default variant and no error.
- ResolveAll: every flag, disabled ones included (value false), each recorded.
- EventStream: `provider_ready` (data {}) first; `configuration_change` with
  data {"flags": {key: {"type": "write"|"update"}}} per change ("write" is
  flagd's word for a new flag); `keep_alive` (no data) after 20 s without an
  event, flagd's interval. A watcher that falls behind gets UNAVAILABLE and the
  provider reconnects; server shutdown cancels the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import struct_pb2
from google.protobuf.message import Message

from npanel.openfeature.evaluation.v1 import evaluation_pb2 as pb
from npanel.openfeature.evaluation.v1 import evaluation_pb2_grpc
from npanel.openfeature.evaluation.v2 import evaluation_pb2 as pb2
from npanel.openfeature.evaluation.v2 import evaluation_pb2_grpc as evaluation_v2_pb2_grpc

from .cache import FlagCache, Lagged
from .evaluator import Evaluation, evaluate
from .model import Flag

Ctx = grpc.aio.ServicerContext[Any, Any]
Record = Callable[[Evaluation], None]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Service"].full_name
# flagd's EventStream sends keep_alive after this long without an event.
KEEP_ALIVE_S = 20.0
PROVIDER_READY = "provider_ready"
CONFIGURATION_CHANGE = "configuration_change"
KEEP_ALIVE = "keep_alive"
_ACCOUNT_KEYS = ("targetingKey", "account_id")


def account_of(context: struct_pb2.Struct) -> str | None:
    """The account to evaluate for: targetingKey, else account_id, else None."""
    for key in _ACCOUNT_KEYS:
        value = context.fields.get(key)
        if value is None:
            continue
        kind = value.WhichOneof("kind")
        if kind == "string_value" and value.string_value:
            return value.string_value
        # Struct numbers are doubles; an id passed as a number is its digits.
        if kind == "number_value" and value.number_value.is_integer():
            return str(int(value.number_value))
    return None


def variant_of(value: bool) -> str:
    return "on" if value else "off"


def metadata_of(evaluation: Evaluation, flag: Flag) -> struct_pb2.Struct:
    metadata = struct_pb2.Struct()
    metadata.update({"revision": evaluation.revision, "track": flag.track})
    if evaluation.error:
        metadata["error"] = evaluation.error
    return metadata


def any_flag(evaluation: Evaluation, flag: Flag) -> pb.AnyFlag:
    return pb.AnyFlag(reason=evaluation.reason.value, variant=variant_of(evaluation.value),
                      bool_value=evaluation.value, metadata=metadata_of(evaluation, flag))


def event(kind: str, data: dict[str, Any] | None = None) -> pb.EventStreamResponse:
    response = pb.EventStreamResponse(type=kind)
    if data is not None:
        response.data.update(data)
    return response


def changes(flags: Iterable[Flag], known: set[str]) -> dict[str, Any]:
    """configuration_change data, in flagd's shape; adds new names to `known`."""
    changed: dict[str, Any] = {}
    for flag in flags:
        changed[flag.name] = {"type": "update" if flag.name in known else "write"}
        known.add(flag.name)
    return {"flags": changed}


async def type_mismatch(context: Ctx, key: str, asked: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, (
        f"TYPE_MISMATCH: flag {key!r} is a boolean flag, asked for a {asked} value; "
        "evaluate npanel flags as booleans (ResolveBoolean / get_boolean_value)"))


class OpenFeatureServicer(evaluation_pb2_grpc.ServiceServicer):
    def __init__(self, cache: FlagCache, record: Record, keep_alive_s: float = KEEP_ALIVE_S) -> None:
        self._cache = cache
        self._record = record
        self._keep_alive_s = keep_alive_s

    async def _flag(self, key: str, context: Ctx) -> Flag:
        flag = self._cache.get(key)
        if flag is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, (
                f"FLAG_NOT_FOUND: flag {key!r} does not exist; "
                "`npanel flags list` shows the flags that exist"))
        return flag

    def _evaluate(self, flag: Flag, evaluation_context: struct_pb2.Struct) -> Evaluation:
        evaluation = evaluate(flag, account_of(evaluation_context))
        self._record(evaluation)
        return evaluation

    async def ResolveBoolean(self, request: pb.ResolveBooleanRequest, context: Ctx
                             ) -> pb.ResolveBooleanResponse:
        flag = await self._flag(request.flag_key, context)
        evaluation = self._evaluate(flag, request.context)
        return pb.ResolveBooleanResponse(
            value=evaluation.value, reason=evaluation.reason.value,
            variant=variant_of(evaluation.value), metadata=metadata_of(evaluation, flag))

    async def ResolveString(self, request: pb.ResolveStringRequest, context: Ctx
                            ) -> pb.ResolveStringResponse:
        await self._flag(request.flag_key, context)
        await type_mismatch(context, request.flag_key, "string")

    async def ResolveInt(self, request: pb.ResolveIntRequest, context: Ctx) -> pb.ResolveIntResponse:
        await self._flag(request.flag_key, context)
        await type_mismatch(context, request.flag_key, "integer")

    async def ResolveFloat(self, request: pb.ResolveFloatRequest, context: Ctx) -> pb.ResolveFloatResponse:
        await self._flag(request.flag_key, context)
        await type_mismatch(context, request.flag_key, "float")

    async def ResolveObject(self, request: pb.ResolveObjectRequest, context: Ctx
                            ) -> pb.ResolveObjectResponse:
        await self._flag(request.flag_key, context)
        await type_mismatch(context, request.flag_key, "object")

    async def ResolveAll(self, request: pb.ResolveAllRequest, context: Ctx) -> pb.ResolveAllResponse:
        response = pb.ResolveAllResponse()
        for flag in self._cache.all():
            response.flags[flag.name].CopyFrom(any_flag(self._evaluate(flag, request.context), flag))
        response.metadata.update({"revision": self._cache.revision})
        return response

    async def EventStream(self, request: pb.EventStreamRequest, context: Ctx
                          ) -> AsyncIterator[pb.EventStreamResponse]:
        with self._cache.subscribe() as subscription:
            # Subscribed before reading the names, so no change falls between.
            known = {flag.name for flag in self._cache.all()}
            yield event(PROVIDER_READY, {})
            while True:
                try:
                    async with asyncio.timeout(self._keep_alive_s):  # not wait_for: it can lose a cancel
                        flags, _ = await subscription.next()
                except TimeoutError:
                    yield event(KEEP_ALIVE)
                    continue
                except Lagged as exc:
                    # A provider reconnects on UNAVAILABLE and re-reads what it cached.
                    await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
                yield event(CONFIGURATION_CHANGE, changes(flags, known))


M = TypeVar("M", bound=Message)


def _as(message: Message, kind: type[M]) -> M:
    """The same bytes read as the other protocol version's message: v1 and v2
    share every field number, so nothing is lost or reinterpreted."""
    return kind.FromString(message.SerializeToString())


class OpenFeatureV2Servicer(evaluation_v2_pb2_grpc.ServiceServicer):
    """flagd.evaluation.v2.Service: the v1 answers, with the value present.

    v2 gives each response's value explicit presence and providers read an
    absent value as "use your code default"; v1 drops a false value from the
    wire, so the value is set again after the conversion.
    """

    def __init__(self, v1: OpenFeatureServicer) -> None:
        self._v1 = v1

    async def ResolveBoolean(self, request: pb2.ResolveBooleanRequest, context: Ctx
                             ) -> pb2.ResolveBooleanResponse:
        answer = await self._v1.ResolveBoolean(_as(request, pb.ResolveBooleanRequest), context)
        out = _as(answer, pb2.ResolveBooleanResponse)
        out.value = answer.value
        return out

    async def ResolveString(self, request: pb2.ResolveStringRequest, context: Ctx
                            ) -> pb2.ResolveStringResponse:
        answer = await self._v1.ResolveString(_as(request, pb.ResolveStringRequest), context)
        return _as(answer, pb2.ResolveStringResponse)

    async def ResolveInt(self, request: pb2.ResolveIntRequest, context: Ctx) -> pb2.ResolveIntResponse:
        answer = await self._v1.ResolveInt(_as(request, pb.ResolveIntRequest), context)
        return _as(answer, pb2.ResolveIntResponse)

    async def ResolveFloat(self, request: pb2.ResolveFloatRequest, context: Ctx
                           ) -> pb2.ResolveFloatResponse:
        answer = await self._v1.ResolveFloat(_as(request, pb.ResolveFloatRequest), context)
        return _as(answer, pb2.ResolveFloatResponse)

    async def ResolveObject(self, request: pb2.ResolveObjectRequest, context: Ctx
                            ) -> pb2.ResolveObjectResponse:
        answer = await self._v1.ResolveObject(_as(request, pb.ResolveObjectRequest), context)
        return _as(answer, pb2.ResolveObjectResponse)

    async def ResolveAll(self, request: pb2.ResolveAllRequest, context: Ctx) -> pb2.ResolveAllResponse:
        answer = await self._v1.ResolveAll(_as(request, pb.ResolveAllRequest), context)
        return _as(answer, pb2.ResolveAllResponse)

    async def EventStream(self, request: pb2.EventStreamRequest, context: Ctx
                          ) -> AsyncIterator[pb2.EventStreamResponse]:
        async for answer in self._v1.EventStream(_as(request, pb.EventStreamRequest), context):
            yield _as(answer, pb2.EventStreamResponse)


SERVICE_NAMES = (SERVICE_NAME, pb2.DESCRIPTOR.services_by_name["Service"].full_name)


def add_to_server(servicer: OpenFeatureServicer, server: grpc.aio.Server) -> None:
    """Serve flagd.evaluation.v1.Service and flagd.evaluation.v2.Service."""
    evaluation_pb2_grpc.add_ServiceServicer_to_server(servicer, server)
    evaluation_v2_pb2_grpc.add_ServiceServicer_to_server(OpenFeatureV2Servicer(servicer), server)
