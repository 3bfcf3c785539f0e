"""OFREP, the OpenFeature Remote Evaluation Protocol, over flagd's Evaluate calls.

POST /ofrep/v1/evaluate/flags/{key} and the bulk POST /ofrep/v1/evaluate/flags,
body {"context": {"targetingKey": "<account id>", ...}}. The bulk answer carries
an ETag over the flags' revision and the evaluation context; a request whose
If-None-Match equals it gets 304 and no body.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from npanel.common.errors import InvalidArgument
from npanel.flagd.v1 import flagd_pb2 as pb

REASONS = {pb.STATIC: "STATIC", pb.TARGETING_MATCH: "TARGETING_MATCH", pb.SPLIT: "SPLIT",
           pb.DISABLED: "DISABLED", pb.ERROR: "ERROR"}


def context_of(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise InvalidArgument("body", body[:100].decode(errors="replace"), "is not JSON") from exc
    context = document.get("context", {}) if isinstance(document, dict) else None
    if not isinstance(context, dict):
        raise InvalidArgument("context", context, "must be a JSON object")
    return context


def account_of(context: dict[str, Any]) -> str:
    value = context.get("targetingKey", context.get("account_id", ""))
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidArgument("context.targetingKey", value, "must be a string (the account id)")
    return str(value)


def etag(revision: int, context: dict[str, Any]) -> str:
    canonical = json.dumps(context, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(f"{revision}\n{canonical}".encode()).hexdigest()[:32] + '"'


def flag_result(e: pb.Evaluation) -> dict[str, Any]:
    metadata: dict[str, Any] = {"revision": e.revision}
    if e.error:
        metadata["error"] = e.error
    return {"key": e.flag, "value": e.value, "reason": REASONS.get(e.reason, "UNKNOWN"),
            "variant": "on" if e.value else "off", "metadata": metadata}


def not_found(key: str, message: str) -> dict[str, Any]:
    return {"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": message}
