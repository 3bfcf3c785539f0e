"""In-process fan-out of events to WatchEvents streams.

A subscriber that falls more than QUEUE_SIZE events behind is dropped with a
`Lagged` error instead of growing memory without bound; it resumes by calling
again with the last id it saw (the store replays from cgroup_events).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from .model import Event

QUEUE_SIZE = 10_000


class Lagged(Exception):
    pass


class Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        self.lagged = False

    async def next(self) -> Event:
        if self.lagged:
            raise Lagged("event stream fell behind; call WatchEvents again with since_id")
        return await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    @property
    def watchers(self) -> int:
        return len(self._subscribers)

    def publish(self, events: Iterable[Event]) -> None:
        for event in events:
            for sub in self._subscribers:
                try:
                    sub.queue.put_nowait(event)
                except asyncio.QueueFull:
                    sub.lagged = True

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        sub = Subscription()
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
