"""cgroupd listens on a 0600 Unix socket by default, owned by the gateway's user."""

from __future__ import annotations

import os
import pwd
import socket
import stat
from pathlib import Path

import pytest

from npanel.cgroupd.main import restrict_socket
from npanel.common.settings import CGROUPD_SOCKET, GatewaySettings, ServiceSettings, SettingsError

pytestmark = pytest.mark.unit


def test_cgroupd_defaults_to_the_unix_socket_and_the_gateway_looks_there() -> None:
    assert ServiceSettings.read("cgroupd", {}).listen == CGROUPD_SOCKET
    assert CGROUPD_SOCKET.startswith("unix:/")
    assert GatewaySettings.from_environ({}).backends["cgroupd"] == CGROUPD_SOCKET
    assert ServiceSettings.read("flagd", {}).listen == "127.0.0.1:50051"  # others unchanged


def _bound_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock


def test_socket_is_0600_and_owned_by_the_configured_user(tmp_path: Path) -> None:
    path = tmp_path / "cgroupd.sock"
    with _bound_socket(path):
        restrict_socket(path, "")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        if os.geteuid() != 0:
            pytest.skip("changing a socket's owner needs root")
        restrict_socket(path, "nobody")
        assert path.stat().st_uid == pwd.getpwnam("nobody").pw_uid
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_unknown_owner_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "cgroupd.sock"
    expected = "NPANEL_CGROUPD_SOCKET_OWNER='no-such-user'"
    with _bound_socket(path), pytest.raises(SettingsError, match=expected):
        restrict_socket(path, "no-such-user")
