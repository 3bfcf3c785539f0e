"""Recovery drivers: how a target is (re)started and where its last log lines come from.

Every restart is a graceful stop with a bounded wait, then a kill, then a start.
Processes are addressed by the pid (and process group) this service started,
never by a name pattern: the original draft's `pkill` pattern matched its own
command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from .model import DriverSpec

log = logging.getLogger(__name__)
LOG_LINES = 100
ExitCallback = Callable[[int], None]


class DriverError(RuntimeError):
    """A start, stop or restart did not work; the message says what was tried."""


class Driver(Protocol):
    async def start(self) -> None:
        """Bring the target up if this driver owns it (process); otherwise nothing."""

    async def restart(self) -> None: ...

    async def stop(self) -> None:
        """Release it: a process target's child is stopped; others are left running."""

    async def last_logs(self) -> list[str]: ...

    @property
    def pid(self) -> int: ...


def exit_text(code: int) -> str:
    if code < 0:
        return f"process killed by signal {signal.Signals(-code).name}"
    return f"process exited with status {code}"


class ProcessDriver:
    """watchdogd's own child, in its own session; stdout and stderr kept in a ring buffer."""

    def __init__(self, spec: DriverSpec, on_exit: ExitCallback) -> None:
        self._spec = spec
        self._on_exit = on_exit
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.lines: deque[str] = deque(maxlen=LOG_LINES)
        self._log_file: IO[str] | None = None

    @property
    def pid(self) -> int:
        running = self._proc is not None and self._proc.returncode is None
        return self._proc.pid if running and self._proc is not None else 0

    async def start(self) -> None:
        if self.pid:
            return
        if self._spec.log_file and self._log_file is None:
            # Opening a local file for append does not block meaningfully.
            self._log_file = Path(self._spec.log_file).open("a", encoding="utf-8")  # noqa: SIM115, ASYNC230
        # Children inherit watchdogd's environment plus their own, as under any supervisor.
        env = {**os.environ, **self._spec.env} if self._spec.env else None
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._spec.command, env=env, cwd=self._spec.cwd or None,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            self._line(f"[watchdogd] cannot start {self._spec.command[0]}: {exc}")
            raise DriverError(f"starting {list(self._spec.command)}: {exc}") from exc
        self._proc = proc
        self._tasks = [asyncio.create_task(self._read(proc)), asyncio.create_task(self._wait(proc))]

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            self._line(raw.decode(errors="replace").rstrip("\n"))

    def _line(self, line: str) -> None:
        self.lines.append(line)
        if self._log_file is not None:
            self._log_file.write(line + "\n")
            self._log_file.flush()

    async def _wait(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if proc is self._proc and not self._stopping:
            self._line(f"[watchdogd] {exit_text(code)}")
            self._on_exit(code)

    async def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._stopping = True
        try:
            await self._terminate(proc)
        finally:
            self._stopping = False
            # The group was killed, so its output ends; bounded all the same.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 2.0)
            self._proc = None

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            # A stopped (SIGSTOP) process would hold SIGTERM pending until continued.
            _signal_group(proc.pid, signal.SIGCONT)
            try:
                await asyncio.wait_for(proc.wait(), self._spec.stop_timeout_s)
            except TimeoutError:
                self._line(f"[watchdogd] no exit within {self._spec.stop_timeout_s:g} s of SIGTERM; SIGKILL")
        # Whatever is left of its process group goes too.
        _signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def last_logs(self) -> list[str]:
        return list(self.lines)

    def close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _run(argv: list[str], timeout_s: float) -> tuple[int, str]:
    """Run a helper command with a deadline; (exit status, output)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
    except OSError as exc:
        raise DriverError(f"{argv[0]}: {exc}") from exc
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"{' '.join(argv)}: no answer within {timeout_s:g} s"
    assert proc.returncode is not None
    return proc.returncode, output.decode(errors="replace")


class SystemdDriver:
    """A unit restarted through systemctl: stop (bounded), kill if needed, start."""

    def __init__(self, spec: DriverSpec, systemctl: str = "systemctl",
                 journalctl: str = "journalctl") -> None:
        self._spec = spec
        self._systemctl = systemctl
        self._journalctl = journalctl
        self.pid = 0

    async def start(self) -> None:
        return None

    async def restart(self) -> None:
        unit, wait = self._spec.unit, self._spec.stop_timeout_s
        code, out = await _run([self._systemctl, "stop", unit], wait)
        if code != 0:
            log.warning("systemctl stop %s: %s; killing it", unit, out.strip())
            await _run([self._systemctl, "kill", "--signal=SIGKILL", unit], 10.0)
        code, out = await _run([self._systemctl, "start", unit], 60.0)
        if code != 0:
            raise DriverError(f"systemctl start {unit} failed ({code}): {out.strip()[-300:]}")

    async def stop(self) -> None:
        return None

    async def last_logs(self) -> list[str]:
        code, out = await _run([self._journalctl, "--unit", self._spec.unit, "--lines", str(LOG_LINES),
                                "--no-pager", "--output", "cat"], 10.0)
        lines = out.splitlines()[-LOG_LINES:]
        return lines if code == 0 else [f"[watchdogd] journalctl failed ({code})", *lines]


class DockerDriver:
    """A container restarted through the Docker Engine API on its Unix socket."""

    def __init__(self, spec: DriverSpec, socket_path: str) -> None:
        self._spec = spec
        self._socket = socket_path
        self.pid = 0

    def _container(self) -> Any:
        try:
            import docker  # only when a docker target exists
        except ImportError as exc:
            raise DriverError(f"docker container {self._spec.container!r}: the docker SDK is not "
                              f"installed ({exc})") from exc

        try:
            # Asks the Engine its API version: an absent or refused socket fails here.
            client = docker.DockerClient(base_url=f"unix://{self._socket}", timeout=60)
        except docker.errors.DockerException as exc:
            raise DriverError(f"docker container {self._spec.container!r}: "
                              f"no Docker Engine at {self._socket}: {exc}") from exc
        try:
            return client.containers.get(self._spec.container)
        except docker.errors.DockerException as exc:
            client.close()
            raise DriverError(f"docker container {self._spec.container!r}: {exc}") from exc

    def _restart(self) -> None:
        container = self._container()
        import docker  # importable: _container() succeeded

        try:
            # The Engine's stop: SIGTERM, wait at most t seconds, SIGKILL.
            container.stop(timeout=max(1, math.ceil(self._spec.stop_timeout_s)))
            container.start()
        except docker.errors.DockerException as exc:
            raise DriverError(f"restarting container {self._spec.container!r}: {exc}") from exc
        finally:
            container.client.close()

    def _logs(self) -> list[str]:
        container = self._container()
        import docker  # importable: _container() succeeded

        try:
            raw: bytes = container.logs(tail=LOG_LINES)
        except docker.errors.DockerException as exc:
            raise DriverError(f"logs of container {self._spec.container!r}: {exc}") from exc
        finally:
            container.client.close()
        return raw.decode(errors="replace").splitlines()[-LOG_LINES:]

    async def start(self) -> None:
        return None

    async def restart(self) -> None:
        await asyncio.to_thread(self._restart)

    async def stop(self) -> None:
        return None

    async def last_logs(self) -> list[str]:
        try:
            return await asyncio.to_thread(self._logs)
        except DriverError as exc:
            return [f"[watchdogd] {exc}"]


class NoDriver:
    """Observe only: checks and incidents, never a restart."""

    pid = 0

    async def start(self) -> None:
        return None

    async def restart(self) -> None:
        raise DriverError("driver 'none' never restarts; recover this target by hand")

    async def stop(self) -> None:
        return None

    async def last_logs(self) -> list[str]:
        return []


def make_driver(spec: DriverSpec, on_exit: ExitCallback, *, systemctl: str, docker_socket: str) -> Driver:
    if spec.kind == "process":
        return ProcessDriver(spec, on_exit)
    if spec.kind == "systemd":
        return SystemdDriver(spec, systemctl)
    if spec.kind == "docker":
        return DockerDriver(spec, docker_socket)
    return NoDriver()
