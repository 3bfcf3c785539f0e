"""`npanel flags ...`: operator commands for feature flags.

They talk to flagd directly (NPANEL_FLAGD_ADDRESS or --flagd) until the gateway
exists; then they will go through it with a token.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from npanel.common.output import emit, fail, table
from npanel.common.settings import CliSettings

from .v1 import flagd_pb2 as pb
from .v1 import flagd_pb2_grpc

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from .v1.flagd_pb2_grpc import FlagServiceAsyncStub as Stub
TIMEOUT_S = 10.0


def _json(message: Message) -> dict[str, Any]:
    # Every field, false and zero included: a program must not guess defaults.
    return MessageToDict(message, always_print_fields_with_no_presence=True)


def _flag_row(f: pb.Flag) -> dict[str, Any]:
    return {"name": f.name, "track": f.track, "enabled": f.enabled, "rollout": f"{f.rollout_percent}%",
            "required": f.required, "revision": f.revision, "description": f.description}


async def _list(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
    response = await stub.ListFlags(pb.ListFlagsRequest(), timeout=TIMEOUT_S)
    rows = [_flag_row(f) for f in response.flags]
    return _json(response), table(rows, ["name", "track", "enabled", "rollout", "revision",
                                                 "description"])


async def _show(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
    flag = await stub.GetFlag(pb.GetFlagRequest(name=args.name), timeout=TIMEOUT_S)
    return _json(flag), "\n".join(f"{k:<12} {v}" for k, v in _flag_row(flag).items())


def _setter(**fields: Any) -> Callable[[Stub, argparse.Namespace], Awaitable[tuple[Any, str]]]:
    async def run(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
        values = {k: (getattr(args, v) if isinstance(v, str) else v) for k, v in fields.items()}
        flag = await stub.SetFlag(pb.SetFlagRequest(
            name=args.name, actor=args.actor, reason=args.reason, **values), timeout=TIMEOUT_S)
        state = "enabled" if flag.enabled else "disabled"
        return _json(flag), f"{flag.name}: {state}, rollout {flag.rollout_percent}% " \
                                    f"(revision {flag.revision})"
    return run


async def _disable_all(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
    response = await stub.DisableAll(pb.DisableAllRequest(actor=args.actor, reason=args.reason),
                                     timeout=TIMEOUT_S)
    names = ", ".join(response.disabled) or "none were enabled"
    return _json(response), f"disabled: {names} (revision {response.revision})"


async def _history(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
    response = await stub.ListToggles(pb.ListTogglesRequest(
        flag=args.name or "", page_size=args.limit), timeout=TIMEOUT_S)
    rows = [{"time": t.created_at.ToDatetime().isoformat(timespec="seconds"), "flag": t.flag,
             "action": t.action, "actor": t.actor,
             "change": f"{_state(t.previous_enabled, t.previous_rollout_percent)} -> "
                       f"{_state(t.new_enabled, t.new_rollout_percent)}",
             "reason": t.reason} for t in response.toggles]
    return _json(response), table(rows, ["time", "flag", "action", "actor", "change", "reason"])


def _state(enabled: bool, rollout: int) -> str:
    return f"{'on' if enabled else 'off'}/{rollout}%"


def _run(handler: Callable[[Stub, argparse.Namespace], Awaitable[tuple[Any, str]]]) -> Callable[
        [argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        async def call() -> tuple[Any, str]:
            async with grpc.aio.insecure_channel(args.flagd) as channel:
                return await handler(flagd_pb2_grpc.FlagServiceStub(channel), args)
        try:
            data, human = asyncio.run(call())
        except grpc.aio.AioRpcError as exc:
            down = exc.code() == grpc.StatusCode.UNAVAILABLE
            hint = f" (is flagd running at {args.flagd}?)" if down else ""
            return fail(f"flags {args.flags_command}", f"{exc.code().name}: {exc.details()}{hint}",
                        as_json=args.json)
        emit(data, as_json=args.json, human=human)
        return 0
    return command


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    flags = sub.add_parser("flags", help="feature flags: list, change, history")
    flags.add_argument("--flagd", default=CliSettings.from_environ().flagd_address,
                       help="flagd address (default NPANEL_FLAGD_ADDRESS or 127.0.0.1:50051)")
    flags.add_argument("--json", action="store_true", help="machine-readable output")
    cmds = flags.add_subparsers(dest="flags_command", required=True)
    cmds.add_parser("list", help="every flag").set_defaults(func=_run(_list))
    _named(cmds, "show", "one flag").set_defaults(func=_run(_show))
    _change(_named(cmds, "enable", "turn a flag on")).set_defaults(func=_run(_setter(enabled=True)))
    _change(_named(cmds, "disable", "turn a flag off")).set_defaults(func=_run(_setter(enabled=False)))
    rollout = _change(_named(cmds, "rollout", "set the share of accounts an enabled flag is on for"))
    rollout.add_argument("percent", type=int, help="0..100")
    rollout.set_defaults(func=_run(_setter(rollout_percent="percent")))
    _change(cmds.add_parser("disable-all", help="emergency rollback: every flag off")).set_defaults(
        func=_run(_disable_all))
    history = cmds.add_parser("history", help="who changed what, newest first")
    history.add_argument("name", nargs="?", help="one flag (default: all)")
    history.add_argument("--limit", type=int, default=50, help="rows (1..500, default 50)")
    history.set_defaults(func=_run(_history))


def _named(cmds: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
           ) -> argparse.ArgumentParser:
    parser = cmds.add_parser(name, help=text)
    parser.add_argument("name", help="flag name")
    return parser


def _change(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    parser.add_argument("--actor", default=f"{getpass.getuser()}@{socket.gethostname()}",
                        help="who (default user@host; the gateway will take it from the token)")
    return parser
