"""`npanel flags ...`: operator commands for feature flags, through the gateway.

The actor recorded for a change is the token's name (the gateway sets it).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from npanel.common.cliclient import Handler, add_connection_options, run
from npanel.common.output import table

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


async def _list(channel: grpc.aio.Channel, args: argparse.Namespace) -> tuple[Any, str]:
    stub = _stub(channel)
    response = await stub.ListFlags(pb.ListFlagsRequest(), timeout=TIMEOUT_S)
    rows = [_flag_row(f) for f in response.flags]
    return _json(response), table(rows, ["name", "track", "enabled", "rollout", "revision",
                                                 "description"])


async def _show(channel: grpc.aio.Channel, args: argparse.Namespace) -> tuple[Any, str]:
    stub = _stub(channel)
    flag = await stub.GetFlag(pb.GetFlagRequest(name=args.name), timeout=TIMEOUT_S)
    return _json(flag), "\n".join(f"{k:<12} {v}" for k, v in _flag_row(flag).items())


def _setter(**fields: Any) -> Handler:
    async def run(channel: grpc.aio.Channel, args: argparse.Namespace) -> tuple[Any, str]:
        stub = _stub(channel)
        values = {k: (getattr(args, v) if isinstance(v, str) else v) for k, v in fields.items()}
        flag = await stub.SetFlag(pb.SetFlagRequest(
            name=args.name, reason=args.reason, **values), timeout=TIMEOUT_S)
        state = "enabled" if flag.enabled else "disabled"
        return _json(flag), f"{flag.name}: {state}, rollout {flag.rollout_percent}% " \
                                    f"(revision {flag.revision})"
    return run


async def _disable_all(channel: grpc.aio.Channel, args: argparse.Namespace) -> tuple[Any, str]:
    stub = _stub(channel)
    response = await stub.DisableAll(pb.DisableAllRequest(reason=args.reason), timeout=TIMEOUT_S)
    names = ", ".join(response.disabled) or "none were enabled"
    return _json(response), f"disabled: {names} (revision {response.revision})"


async def _history(channel: grpc.aio.Channel, args: argparse.Namespace) -> tuple[Any, str]:
    stub = _stub(channel)
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


def _stub(channel: grpc.aio.Channel) -> Stub:
    return flagd_pb2_grpc.FlagServiceStub(channel)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    flags = sub.add_parser("flags", help="feature flags: list, change, history")
    add_connection_options(flags)
    cmds = flags.add_subparsers(dest="flags_command", required=True)
    cmds.add_parser("list", help="every flag").set_defaults(func=run("flags", _list))
    _named(cmds, "show", "one flag").set_defaults(func=run("flags", _show))
    enable, disable = _setter(enabled=True), _setter(enabled=False)
    _change(_named(cmds, "enable", "turn a flag on")).set_defaults(func=run("flags", enable))
    _change(_named(cmds, "disable", "turn a flag off")).set_defaults(func=run("flags", disable))
    rollout = _change(_named(cmds, "rollout", "set the share of accounts an enabled flag is on for"))
    rollout.add_argument("percent", type=int, help="0..100")
    rollout.set_defaults(func=run("flags", _setter(rollout_percent="percent")))
    _change(cmds.add_parser("disable-all", help="emergency rollback: every flag off")).set_defaults(
        func=run("flags", _disable_all))
    history = cmds.add_parser("history", help="who changed what, newest first")
    history.add_argument("name", nargs="?", help="one flag (default: all)")
    history.add_argument("--limit", type=int, default=50, help="rows (1..500, default 50)")
    history.set_defaults(func=run("flags", _history))


def _named(cmds: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
           ) -> argparse.ArgumentParser:
    parser = cmds.add_parser(name, help=text)
    parser.add_argument("name", help="flag name")
    return parser


def _change(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    return parser
