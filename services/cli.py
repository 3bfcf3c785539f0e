"""The `npanel` command: serve a service, migrate, run the local stack, check the audit log.

Operator commands that talk to the gateway (flags, accounts, watchdog, tokens,
baseline) join here as their services land.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence

import grpc

from npanel.cgroupd import cli as accounts_cli
from npanel.common import audit, db, migrations
from npanel.common.pgembed import EmbeddedPostgresError
from npanel.common.server import Service, serve_forever
from npanel.common.settings import DatabaseSettings, ServiceSettings, SettingsError
from npanel.flagd import cli as flagd_cli
from npanel.gateway import cli as gateway_cli
from npanel.watchdogd import cli as watchdog_cli

# Service name -> "module:factory"; the factory takes ServiceSettings, returns a Service.
# Each service adds itself here when it lands (flagd: issue 3, cgroupd: 4, ...).
SERVICES: dict[str, str] = {
    "gateway": "npanel.gateway.main:build",
    "flagd": "npanel.flagd.main:build",
    "cgroupd": "npanel.cgroupd.main:build",
    "watchdogd": "npanel.watchdogd.main:build",
}


def load_service(name: str) -> Callable[[ServiceSettings], Service]:
    if name not in SERVICES:
        known = ", ".join(sorted(SERVICES)) or "none yet"
        raise SystemExit(f"npanel serve: unknown service {name!r} (available: {known})")
    module, _, factory = SERVICES[name].partition(":")
    built: Callable[[ServiceSettings], Service] = getattr(importlib.import_module(module), factory)
    return built


def cmd_serve(args: argparse.Namespace) -> int:
    factory = load_service(args.service)
    settings = ServiceSettings.read(args.service)
    asyncio.run(serve_forever(factory(settings), settings))
    return 0


async def _migrate(settings: DatabaseSettings, as_json: bool) -> int:
    conn = await db.connect(settings, "npanel-migrate")
    try:
        applied = await migrations.migrate(conn, progress=lambda line: print(line, flush=True))
    finally:
        await conn.close()
    names = [m.filename for m in applied]
    if as_json:
        print(json.dumps({"applied": names}))
    else:
        print(f"applied {len(names)} migration(s)" if names else "database is up to date")
    return 0


async def _verify_audit(settings: DatabaseSettings, as_json: bool) -> int:
    conn = await db.connect(settings, "npanel-audit")
    try:
        problems = await audit.verify_chain(conn)
        newest = await audit.head(conn)
    finally:
        await conn.close()
    if as_json:
        print(json.dumps({
            "intact": not problems,
            "head": None if newest is None else {"id": newest[0], "hash": newest[1]},
            "problems": [{"id": p.id, "problem": p.problem} for p in problems],
        }))
    elif problems:
        for p in problems:
            print(f"audit row {p.id}: {p.problem}")
        print(f"audit log BROKEN: {len(problems)} problem(s); investigate before trusting it")
    else:
        head_text = "empty" if newest is None else f"{newest[0]} rows, head {newest[1][:16]}"
        print(f"audit log intact ({head_text})")
    return 1 if problems else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    return asyncio.run(_migrate(DatabaseSettings.from_environ(), args.json))


def cmd_audit_verify(args: argparse.Namespace) -> int:
    return asyncio.run(_verify_audit(DatabaseSettings.from_environ(), args.json))


async def _probe(address: str, service: str, timeout_s: float) -> str:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def cmd_probe(args: argparse.Namespace) -> int:
    """grpc.health.v1 Check; exit 0 only when SERVING (for compose and systemd)."""
    try:
        status = asyncio.run(_probe(args.address, args.service, args.timeout))
    except grpc.aio.AioRpcError as exc:
        status = f"{exc.code().name} ({exc.details()})"
    print(f"{args.address} {args.service or '(server)'}: {status}")
    return 0 if status == "SERVING" else 1


def cmd_dev(args: argparse.Namespace) -> int:
    from npanel.common import devstack

    return devstack.run(devstack.DevOptions(state_dir=args.state_dir, pg_port=args.pg_port))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npanel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one service (configured by NPANEL_* variables)")
    serve.add_argument("service", help="service name")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply pending database migrations")
    migrate.add_argument("--json", action="store_true", help="machine-readable output")
    migrate.set_defaults(func=cmd_migrate)

    audit_cmd = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit_cmd.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the audit log's hash chain")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(func=cmd_audit_verify)

    probe = sub.add_parser("probe", help="gRPC health check of a service; exit 0 when SERVING")
    probe.add_argument("address", help="host:port or unix:/path")
    probe.add_argument("--service", default="", help="service name (default: the whole server)")
    probe.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    probe.set_defaults(func=cmd_probe)

    flagd_cli.add_commands(sub)
    accounts_cli.add_commands(sub)
    watchdog_cli.add_commands(sub)
    gateway_cli.add_commands(sub)

    dev = sub.add_parser("dev", help="run PostgreSQL and every service locally")
    dev.add_argument("--state-dir", default=".npanel", help="where data lives (default .npanel)")
    dev.add_argument("--pg-port", type=int, default=54329, help="PostgreSQL port (default 54329)")
    dev.set_defaults(func=cmd_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # inside the try: a closed pipe is seen here, not at exit
    except SettingsError as exc:
        print(f"npanel {args.command}: {exc}", file=sys.stderr)
        return 2
    except (db.DatabaseUnavailable, migrations.MigrationError, EmbeddedPostgresError) as exc:
        print(f"npanel {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `npanel ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
