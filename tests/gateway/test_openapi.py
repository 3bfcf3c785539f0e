"""The OpenAPI document: valid OpenAPI 3.0, complete for the exposed routes, proto3-JSON schemas."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    struct_pb2,
    text_format,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.internal import api_implementation
from openapi_spec_validator import OpenAPIV30SpecValidator, validate

from npanel.api.v1 import options_pb2
from npanel.flagd.v1 import flagd_pb2
from npanel.gateway.exposed import exposed_files
from npanel.gateway.openapi import openapi_document
from npanel.gateway.routes import HttpRule, Route, build_routes, compile_template

pytestmark = pytest.mark.unit

ROUTES = build_routes(exposed_files())
_VERBS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document(ROUTES, title="npanel", version="test")


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for verb, operation in item.items():
            if verb in _VERBS:
                yield path, verb, operation


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def test_document_is_valid_openapi_3_0(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.0.3"
    validate(document, cls=OpenAPIV30SpecValidator)


def test_every_http_route_is_an_operation_with_its_verb(document: dict[str, Any]) -> None:
    http_routes = [r for r in ROUTES.values() if r.http is not None]
    assert http_routes, "no exposed route has an http rule"
    for route in http_routes:
        assert route.http is not None
        operation = document["paths"][route.http.template][route.http.verb.lower()]
        assert operation["operationId"] == f"{route.service.rsplit('.', 1)[-1]}_{route.method}"
        assert operation["x-npanel-required-role"] == route.role_name
        assert operation["security"] == [{"bearerAuth": []}]
    assert len(list(_operations(document))) == len(http_routes)
    assert document["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}


def test_custom_verbs_stay_literal(document: dict[str, Any]) -> None:
    assert "post" in document["paths"]["/v1/flags:disableAll"]
    assert "post" in document["paths"]["/v1/flags/{flag}:evaluate"]


def test_every_path_parameter_is_declared_and_required(document: dict[str, Any]) -> None:
    for path, verb, operation in _operations(document):
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), (verb, path)
        assert all(p["required"] for p in operation.get("parameters", []) if p["in"] == "path")


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert refs, "the document should refer to component schemas"
    prefix = "#/components/schemas/"
    assert all(ref.startswith(prefix) for ref in refs), refs
    assert {ref.removeprefix(prefix) for ref in refs} <= set(document["components"]["schemas"])


def test_64_bit_integers_are_strings_and_32_bit_are_integers(document: dict[str, Any]) -> None:
    flag = _schema(document, "npanel.flagd.v1.Flag")["properties"]
    assert flag["revision"] == {"type": "string", "format": "int64"}
    assert flag["rolloutPercent"]["type"] == "integer"
    assert flag["rolloutPercent"]["minimum"] == 0
    watch = document["paths"]["/v1/flags:watch"]["get"]["parameters"]
    assert watch == [{"name": "sinceRevision", "in": "query", "required": False,
                      "schema": {"type": "string", "format": "int64"}}]


def test_properties_use_json_names_and_timestamps_are_date_times(document: dict[str, Any]) -> None:
    flag = _schema(document, "npanel.flagd.v1.Flag")["properties"]
    assert set(flag) == {f.json_name for f in flagd_pb2.Flag.DESCRIPTOR.fields}
    assert flag["createdAt"] == {"type": "string", "format": "date-time"}


def test_enums_are_their_value_names(document: dict[str, Any]) -> None:
    reason = _schema(document, "npanel.flagd.v1.Reason")
    assert reason == {"type": "string", "enum": list(flagd_pb2.Reason.keys())}
    evaluation = _schema(document, "npanel.flagd.v1.Evaluation")["properties"]
    assert evaluation["reason"] == {"$ref": "#/components/schemas/npanel.flagd.v1.Reason"}
    role = _schema(document, "npanel.api.v1.Role")
    assert role["enum"] == list(options_pb2.Role.keys())


def test_get_fields_are_query_parameters(document: dict[str, Any]) -> None:
    params = {p["name"]: p for p in document["paths"]["/v1/toggles"]["get"]["parameters"]}
    assert set(params) == {"flag", "since", "until", "pageSize", "pageToken"}
    assert params["since"]["schema"] == {"type": "string", "format": "date-time"}
    assert {p["in"] for p in params.values()} == {"query"}


def test_body_star_is_the_request_minus_path_parameters(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/flags/{name}"]["patch"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"enabled", "rolloutPercent", "actor", "reason"}
    assert [p["name"] for p in operation["parameters"]] == ["name"]
    without_path = document["paths"]["/v1/flags:evaluateAll"]["post"]["requestBody"]
    assert without_path["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/npanel.flagd.v1.EvaluateAllRequest"}


def test_errors_are_google_rpc_status(document: dict[str, Any]) -> None:
    status = _schema(document, "google.rpc.Status")["properties"]
    assert status["code"]["type"] == "integer"
    assert status["message"] == {"type": "string"}
    assert status["details"]["type"] == "array"
    for _, _, operation in _operations(document):
        error = operation["responses"]["default"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/google.rpc.Status"}


def test_server_streaming_is_ndjson_of_results_or_errors(document: dict[str, Any]) -> None:
    content = document["paths"]["/v1/flags:watch"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/x-ndjson"}
    lines = content["application/x-ndjson"]["schema"]["oneOf"]
    assert [line["required"] for line in lines] == [["result"], ["error"]]
    assert lines[0]["properties"]["result"] == {"$ref": "#/components/schemas/npanel.flagd.v1.FlagEvent"}


def test_without_comments_the_summary_is_the_method_name(document: dict[str, Any]) -> None:
    assert document["paths"]["/v1/flags/{name}"]["patch"]["summary"] == "SetFlag"


def test_extra_paths_are_merged_and_may_not_replace_a_route() -> None:
    extra = {"/ofrep/v1/evaluate/flags": {"post": {"operationId": "OFREP_EvaluateAll",
                                                   "responses": {"200": {"description": "ok"}}}}}
    document = openapi_document(ROUTES, title="npanel", version="test", extra_paths=extra)
    assert document["paths"]["/ofrep/v1/evaluate/flags"] == extra["/ofrep/v1/evaluate/flags"]
    validate(document, cls=OpenAPIV30SpecValidator)
    with pytest.raises(ValueError, match="/v1/flags redefines"):
        openapi_document(ROUTES, title="npanel", version="test", extra_paths={"/v1/flags": {"get": {}}})


# A synthetic service for what npanel's protos do not use yet: maps, wrappers, Struct,
# recursion, a body field, comments (as generated with --include_source_info).
_SYNTHETIC = """
name: "npanel/test/v1/synthetic.proto" package: "npanel.test.v1" syntax: "proto3"
dependency: ["google/protobuf/struct.proto", "google/protobuf/timestamp.proto",
             "google/protobuf/wrappers.proto"]
enum_type { name: "Color" value { name: "COLOR_UNSPECIFIED" number: 0 } value { name: "RED" number: 1 } }
message_type {
  name: "Node"
  field { name: "node_id" number: 1 type: TYPE_STRING json_name: "nodeId" }
  field { name: "children" number: 2 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".npanel.test.v1.Node" json_name: "children" }
  field { name: "counts" number: 3 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".npanel.test.v1.Node.CountsEntry" json_name: "counts" }
  field { name: "colors" number: 4 label: LABEL_REPEATED type: TYPE_ENUM
          type_name: ".npanel.test.v1.Color" json_name: "colors" }
  field { name: "nickname" number: 5 type: TYPE_MESSAGE type_name: ".google.protobuf.StringValue"
          json_name: "nickname" }
  field { name: "attrs" number: 6 type: TYPE_MESSAGE type_name: ".google.protobuf.Struct" json_name: "attrs" }
  field { name: "anything" number: 7 type: TYPE_MESSAGE type_name: ".google.protobuf.Value"
          json_name: "anything" }
  field { name: "blob" number: 8 type: TYPE_BYTES json_name: "blob" }
  field { name: "big" number: 9 type: TYPE_UINT64 json_name: "big" }
  field { name: "ratio" number: 10 type: TYPE_DOUBLE json_name: "ratio" }
  nested_type {
    name: "CountsEntry" options { map_entry: true }
    field { name: "key" number: 1 type: TYPE_STRING json_name: "key" }
    field { name: "value" number: 2 type: TYPE_SINT64 json_name: "value" }
  }
}
message_type {
  name: "PutNodeRequest"
  field { name: "parent" number: 1 type: TYPE_STRING json_name: "parent" }
  field { name: "node" number: 2 type: TYPE_MESSAGE type_name: ".npanel.test.v1.Node" json_name: "node" }
  field { name: "valid_at" number: 3 type: TYPE_MESSAGE type_name: ".google.protobuf.Timestamp"
          json_name: "validAt" }
  field { name: "labels" number: 4 label: LABEL_REPEATED type: TYPE_STRING json_name: "labels" }
}
service {
  name: "NodeService"
  method { name: "PutNode" input_type: ".npanel.test.v1.PutNodeRequest" output_type: ".npanel.test.v1.Node" }
  method { name: "Internal" input_type: ".npanel.test.v1.Node" output_type: ".npanel.test.v1.Node" }
}
source_code_info {
  location { path: [6, 0, 2, 0] span: [1, 1, 1]
             leading_comments: " Stores a node\\n under its parent.\\n\\n Replaces an existing one.\\n" }
}
"""


def _synthetic_routes() -> dict[str, Route]:
    pool = descriptor_pool.DescriptorPool()
    for wkt in (struct_pb2, timestamp_pb2, wrappers_pb2):
        pool.AddSerializedFile(wkt.DESCRIPTOR.serialized_pb)
    proto = text_format.Parse(_SYNTHETIC, descriptor_pb2.FileDescriptorProto())
    pool.AddSerializedFile(proto.SerializeToString())
    service = pool.FindServiceByName("npanel.test.v1.NodeService")
    routes = {}
    for method, http in (("PutNode", HttpRule("POST", "/v1/{parent}/nodes", "node",
                                              *compile_template("/v1/{parent}/nodes"))),
                         ("Internal", None)):
        descriptor = service.methods_by_name[method]
        routes[f"/{service.full_name}/{method}"] = Route(
            full_method=f"/{service.full_name}/{method}", service=service.full_name, method=method,
            backend="test", role=options_pb2.OPERATOR, feature_flag="node_api", idempotent=False,
            server_streaming=False, request_type=message_factory.GetMessageClass(descriptor.input_type),
            response_type=message_factory.GetMessageClass(descriptor.output_type), http=http)
    return routes


@pytest.fixture(scope="module")
def synthetic() -> dict[str, Any]:
    return openapi_document(_synthetic_routes(), title="synthetic", version="0")


def test_synthetic_document_is_valid_and_skips_routes_without_http(synthetic: dict[str, Any]) -> None:
    validate(synthetic, cls=OpenAPIV30SpecValidator)
    assert list(synthetic["paths"]) == ["/v1/{parent}/nodes"]
    assert set(_refs(synthetic)) <= {f"#/components/schemas/{n}" for n in synthetic["components"]["schemas"]}


def test_body_field_and_remaining_fields_as_query(synthetic: dict[str, Any]) -> None:
    operation = synthetic["paths"]["/v1/{parent}/nodes"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/npanel.test.v1.Node"}
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["parent"]["in"] == "path"
    assert params["validAt"]["schema"] == {"type": "string", "format": "date-time"}
    assert "labels" not in params  # repeated: transcode.py takes one value per query key
    assert "node" not in params
    assert operation["x-npanel-feature-flag"] == "node_api"
    assert operation["x-npanel-required-role"] == "operator"


@pytest.mark.skipif(api_implementation.Type() == "upb",
                    reason="upb rebuilds serialized_pb without source_code_info, so comments are lost; "
                           "run with PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python to cover this")
def test_leading_comment_becomes_summary_and_description(synthetic: dict[str, Any]) -> None:
    operation = synthetic["paths"]["/v1/{parent}/nodes"]["post"]
    assert operation["summary"] == "Stores a node under its parent."
    assert operation["description"] == "Replaces an existing one."


def test_proto3_json_mapping_of_field_types(synthetic: dict[str, Any]) -> None:
    node = synthetic["components"]["schemas"]["npanel.test.v1.Node"]["properties"]
    ref = "#/components/schemas/npanel.test.v1."
    assert node["children"] == {"type": "array", "items": {"$ref": ref + "Node"}}
    assert node["counts"] == {"type": "object", "additionalProperties": {"type": "string", "format": "int64"}}
    assert node["colors"] == {"type": "array", "items": {"$ref": ref + "Color"}}
    assert node["nickname"] == {"type": "string", "nullable": True}
    assert node["attrs"] == {"type": "object", "additionalProperties": True}
    assert node["anything"] == {}
    assert node["blob"] == {"type": "string", "format": "byte"}
    assert node["big"] == {"type": "string", "format": "uint64"}
    assert node["ratio"] == {"type": "number", "format": "double"}
    assert "npanel.test.v1.Node.CountsEntry" not in synthetic["components"]["schemas"]
