"""OpenAPI for the OFREP routes, which are not generated from protos."""

from __future__ import annotations

from typing import Any

_CONTEXT_BODY: dict[str, Any] = {
    "required": False,
    "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {"context": {
            "type": "object", "additionalProperties": True,
            "properties": {"targetingKey": {"type": "string", "description": "the account id"}}}},
    }}},
}
_RESULT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "key": {"type": "string"}, "value": {"type": "boolean"}, "reason": {"type": "string"},
        "variant": {"type": "string"}, "metadata": {"type": "object", "additionalProperties": True},
    },
}
_ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {"key": {"type": "string"}, "errorCode": {"type": "string"},
                   "errorDetails": {"type": "string"}},
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


OFREP_PATHS: dict[str, Any] = {
    "/ofrep/v1/evaluate/flags/{key}": {"post": {
        "operationId": "OFREP_EvaluateFlag", "tags": ["OFREP"],
        "summary": "Evaluate one flag (OpenFeature Remote Evaluation Protocol)",
        "parameters": [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": _CONTEXT_BODY,
        "responses": {"200": _json(_RESULT, "the evaluation"), "404": _json(_ERROR, "no such flag")},
        "x-npanel-required-role": "viewer",
    }},
    "/ofrep/v1/evaluate/flags": {"post": {
        "operationId": "OFREP_EvaluateFlags", "tags": ["OFREP"],
        "summary": "Evaluate every flag; ETag covers the revision and the context",
        "parameters": [{"name": "If-None-Match", "in": "header", "required": False,
                        "schema": {"type": "string"}}],
        "requestBody": _CONTEXT_BODY,
        "responses": {
            "200": _json({"type": "object", "properties": {
                "flags": {"type": "array", "items": _RESULT},
                "metadata": {"type": "object", "additionalProperties": True}}}, "every flag"),
            "304": {"description": "unchanged since the ETag sent in If-None-Match"},
        },
        "x-npanel-required-role": "viewer",
    }},
}
