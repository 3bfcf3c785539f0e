"""`npanel watchdog ...`: operator commands for watchdogd.

They go through the gateway (cliclient); the actor recorded is the token's name.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from npanel.common.cliclient import add_connection_options, run
from npanel.common.output import table

from .v1 import watchdogd_pb2 as pb
from .v1 import watchdogd_pb2_grpc

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from .v1.watchdogd_pb2_grpc import WatchdogServiceAsyncStub as Stub
TIMEOUT_S = 10.0
Handler = Callable[["Stub", argparse.Namespace], Awaitable[tuple[Any, str]]]


def _json(message: Message) -> dict[str, Any]:
    return MessageToDict(message, always_print_fields_with_no_presence=True)


def _target_row(t: pb.Target) -> dict[str, Any]:
    where = t.check.address or " ".join(t.check.command)
    how = {"process": f"pid {t.pid}" if t.pid else "not running", "systemd": t.driver.unit,
           "docker": t.driver.container}.get(t.driver.kind, "observe only")
    return {"name": t.name, "state": t.state, "check": f"{t.check.kind} {where}",
            "driver": f"{t.driver.kind} ({how})", "restarts/h": t.restarts_in_window,
            "last failure": t.last_failure, "source": t.source}


async def _targets(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
    if args.name:
        target = await stub.GetTarget(pb.GetTargetRequest(name=args.name), timeout=TIMEOUT_S)
        return _json(target), "\n".join(f"{k:<13} {v}" for k, v in _target_row(target).items())
    response = await stub.ListTargets(pb.ListTargetsRequest(), timeout=TIMEOUT_S)
    rows = [_target_row(t) for t in response.targets]
    return _json(response), table(rows, ["name", "state", "check", "driver", "restarts/h", "last failure"])


def _time(message: pb.Incident, field: Literal["detected_at", "recovered_at"]) -> str:
    if not message.HasField(field):
        return "-"
    return str(getattr(message, field).ToDatetime().isoformat(timespec="seconds"))


async def _incidents(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
    response = await stub.ListIncidents(pb.ListIncidentsRequest(
        target=args.target or "", page_size=args.limit, unresolved_only=args.open), timeout=TIMEOUT_S)
    rows = [{"id": i.id, "detected": _time(i, "detected_at"), "target": i.target, "type": i.failure_type,
             "restarts": i.restart_count,
             "outcome": "gave up" if i.gave_up else (f"recovered in {i.recovery_seconds:.2f} s"
                                                     if i.resolved else "open"),
             "evidence": i.evidence[:80]} for i in response.incidents]
    return _json(response), table(rows, ["id", "detected", "target", "type", "restarts", "outcome",
                                         "evidence"])


def _action(method: str) -> Handler:
    async def run(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
        request = pb.TargetActionRequest(name=args.name, reason=args.reason)
        target = await getattr(stub, method)(request, timeout=TIMEOUT_S)
        return _json(target), f"{target.name}: {target.state}"
    return run


def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Through the gateway (cliclient): address and token from options, env or file."""
    async def with_stub(channel: grpc.aio.Channel, args: argparse.Namespace) -> tuple[Any, str]:
        return await handler(watchdogd_pb2_grpc.WatchdogServiceStub(channel), args)
    return run("watchdog", with_stub)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    wd = sub.add_parser("watchdog", help="watchdogd: targets, incidents, pause, resume, reset")
    add_connection_options(wd)
    cmds = wd.add_subparsers(dest="watchdog_command", required=True)
    targets = cmds.add_parser("targets", help="every target and its state (or one, by name)")
    targets.add_argument("name", nargs="?", help="one target")
    targets.set_defaults(func=_run(_targets))
    incidents = cmds.add_parser("incidents", help="failures, newest first")
    incidents.add_argument("--target", help="one target (default: all)")
    incidents.add_argument("--open", action="store_true", help="only unresolved ones")
    incidents.add_argument("--limit", type=int, default=50, help="rows (1..500, default 50)")
    incidents.set_defaults(func=_run(_incidents))
    for name, method, text in (("pause", "PauseTarget", "keep checking, stop restarting"),
                               ("resume", "ResumeTarget", "restart on failure again"),
                               ("reset", "ResetTarget", "clear GAVE_UP and the restart counters")):
        _change(cmds.add_parser(name, help=text)).set_defaults(func=_run(_action(method)))


def _change(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("name", help="target name")
    parser.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    return parser
