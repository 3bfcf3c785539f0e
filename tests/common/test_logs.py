from __future__ import annotations

import json
import logging

import pytest

from npanel.common.logs import JsonFormatter, request_id_var

pytestmark = pytest.mark.unit


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("npanel.x", logging.WARNING, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def test_json_line_carries_request_id_and_extra_fields() -> None:
    token = request_id_var.set("req-42")
    try:
        line = JsonFormatter("flagd").format(_record("flag %s toggled", account="a1"))
    finally:
        request_id_var.reset(token)
    entry = json.loads(line)
    assert entry["request_id"] == "req-42"
    assert entry["service"] == "flagd"
    assert entry["level"] == "warning"
    assert entry["msg"] == "flag %s toggled"
    assert entry["account"] == "a1"


def test_no_request_id_outside_a_call() -> None:
    assert "request_id" not in json.loads(JsonFormatter("x").format(_record("m")))
