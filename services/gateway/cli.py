"""`npanel tokens ...`: API tokens, through the gateway (admin role).

The first admin token cannot come from the gateway (nothing could call it yet):
`npanel tokens create --bootstrap` writes it straight to the database named by
NPANEL_DATABASE_URL, which only someone who already holds the database can do.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import socket
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.json_format import MessageToDict

from npanel.api.v1.options_pb2 import Role
from npanel.common.cliclient import add_connection_options, run
from npanel.common.db import open_pool
from npanel.common.output import table
from npanel.common.settings import DatabaseSettings

from .routes import ROLE_NAMES
from .store import TokenStore
from .tokens import ROLES_BY_NAME
from .v1 import gateway_pb2 as pb
from .v1 import gateway_pb2_grpc

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from .v1.gateway_pb2_grpc import TokenServiceAsyncStub as Stub

TIMEOUT_S = 10.0


def _stub(channel: grpc.aio.Channel) -> Stub:
    return gateway_pb2_grpc.TokenServiceStub(channel)


def _row(t: pb.Token) -> dict[str, Any]:
    def when(ts: Any) -> str:
        # An unset Timestamp is the epoch: show it as "-".
        return ts.ToDatetime().isoformat(timespec="seconds") if ts.seconds or ts.nanos else "-"
    return {"name": t.name, "role": ROLE_NAMES.get(t.role, "?"),
            "prefix": t.prefix, "created": when(t.created_at), "by": t.created_by,
            "expires": when(t.expires_at), "revoked": when(t.revoked_at),
            "last used": when(t.last_used_at)}


def _created(token: dict[str, Any], secret: str) -> str:
    return (f"token {token['name']} ({token['role']}) created. It is shown only this once:\n\n"
            f"  {secret}\n\nUse it as: export NPANEL_TOKEN={secret}")


async def _create(channel: grpc.aio.Channel, args: argparse.Namespace) -> tuple[Any, str]:
    response = await _stub(channel).CreateToken(pb.CreateTokenRequest(
        name=args.name, role=Role.Value(args.role.upper()), ttl_days=args.ttl_days), timeout=TIMEOUT_S)
    data = MessageToDict(response, always_print_fields_with_no_presence=True)
    return data, _created(_row(response.token), response.secret)


async def _list(channel: grpc.aio.Channel, args: argparse.Namespace) -> tuple[Any, str]:
    response = await _stub(channel).ListTokens(pb.ListTokensRequest(include_revoked=args.all),
                                               timeout=TIMEOUT_S)
    rows = [_row(t) for t in response.tokens]
    return MessageToDict(response, always_print_fields_with_no_presence=True), table(
        rows, ["name", "role", "prefix", "created", "by", "expires", "revoked", "last used"])


async def _revoke(channel: grpc.aio.Channel, args: argparse.Namespace) -> tuple[Any, str]:
    token = await _stub(channel).RevokeToken(pb.RevokeTokenRequest(name=args.name, reason=args.reason),
                                             timeout=TIMEOUT_S)
    return MessageToDict(token), f"token {token.name} revoked"


async def _whoami(channel: grpc.aio.Channel, args: argparse.Namespace) -> tuple[Any, str]:
    token = await _stub(channel).WhoAmI(pb.WhoAmIRequest(), timeout=TIMEOUT_S)
    row = _row(token)
    return MessageToDict(token), f"{row['name']} ({row['role']})"


async def bootstrap(database: DatabaseSettings, name: str, role: str, ttl_days: int) -> tuple[str, str]:
    """Create a token directly in the database; return (name, secret)."""
    pool = await open_pool(database, "npanel-tokens")
    try:
        actor = f"bootstrap:{getpass.getuser()}@{socket.gethostname()}"
        token, secret = await TokenStore(pool).create(name, role, ttl_days, actor)
        return token.name, secret
    finally:
        await pool.close()


def _create_command(args: argparse.Namespace) -> int:
    if not args.bootstrap:
        return run("tokens create", _create)(args)
    name, secret = asyncio.run(bootstrap(DatabaseSettings.from_environ(), args.name, args.role,
                                         args.ttl_days))
    if args.json:
        print(json.dumps({"name": name, "role": args.role, "secret": secret}))
    else:
        print(_created({"name": name, "role": args.role}, secret))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = sub.add_parser("tokens", help="API tokens: create, list, revoke")
    add_connection_options(tokens)
    cmds = tokens.add_subparsers(dest="tokens_command", required=True)
    create = cmds.add_parser("create", help="create a token (printed once)")
    create.add_argument("--name", required=True, help="unique; recorded as the actor of its changes")
    create.add_argument("--role", required=True, choices=sorted(ROLES_BY_NAME))
    create.add_argument("--ttl-days", type=int, default=0, help="days until it expires (0: never)")
    create.add_argument("--bootstrap", action="store_true",
                        help="write to the database (NPANEL_DATABASE_URL) instead of calling the gateway")
    create.set_defaults(func=_create_command)
    listing = cmds.add_parser("list", help="tokens (never their secrets)")
    listing.add_argument("--all", action="store_true", help="include revoked tokens")
    listing.set_defaults(func=run("tokens list", _list))
    revoke = cmds.add_parser("revoke", help="stop a token from working (within 2 s)")
    revoke.add_argument("name")
    revoke.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    revoke.set_defaults(func=run("tokens revoke", _revoke))
    cmds.add_parser("whoami", help="the token in use").set_defaults(func=run("tokens whoami", _whoami))
