"""Token-bucket rate limits per key (client IP, token). Pure: the clock is injected.

Each gateway replica counts on its own, so N replicas admit up to N times the
limit in total; the limits protect the backends from one noisy client, they are
not a billing meter.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        self._max_keys = max_keys
        # key -> (tokens left, time of last refill); oldest first, so memory stays bounded.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, key: str) -> float:
        """0 when the request may proceed, else the seconds until it could."""
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * self._rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self._rate
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait
