"""datetime <-> google.protobuf.Timestamp, the one conversion every servicer uses."""

from __future__ import annotations

from datetime import datetime
from typing import overload

from google.protobuf.timestamp_pb2 import Timestamp


@overload
def timestamp(value: datetime) -> Timestamp: ...
@overload
def timestamp(value: None) -> None: ...
def timestamp(value: datetime | None) -> Timestamp | None:
    """The Timestamp of an aware datetime; None (an unset field) for None."""
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts
