"""What every operator command shares: the gateway address, the token, errors.

The token comes from --token, else NPANEL_TOKEN, else a file: --token-file or
NPANEL_TOKEN_FILE, else .npanel/dev-admin-token (written by `npanel dev`), else
~/.config/npanel/token.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from .output import emit, fail
from .settings import CliSettings

Handler = Callable[[grpc.aio.Channel, argparse.Namespace], Awaitable[tuple[Any, str]]]
DEV_TOKEN_FILE = Path(".npanel") / "dev-admin-token"
USER_TOKEN_FILE = Path("~/.config/npanel/token")


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    settings = CliSettings.from_environ()
    parser.add_argument("--gateway", default=settings.gateway_address,
                        help="gateway gRPC address (default NPANEL_GATEWAY_ADDRESS or 127.0.0.1:50050)")
    parser.add_argument("--token", default=settings.token, help="API token (default NPANEL_TOKEN)")
    parser.add_argument("--token-file", default=settings.token_file,
                        help="file holding the token (default NPANEL_TOKEN_FILE, "
                             ".npanel/dev-admin-token, ~/.config/npanel/token)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def resolve_token(args: argparse.Namespace) -> str:
    if args.token:
        return str(args.token)
    candidates = [Path(args.token_file)] if args.token_file else [DEV_TOKEN_FILE, USER_TOKEN_FILE]
    for path in candidates:
        path = path.expanduser()
        if path.is_file():
            return path.read_text().strip()
    return ""


if TYPE_CHECKING:  # generic only in the type stubs
    _Unary = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _Stream = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
else:
    _Unary = grpc.aio.UnaryUnaryClientInterceptor
    _Stream = grpc.aio.UnaryStreamClientInterceptor


class _Bearer(_Unary, _Stream):
    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=(*(details.metadata or ()), *self._metadata))

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


def run(command: str, handler: Handler) -> Callable[[argparse.Namespace], int]:
    """An argparse `func` that calls the gateway and prints for people or programs."""
    def call(args: argparse.Namespace) -> int:
        async def go() -> tuple[Any, str]:
            interceptors: Any = [_Bearer(resolve_token(args))]
            async with grpc.aio.insecure_channel(args.gateway, interceptors=interceptors) as channel:
                return await handler(channel, args)
        try:
            data, human = asyncio.run(go())
        except grpc.aio.AioRpcError as exc:
            return fail(command, describe(exc, args.gateway), as_json=args.json)
        emit(data, as_json=args.json, human=human)
        return 0
    return call


def describe(exc: grpc.aio.AioRpcError, address: str) -> str:
    hints = {
        grpc.StatusCode.UNAVAILABLE: f" (is the gateway running at {address}?)",
        grpc.StatusCode.UNAUTHENTICATED: " (pass --token, set NPANEL_TOKEN, or create a token with "
                                         "`npanel tokens create`)",
    }
    return f"{exc.code().name}: {exc.details()}{hints.get(exc.code(), '')}"
