"""Waiting for something that happens in the background, with a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(predicate: Callable[[], object], limit_s: float = 10, every_s: float = 0.05) -> bool:
    """True as soon as `predicate()` is truthy; False after `limit_s` seconds."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(every_s)
    return bool(predicate())
