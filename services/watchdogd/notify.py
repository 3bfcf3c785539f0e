"""sd_notify(3): tell systemd that watchdogd is ready and still alive.

A datagram to the AF_UNIX socket named by NOTIFY_SOCKET ("@name" is an abstract
socket). Under `Type=notify` systemd waits for READY=1; with `WatchdogSec=` it
kills and restarts watchdogd unless WATCHDOG=1 arrives at least every
WATCHDOG_USEC microseconds, so the pings come from a task on watchdogd's own
event loop: a blocked loop stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, socket_path: str, watchdog_usec: int = 0) -> None:
        self._address = "\0" + socket_path[1:] if socket_path.startswith("@") else socket_path
        self._watchdog_s = watchdog_usec / 1_000_000
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, state: str) -> bool:
        """Send one notification; False (and a log line) if it could not be sent."""
        if not self.enabled:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(state.encode(), self._address)
        except OSError as exc:
            log.warning("sd_notify %r to %r failed: %s", state, self._address, exc)
            return False
        return True

    def ready(self) -> None:
        self.send("READY=1\nSTATUS=watching targets")
        if self.enabled and self._watchdog_s > 0:
            self._task = asyncio.create_task(self._ping(), name="sd-watchdog")

    async def _ping(self) -> None:
        # Half the interval, as sd_watchdog_enabled(3) recommends.
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self._watchdog_s / 2)

    async def stopping(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.send("STOPPING=1")
