"""The compose stack, built offline by `make images` and started through testcontainers.

Today the stack is PostgreSQL and the one-shot `migrate`; each service adds its
own checks here as it joins deploy/compose.yaml.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pg_container import set_testcontainers_defaults

pytestmark = pytest.mark.e2e
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def stack() -> Iterator[object]:
    set_testcontainers_defaults()
    from testcontainers.compose import DockerCompose

    # compose reads these for its ${...} interpolation.
    os.environ.update({"NPANEL_GATEWAY_HTTP_PORT": str(_free_port()),
                       "NPANEL_GATEWAY_GRPC_PORT": str(_free_port())})
    # These hosts have no full cgroup v2 (ARCHITECTURE.md): cgroupd runs in its
    # named simulation mode, unprivileged (compose.simulation.yaml).
    compose = DockerCompose(str(DEPLOY), compose_file_name=["compose.yaml", "compose.simulation.yaml"],
                            wait=False)
    with compose:
        yield compose


def _psql(stack: object, sql: str) -> str:
    out, err, code = stack.exec_in_container(  # type: ignore[attr-defined]
        ["psql", "-U", "npanel", "-d", "npanel", "-tAc", sql], service_name="postgres")
    assert code == 0, err
    return str(out).strip()


def _migrate_exit_code(stack: object, limit_s: float = 90) -> int:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for c in stack.get_containers(include_all=True):  # type: ignore[attr-defined]
            if c.Service == "migrate" and c.State == "exited":
                return int(c.ExitCode)
        time.sleep(0.5)
    raise AssertionError(f"migrate did not finish within {limit_s:.0f} s")


def test_migrate_runs_once_and_exits_cleanly(stack: object) -> None:
    assert _migrate_exit_code(stack) == 0
    versions = _psql(stack, "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations")
    assert versions.split(",")[0] == "1"
    # The audit guard is live in the deployed schema, not only in tests.
    with pytest.raises(subprocess.CalledProcessError) as refused:
        stack.exec_in_container(  # type: ignore[attr-defined]
            ["psql", "-U", "npanel", "-d", "npanel", "-c", "TRUNCATE audit_log"],
            service_name="postgres")
    assert b"append-only" in refused.value.stderr


def _health(stack: object, service: str) -> str | None:
    for c in stack.get_containers(include_all=True):  # type: ignore[attr-defined]
        if c.Service == service:
            return str(c.Health) if c.Health else None
    return None


def test_flagd_turns_healthy(stack: object) -> None:
    deadline = time.monotonic() + 120
    while _health(stack, "flagd") != "healthy" and time.monotonic() < deadline:
        time.sleep(1)
    assert _health(stack, "flagd") == "healthy"
    out, _err, code = stack.exec_in_container(  # type: ignore[attr-defined]
        ["npanel", "probe", "127.0.0.1:50051", "--service", "npanel.flagd.v1.FlagService"],
        service_name="flagd")
    assert code == 0 and "SERVING" in out


def test_only_published_ports_are_on_loopback(stack: object) -> None:
    for c in stack.get_containers(include_all=True):  # type: ignore[attr-defined]
        for p in c.Publishers or []:
            assert not p.PublishedPort or p.URL in ("127.0.0.1", "localhost"), (c.Service, p)


def test_postgres_publishes_no_port(stack: object) -> None:
    for c in stack.get_containers(include_all=True):  # type: ignore[attr-defined]
        if c.Service == "postgres":
            assert not [p for p in (c.Publishers or []) if p.PublishedPort]


def _wait_healthy(stack: object, service: str, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while _health(stack, service) != "healthy" and time.monotonic() < deadline:
        time.sleep(1)
    assert _health(stack, service) == "healthy", service


def _get(path: str, token: str) -> tuple[int, object]:
    url = f"http://127.0.0.1:{os.environ['NPANEL_GATEWAY_HTTP_PORT']}{path}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_gateway_is_the_front_door(stack: object) -> None:
    _wait_healthy(stack, "gateway")
    out, _err, code = stack.exec_in_container(  # type: ignore[attr-defined]
        ["npanel", "tokens", "--json", "create", "--bootstrap", "--name", "e2e", "--role", "admin"],
        service_name="gateway")
    assert code == 0
    token = json.loads(out)["secret"]
    status, body = _get("/v1/flags", token)
    assert status == 200 and len(body["flags"]) == 15  # type: ignore[index]
    assert not any(f["enabled"] for f in body["flags"])  # type: ignore[index]
    status, body = _get("/v1/flags", "npn_wrong")
    assert status == 401 and body["code"] == 16  # type: ignore[index]
    _wait_healthy(stack, "watchdogd")
    status, body = _get("/v1/watchdog/targets", token)
    assert status == 200, body
    _wait_healthy(stack, "cgroupd")
    status, body = _get("/v1/accounts", token)
    assert status == 200 and body["simulated"] is True, body  # type: ignore[index]
