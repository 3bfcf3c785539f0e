"""The in-memory copy of every flag, and the fan-out of changes to watchers.

Evaluations read only this, so they keep answering while the database is down.
It is fed by the database sync (NOTIFY plus re-reads) and by this replica's own
writes; a flag is replaced only by a newer revision, so the order in which
those two paths arrive does not matter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from .model import Flag

# Changes a watcher may fall behind by before it is cut off; it then
# reconnects with its last revision and catches up from the cache.
SUBSCRIBER_BACKLOG = 1024


class Lagged(Exception):
    """A watcher fell more than SUBSCRIBER_BACKLOG changes behind."""


class Subscription:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[list[Flag], int]] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self.lagged = False

    def offer(self, flags: list[Flag], revision: int) -> None:
        try:
            self._queue.put_nowait((flags, revision))
        except asyncio.QueueFull:
            self.lagged = True

    async def next(self) -> tuple[list[Flag], int]:
        if self.lagged and self._queue.empty():
            raise Lagged(f"watcher fell more than {SUBSCRIBER_BACKLOG} changes behind; reconnect")
        return await self._queue.get()


class FlagCache:
    def __init__(self) -> None:
        self._flags: dict[str, Flag] = {}
        self._subscribers: set[Subscription] = set()
        self.revision = 0

    def get(self, name: str) -> Flag | None:
        return self._flags.get(name)

    def all(self) -> list[Flag]:
        return sorted(self._flags.values(), key=lambda f: f.name)

    def changed_since(self, revision: int) -> list[Flag]:
        return sorted((f for f in self._flags.values() if f.revision > revision), key=lambda f: f.name)

    def apply(self, flags: Iterable[Flag]) -> list[Flag]:
        """Take every flag newer than what is held; tell watchers; return the changes."""
        changed = []
        for flag in flags:
            held = self._flags.get(flag.name)
            if held is None or flag.revision > held.revision:
                self._flags[flag.name] = flag
                changed.append(flag)
        if changed:
            self.revision = max(self.revision, *(f.revision for f in changed))
            for subscriber in self._subscribers:
                subscriber.offer(changed, self.revision)
        return changed

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        subscription = Subscription()
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    @property
    def watchers(self) -> int:
        return len(self._subscribers)
