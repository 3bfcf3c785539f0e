"""HTTP/JSON <-> protobuf, the way grpc-gateway does it. Pure: no I/O.

Request: path parameters, then (for rules without a body) query parameters,
then the JSON body fill the request message; unknown fields are refused with
the field's name. Response: proto3 JSON with every field present. Errors: a
google.rpc.Status JSON body with grpc-gateway's HTTP status for the code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from npanel.common.errors import InvalidArgument

from .routes import Route

# grpc-gateway's runtime.HTTPStatusFromCode.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409, grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DATA_LOSS: 500,
}


def status_body(code: grpc.StatusCode, message: str) -> dict[str, Any]:
    return {"code": code.value[0], "message": message, "details": []}


def to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def _field(message: Message, name: str) -> Any:
    fields = message.DESCRIPTOR.fields_by_name
    by_json = {f.json_name: f for f in message.DESCRIPTOR.fields}
    found = fields.get(name) or by_json.get(name)
    if found is None:
        raise InvalidArgument(name, name, f"{message.DESCRIPTOR.full_name} has no such field")
    return found


def _scalar(field: FieldDescriptor, raw: str) -> Any:
    """A query or path string as the JSON value proto3's parser expects."""
    if field.type == FieldDescriptor.TYPE_BOOL:
        if raw not in ("true", "false"):
            raise InvalidArgument(field.name, raw, "must be true or false")
        return raw == "true"
    if field.type == FieldDescriptor.TYPE_MESSAGE and \
            getattr(field.message_type, "full_name", "") != "google.protobuf.Timestamp":
        raise InvalidArgument(field.name, raw, "a message field cannot be set from the URL")
    return raw  # numbers, enums and timestamps are accepted as strings by proto3 JSON


def _parse(values: Mapping[str, Any], message: Message) -> None:
    try:
        json_format.ParseDict(dict(values), message, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise InvalidArgument("body", _short(values), f"does not fit {message.DESCRIPTOR.full_name}: {exc}"
                              ) from exc


def _short(values: Mapping[str, Any]) -> str:
    text = json.dumps(values, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


def build_request(route: Route, path_params: Mapping[str, str], query: Mapping[str, str],
                  body: bytes) -> Message:
    assert route.http is not None
    message = route.request_type()
    if route.http.body and body.strip():
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise InvalidArgument("body", body[:100].decode(errors="replace"), "is not JSON") from exc
        if not isinstance(document, dict):
            raise InvalidArgument("body", _short({"body": document}), "must be a JSON object")
        _parse(document if route.http.body == "*" else {route.http.body: document}, message)
    elif body.strip() and not route.http.body:
        raise InvalidArgument("body", body[:100].decode(errors="replace"),
                              f"{route.http.verb} {route.http.template} takes no body")
    if not route.http.body:
        _parse({_field(message, k).json_name: _scalar(_field(message, k), v) for k, v in query.items()},
               message)
    for name, value in path_params.items():
        # Path parameters win over the body, as in grpc-gateway.
        field = _field(message, name)
        if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
            setattr(message, field.name, value)  # the common case, without a JSON round trip
        else:
            _parse({field.json_name: _scalar(field, value)}, message)
    return message
