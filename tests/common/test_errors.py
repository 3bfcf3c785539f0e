from __future__ import annotations

import asyncpg
import grpc
import pytest

from npanel.common import errors
from npanel.common.interceptors import status_for

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("exc", "code"), [
    (errors.InvalidArgument("rollout_percent", 150, "must be 0..100"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound("flag", "nope"), grpc.StatusCode.NOT_FOUND),
    (errors.FailedPrecondition("flag cgroups_isolation is disabled"), grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unavailable("database down"), grpc.StatusCode.UNAVAILABLE),
    (ConnectionRefusedError(111, "refused"), grpc.StatusCode.UNAVAILABLE),
    (asyncpg.ConnectionDoesNotExistError("closed"), grpc.StatusCode.UNAVAILABLE),
])
def test_domain_and_database_errors_map_to_codes(exc: Exception, code: grpc.StatusCode) -> None:
    mapped = status_for(exc)
    assert mapped is not None and mapped[0] == code


def test_invalid_argument_names_field_and_value() -> None:
    mapped = status_for(errors.InvalidArgument("rollout_percent", 150, "must be from 0 to 100"))
    assert mapped is not None
    assert mapped[1] == "rollout_percent=150: must be from 0 to 100"


def test_bugs_are_not_mapped() -> None:
    assert status_for(KeyError("x")) is None
