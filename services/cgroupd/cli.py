"""`npanel accounts ...`: operator commands for account cgroups.

They go through the gateway (cliclient); the actor recorded is the token's name.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from npanel.common.cliclient import add_connection_options, run
from npanel.common.output import table

from .v1 import cgroupd_pb2 as pb
from .v1 import cgroupd_pb2_grpc

if TYPE_CHECKING:
    from .v1.cgroupd_pb2_grpc import CgroupServiceAsyncStub as Stub
TIMEOUT_S = 30.0
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
Handler = Callable[["Stub", argparse.Namespace], Awaitable[tuple[Any, str]]]


def size(text: str) -> int:
    """512M, 1G, 65536 -> bytes (argparse type)."""
    number, unit = text.rstrip("KMGkmg"), text[len(text.rstrip("KMGkmg")):].upper()
    if not number.isdigit() or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected bytes with an optional K, M or G suffix")
    return int(number) * _UNITS[unit]


def io_entry(text: str) -> pb.IoLimit:
    """DEVICE:rbps=N,wbps=N,riops=N,wiops=N (0 = unlimited)."""
    device, _, rest = text.partition("=")
    device, _, first = device.rpartition(":") if "," in text or "=" in text else (text, "", "")
    fields = {}
    for pair in filter(None, f"{first}={rest}".split(",")):
        key, _, value = pair.partition("=")
        if key not in ("rbps", "wbps", "riops", "wiops") or not value.isdigit():
            raise argparse.ArgumentTypeError(f"{text!r}: expected DEVICE:wbps=N[,rbps=N,riops=N,wiops=N]")
        fields[key] = int(value)
    return pb.IoLimit(device=device, **fields)


def _limits(args: argparse.Namespace) -> pb.Limits:
    limits = pb.Limits(io=args.io or [])
    for name, attr in (("cpu_percent", "cpu"), ("cpu_weight", "cpu_weight"),
                       ("memory_max_bytes", "memory"), ("memory_high_bytes", "memory_high"),
                       ("swap_max_bytes", "swap"), ("pids_max", "pids")):
        if getattr(args, attr) is not None:
            setattr(limits, name, getattr(args, attr))
    return limits


def _json(message: Message) -> dict[str, Any]:
    return MessageToDict(message, always_print_fields_with_no_presence=True)


def _sim(flag: bool) -> str:
    return "\nSIMULATION MODE: nothing is enforced" if flag else ""


def _account_line(a: pb.Account) -> dict[str, Any]:
    lim = a.limits
    return {"account": a.account_id, "package": a.package, "cpu": f"{lim.cpu_percent}%",
            "memory": f"{lim.memory_max_bytes >> 20}M", "swap": f"{lim.swap_max_bytes >> 20}M",
            "pids": lim.pids_max, "io": len(lim.io), "frozen": a.frozen}


async def _create(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
    a = await stub.CreateAccount(pb.CreateAccountRequest(
        account_id=args.account, package=args.package, limits=_limits(args)),
        timeout=TIMEOUT_S)
    return _json(a), f"created {a.account_id} at {a.path}{_sim(a.simulated)}"


async def _update(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
    a = await stub.UpdateLimits(pb.UpdateLimitsRequest(
        account_id=args.account, limits=_limits(args)), timeout=TIMEOUT_S)
    return _json(a), table([_account_line(a)], list(_account_line(a))) + _sim(a.simulated)


async def _delete(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
    r = await stub.DeleteAccount(pb.DeleteAccountRequest(account_id=args.account),
                                 timeout=TIMEOUT_S)
    return _json(r), f"deleted {r.account_id}; {r.killed} process(es) killed{_sim(r.simulated)}"


def _freezer(frozen: bool) -> Handler:
    async def run(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
        call = stub.Freeze(pb.FreezeRequest(account_id=args.account), timeout=TIMEOUT_S) \
            if frozen else stub.Thaw(pb.ThawRequest(account_id=args.account),
                                     timeout=TIMEOUT_S)
        a = await call
        return _json(a), f"{a.account_id}: {'frozen' if a.frozen else 'thawed'}{_sim(a.simulated)}"
    return run


async def _list(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
    r = await stub.ListAccounts(pb.ListAccountsRequest(), timeout=TIMEOUT_S)
    rows = [_account_line(a) for a in r.accounts]
    human = table(rows, ["account", "package", "cpu", "memory", "swap", "pids", "io", "frozen"])
    if r.unknown_groups:
        human += f"\nunknown groups (no account owns them): {', '.join(r.unknown_groups)}"
    return _json(r), human + _sim(r.simulated)


async def _stats(stub: Stub, args: argparse.Namespace) -> tuple[Any, str]:
    r = await stub.GetStats(pb.GetStatsRequest(account_ids=args.accounts), timeout=TIMEOUT_S)
    rows = [{"account": s.account_id, "cpu_s": f"{s.cpu.usage_usec / 1e6:.1f}",
             "throttled": s.cpu.nr_throttled, "memory": f"{s.memory.current_bytes >> 20}M",
             "peak": f"{s.memory.peak_bytes >> 20}M", "oom_kills": s.memory.events.get("oom_kill", 0),
             "pids": f"{s.pids.current}/{s.pids.max or 'max'}", "pids_hits": s.pids.events_max,
             "frozen": s.frozen} for s in r.stats]
    columns = ["account", "cpu_s", "throttled", "memory", "peak", "oom_kills", "pids", "pids_hits", "frozen"]
    return _json(r), table(rows, columns) + _sim(r.simulated)


def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Through the gateway (cliclient): address and token from options, env or file."""
    async def with_stub(channel: grpc.aio.Channel, args: argparse.Namespace) -> tuple[Any, str]:
        return await handler(cgroupd_pb2_grpc.CgroupServiceStub(channel), args)
    return run("accounts", with_stub)


def _limit_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("account", help="account id")
    parser.add_argument("--cpu", type=int, help="percent of one CPU (1..100 x CPUs)")
    parser.add_argument("--cpu-weight", type=int, help="1..10000")
    parser.add_argument("--memory", type=size, help="memory.max, e.g. 512M (at least 64M)")
    parser.add_argument("--memory-high", type=size, help="throttle point below --memory (0 = none)")
    parser.add_argument("--swap", type=size, help="memory.swap.max, e.g. 128M")
    parser.add_argument("--pids", type=int, help="pids.max (at least 10)")
    parser.add_argument("--io", type=io_entry, action="append",
                        help="DEVICE:wbps=N[,rbps=N,riops=N,wiops=N], device a path or MAJ:MIN; repeatable")
    return parser


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    accounts = sub.add_parser("accounts", help="per-account cgroups: create, limits, stats, freeze, ...")
    add_connection_options(accounts)
    cmds = accounts.add_subparsers(dest="accounts_command", required=True)
    create = _limit_options(cmds.add_parser("create", help="create an account's cgroup"))
    create.add_argument("--package", default="", help="basic, pro, enterprise (default: default)")
    create.set_defaults(func=_run(_create))
    _limit_options(cmds.add_parser("limits", help="change some limits")).set_defaults(func=_run(_update))
    stats = cmds.add_parser("stats", help="usage and limit hits (default: every account)")
    stats.add_argument("accounts", nargs="*", help="account ids")
    stats.set_defaults(func=_run(_stats))
    for name, handler, text in (("freeze", _freezer(True), "suspend every process of an account"),
                                ("thaw", _freezer(False), "resume a frozen account"),
                                ("delete", _delete, "kill every process and remove the cgroup")):
        parser = cmds.add_parser(name, help=text)
        parser.add_argument("account", help="account id")
        parser.set_defaults(func=_run(handler))
    cmds.add_parser("list", help="every account and its limits").set_defaults(func=_run(_list))
