"""The gateway's routing table, read from proto descriptors. Pure: no I/O.

A service is exposed when it declares `(npanel.api.v1.backend)`; each of its
methods must declare `(npanel.api.v1.required_role)` and may declare
`(npanel.api.v1.feature_flag)` and a `google.api.http` rule. Methods marked
`idempotency_level = NO_SIDE_EFFECTS` are retried once when the backend is
briefly unavailable. Adding an annotated method therefore needs no gateway code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from npanel.api.v1 import options_pb2

ROLE_NAMES: dict[int, str] = {
    options_pb2.VIEWER: "viewer", options_pb2.OPERATOR: "operator", options_pb2.ADMIN: "admin"}
_VERBS = ("get", "put", "post", "delete", "patch")
_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class RouteError(ValueError):
    """A proto declares something the gateway cannot expose; fix the proto."""


@dataclass(frozen=True)
class HttpRule:
    verb: str  # upper case
    template: str  # "/v1/flags/{name}"
    body: str  # "", "*" or a field name
    pattern: re.Pattern[str]
    path_params: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    full_method: str  # "/npanel.flagd.v1.FlagService/SetFlag"
    service: str
    method: str
    backend: str
    role: int
    feature_flag: str
    idempotent: bool
    server_streaming: bool
    request_type: type[Message]
    response_type: type[Message]
    http: HttpRule | None

    @property
    def role_name(self) -> str:
        return ROLE_NAMES[self.role]


def compile_template(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """`/v1/flags/{name}:evaluate` -> a full-match regex and its parameter names.

    A variable matches one path segment, without '/' or the ':' that starts a
    custom verb (google.api.http's `{name}` form; `{name=**}` is not supported).
    """
    if not template.startswith("/"):
        raise RouteError(f"http template {template!r} must start with '/'")
    if set("{}") & set(_PARAM.sub("", template)):
        raise RouteError(f"http template {template!r}: only {{field}} variables are supported")
    parts, params, last = [], [], 0
    for m in _PARAM.finditer(template):
        parts += [re.escape(template[last:m.start()]), f"(?P<{m.group(1)}>[^/:]+)"]
        params.append(m.group(1))
        last = m.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts)), tuple(params)


def _http_rule(method: MethodDescriptor) -> HttpRule | None:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    if verb not in _VERBS:
        raise RouteError(f"{method.full_name}: http rule {verb!r} is not one of {', '.join(_VERBS)}")
    template = getattr(rule, verb)
    pattern, params = compile_template(template)
    fields = {f.name for f in method.input_type.fields}
    if missing := [p for p in params if p not in fields]:
        raise RouteError(f"{method.full_name}: path parameters {missing} are not request fields")
    if rule.body not in ("", "*"):
        # transcode.build_request reads a body into the whole message only.
        raise RouteError(f"{method.full_name}: body {rule.body!r} is not supported; use \"*\"")
    return HttpRule(verb.upper(), template, rule.body, pattern, params)


def _route(service: ServiceDescriptor, method: MethodDescriptor, backend: str) -> Route:
    options = method.GetOptions()
    role = options.Extensions[options_pb2.required_role]
    if role not in ROLE_NAMES:
        raise RouteError(f"{method.full_name} is exposed (backend {backend!r}) but declares no "
                         "(npanel.api.v1.required_role)")
    if method.client_streaming:
        raise RouteError(f"{method.full_name}: client-streaming methods are not exposed")
    return Route(
        full_method=f"/{service.full_name}/{method.name}", service=service.full_name,
        method=method.name, backend=backend, role=role,
        feature_flag=options.Extensions[options_pb2.feature_flag],
        idempotent=options.idempotency_level == descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
        server_streaming=method.server_streaming,
        request_type=message_factory.GetMessageClass(method.input_type),
        response_type=message_factory.GetMessageClass(method.output_type),
        http=_http_rule(method))


def build_routes(files: Iterable[FileDescriptor]) -> dict[str, Route]:
    """Every exposed method, by its full gRPC method path."""
    routes: dict[str, Route] = {}
    for file in files:
        for service in file.services_by_name.values():
            backend = service.GetOptions().Extensions[options_pb2.backend]
            if backend:
                for method in service.methods:
                    route = _route(service, method, backend)
                    routes[route.full_method] = route
    _check_http_conflicts(routes.values())
    return routes


def _check_http_conflicts(routes: Iterable[Route]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for route in routes:
        if route.http is not None:
            key = (route.http.verb, _PARAM.sub("{}", route.http.template))
            if key in seen:
                raise RouteError(f"{route.full_method} and {seen[key]} share {key[0]} {route.http.template}")
            seen[key] = route.full_method


def match_http(routes: Mapping[str, Route], verb: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in routes.values():
        if route.http is not None and route.http.verb == verb:
            m = route.http.pattern.fullmatch(path)
            if m:
                return route, m.groupdict()
    return None


def http_paths(routes: Mapping[str, Route]) -> set[tuple[str, str]]:
    """(verb, template) of every HTTP route."""
    return {(r.http.verb, r.http.template) for r in routes.values() if r.http is not None}
