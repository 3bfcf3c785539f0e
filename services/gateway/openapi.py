"""An OpenAPI 3.0.3 document for the gateway's HTTP routes. Pure: no I/O.

It is derived from the same descriptors as the routing table, the way
grpc-gateway's protoc-gen-openapiv2 derives Swagger 2 from `google.api.http`,
so the document cannot drift from what the gateway actually serves. Schemas
follow the proto3 JSON mapping the gateway transcodes with (lowerCamelCase
names, 64-bit integers as strings, enums by name).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping
from typing import Any, cast

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, FileDescriptor
from google.protobuf.message import Message

from npanel.gateway.routes import Route

_F = FieldDescriptor
_JSON = "application/json"
# One JSON object per line, grpc-gateway's framing for server-streaming methods.
_NDJSON = "application/x-ndjson"
_SECURITY_SCHEME = "bearerAuth"

_INT32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
# uint32 does not fit OpenAPI's (signed) int32 format; the bounds say what is valid.
_UINT32 = {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1}
# proto3 JSON writes 64-bit integers as strings: JavaScript numbers lose precision past 2**53.
_INT64 = {"type": "string", "format": "int64"}
_UINT64 = {"type": "string", "format": "uint64"}
_SCALARS: dict[int, dict[str, Any]] = {
    _F.TYPE_INT32: _INT32, _F.TYPE_SINT32: _INT32, _F.TYPE_SFIXED32: _INT32,
    _F.TYPE_UINT32: _UINT32, _F.TYPE_FIXED32: _UINT32,
    _F.TYPE_INT64: _INT64, _F.TYPE_SINT64: _INT64, _F.TYPE_SFIXED64: _INT64,
    _F.TYPE_UINT64: _UINT64, _F.TYPE_FIXED64: _UINT64,
    _F.TYPE_BOOL: {"type": "boolean"},
    _F.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _F.TYPE_FLOAT: {"type": "number", "format": "float"},
    _F.TYPE_STRING: {"type": "string"},
    _F.TYPE_BYTES: {"type": "string", "format": "byte"},  # base64
}

# Well-known types have their own JSON forms (protobuf's JSON mapping), so they are inlined.
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "example": "1.5s"},
    "google.protobuf.FieldMask": {"type": "string"},  # "paths,comma,separated"
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},  # any JSON value
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}},
                            "additionalProperties": True},
}
_WRAPPERS = frozenset(f"google.protobuf.{t}Value" for t in (
    "Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"))
# The only message type transcode.py reads from a URL (grpc-gateway also takes Duration,
# FieldMask and wrappers): the document must not promise more than the gateway parses.
_QUERY_MESSAGES = {"google.protobuf.Timestamp"}


# google.rpc.Status as JSON, the body of every error (grpc-gateway's errors look the same).
_STATUS_NAME = "google.rpc.Status"
_STATUS = {"type": "object", "properties": {
    "code": _INT32, "message": {"type": "string"},
    "details": {"type": "array", "items": _WELL_KNOWN["google.protobuf.Any"]}}}


def _descriptor(message: type[Message]) -> Descriptor:
    # The stubs type DESCRIPTOR as a union with upb's class; at run time they are one and the same.
    return cast(Descriptor, message.DESCRIPTOR)


def _message_type(field: FieldDescriptor) -> Descriptor:
    assert field.message_type is not None, f"{field.full_name} is not a message field"
    return field.message_type


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


class _Schemas:
    """components.schemas, filled on demand: each message and enum once, by its full name."""

    def __init__(self) -> None:
        self.components: dict[str, dict[str, Any]] = {}

    def message(self, message: Descriptor) -> dict[str, Any]:
        if message.full_name in _WELL_KNOWN:
            return copy.deepcopy(_WELL_KNOWN[message.full_name])
        if message.full_name in _WRAPPERS:  # null (absent) or the wrapped scalar
            return {**self.value(message.fields_by_name["value"]), "nullable": True}
        if message.full_name not in self.components:
            self.components[message.full_name] = {}  # reserved first: a message may contain itself
            self.components[message.full_name] = self.object(message.fields)
        return _ref(message.full_name)

    def object(self, fields: Iterable[FieldDescriptor]) -> dict[str, Any]:
        # No `required`: every proto3 field may be omitted and then reads as its default.
        return {"type": "object", "properties": {f.json_name: self.field(f) for f in fields}}

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        if _is_map(field):
            return {"type": "object",
                    "additionalProperties": self.value(_message_type(field).fields_by_name["value"])}
        value = self.value(field)
        return {"type": "array", "items": value} if field.is_repeated else value

    def value(self, field: FieldDescriptor) -> dict[str, Any]:
        """The schema of one value of the field, ignoring `repeated`."""
        if field.type == _F.TYPE_MESSAGE:
            return self.message(_message_type(field))
        if field.type == _F.TYPE_ENUM:
            assert field.enum_type is not None
            return self.enum(field.enum_type)
        return dict(_SCALARS[field.type])

    def status(self) -> dict[str, Any]:
        self.components[_STATUS_NAME] = copy.deepcopy(_STATUS)
        return _ref(_STATUS_NAME)

    def enum(self, enum: EnumDescriptor) -> dict[str, Any]:
        # Parsers also accept the numbers, but the gateway writes names; names are the contract.
        if enum.full_name not in self.components:
            self.components[enum.full_name] = {"type": "string", "enum": [v.name for v in enum.values]}
        return _ref(enum.full_name)


def _is_map(field: FieldDescriptor) -> bool:
    return (field.type == _F.TYPE_MESSAGE and field.is_repeated
            and _message_type(field).GetOptions().map_entry)


@functools.cache
def _comments(file: FileDescriptor) -> dict[tuple[int, ...], str]:
    """Leading comments by source path. Empty unless the code was generated with protoc's
    --include_source_info, and even then under the default (upb) protobuf runtime, whose
    serialized_pb is rebuilt without source info; the pure-Python runtime keeps it."""
    proto = descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb)
    return {tuple(loc.path): loc.leading_comments.strip()
            for loc in proto.source_code_info.location if loc.leading_comments.strip()}


def _method_comment(route: Route) -> str:
    # Route keeps message classes, not the MethodDescriptor: find it again in their pool.
    file = _descriptor(route.request_type).file
    service = file.pool.FindServiceByName(route.service)
    method = service.methods_by_name[route.method]
    # FileDescriptorProto field 6 is `service`, ServiceDescriptorProto field 2 is `method`.
    return _comments(service.file).get((6, service.index, 2, method.index), "")


def _summary(route: Route) -> dict[str, str]:
    """protoc-gen-openapiv2's split: first paragraph = summary, the rest = description."""
    comment = _method_comment(route)
    if not comment:
        return {"summary": route.method}
    first, _, rest = comment.partition("\n\n")
    text = {"summary": " ".join(line.strip() for line in first.splitlines())}
    return text | ({"description": rest.strip()} if rest.strip() else {})


def _query_parameters(fields: Iterable[FieldDescriptor], schemas: _Schemas) -> list[dict[str, Any]]:
    """Singular scalar, enum and Timestamp fields: transcode.py takes one string per query key,
    so repeated fields (grpc-gateway's `?a=1&a=2`) and messages are left to the body."""
    params = []
    for field in fields:
        scalar = field.type != _F.TYPE_MESSAGE or _message_type(field).full_name in _QUERY_MESSAGES
        if scalar and not field.is_repeated:
            params.append({"name": field.json_name, "in": "query", "required": False,
                           "schema": schemas.field(field)})
    return params


def _path_parameter(field: FieldDescriptor, schemas: _Schemas) -> dict[str, Any]:
    schema = schemas.field(field)
    if schema.get("type") == "string":  # a variable matches one segment (routes.compile_template)
        schema["pattern"] = "^[^/:]+$"
    return {"name": field.name, "in": "path", "required": True, "schema": schema}


def _parameters(route: Route, schemas: _Schemas) -> list[dict[str, Any]]:
    assert route.http is not None
    fields = _descriptor(route.request_type).fields_by_name
    params = [_path_parameter(fields[name], schemas) for name in route.http.path_params]
    if route.http.body != "*":  # grpc-gateway: what neither the path nor the body binds is a query
        bound = {*route.http.path_params, route.http.body}
        params += _query_parameters([f for f in fields.values() if f.name not in bound], schemas)
    return params


def _request_body(route: Route, schemas: _Schemas) -> dict[str, Any] | None:
    assert route.http is not None
    body, message = route.http.body, _descriptor(route.request_type)
    if not body:
        return None
    if body == "*" and not route.http.path_params:
        schema = schemas.message(message)
    elif body == "*":
        schema = schemas.object(f for f in message.fields if f.name not in route.http.path_params)
    elif body in message.fields_by_name:
        schema = schemas.field(message.fields_by_name[body])
    else:
        raise ValueError(f"{route.full_method}: http body {body!r} is not a field of {message.full_name}; "
                         "use '*' or one of its fields")
    # Not `required`: like grpc-gateway, the gateway reads an empty body as an empty message.
    return {"content": {_JSON: {"schema": schema}}}


def _responses(route: Route, schemas: _Schemas) -> dict[str, Any]:
    status = schemas.status()
    result = schemas.message(_descriptor(route.response_type))
    if route.server_streaming:
        # One line per message; an error after the first line can only travel in-band.
        line = {"title": f"Stream result of {_descriptor(route.response_type).full_name}", "oneOf": [
            {"type": "object", "required": ["result"], "properties": {"result": result},
             "additionalProperties": False},
            {"type": "object", "required": ["error"], "properties": {"error": status},
             "additionalProperties": False}]}
        ok = {"description": "A stream of newline-delimited JSON objects.",
              "content": {_NDJSON: {"schema": line}}}
    else:
        ok = {"description": "A successful response.", "content": {_JSON: {"schema": result}}}
    return {"200": ok, "default": {"description": "An error: the gRPC status as JSON.",
                                   "content": {_JSON: {"schema": status}}}}


def _short(service: str) -> str:
    return service.rsplit(".", 1)[-1]


def _operation(route: Route, schemas: _Schemas) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{_short(route.service)}_{route.method}",
        "tags": [_short(route.service)],
        **_summary(route),
    }
    if parameters := _parameters(route, schemas):
        operation["parameters"] = parameters
    if (body := _request_body(route, schemas)) is not None:
        operation["requestBody"] = body
    operation["responses"] = _responses(route, schemas)
    operation["security"] = [{_SECURITY_SCHEME: []}]
    operation["x-npanel-required-role"] = route.role_name
    if route.feature_flag:
        operation["x-npanel-feature-flag"] = route.feature_flag
    return operation


def _paths(routes: Iterable[Route], schemas: _Schemas) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: dict[str, str] = {}
    for route in routes:
        if route.http is None:
            continue
        operation = _operation(route, schemas)
        if (other := operation_ids.get(operation["operationId"])) is not None:
            raise ValueError(f"{route.full_method} and {other} both get operationId "
                             f"{operation['operationId']!r}: rename one service or method")
        operation_ids[operation["operationId"]] = route.full_method
        # Custom verbs (`/v1/flags:disableAll`) stay literal: OpenAPI paths allow ':'.
        paths.setdefault(route.http.template, {})[route.http.verb.lower()] = operation
    return paths


def _merge(paths: dict[str, dict[str, Any]], extra: Mapping[str, dict[str, Any]]) -> None:
    for path, operations in extra.items():
        target = paths.setdefault(path, {})
        if clash := set(target) & set(operations):
            raise ValueError(f"extra path {path} redefines {sorted(clash)}, already served by a proto route")
        target.update(operations)


def openapi_document(routes: Mapping[str, Route], *, title: str, version: str,
                     extra_paths: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document for every route with a `google.api.http` rule, plus `extra_paths`
    (hand-written operations, e.g. OFREP; their $refs may use any schema generated here)."""
    schemas = _Schemas()
    paths = _paths(routes.values(), schemas)
    _merge(paths, extra_paths or {})
    services = sorted({_short(r.service) for r in routes.values() if r.http is not None})
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version},
        "tags": [{"name": name} for name in services],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {_SECURITY_SCHEME: {"type": "http", "scheme": "bearer"}},
        },
    }
