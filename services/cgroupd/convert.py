"""Conversions between cgroupd's model and its protobuf messages."""

from __future__ import annotations

from npanel.common.timestamps import timestamp

from .io import resolve_device
from .model import Account, Event, IoLimit, Limits, LimitsPatch
from .stats import GroupStats
from .v1 import cgroupd_pb2 as pb


def patch_from_pb(limits: pb.Limits) -> LimitsPatch:
    """Only the fields set; io devices resolved to whole-disk MAJ:MIN (or INVALID_ARGUMENT)."""
    def opt(name: str) -> int | None:
        return int(getattr(limits, name)) if limits.HasField(name) else None  # type: ignore[arg-type]

    io = tuple(IoLimit(resolve_device(e.device), e.rbps, e.wbps, e.riops, e.wiops) for e in limits.io)
    return LimitsPatch(cpu_percent=opt("cpu_percent"), cpu_weight=opt("cpu_weight"),
                       memory_max=opt("memory_max_bytes"), memory_high=opt("memory_high_bytes"),
                       swap_max=opt("swap_max_bytes"), pids_max=opt("pids_max"), io=io)


def limits_pb(limits: Limits) -> pb.Limits:
    return pb.Limits(
        cpu_percent=limits.cpu_percent, cpu_weight=limits.cpu_weight or 100,
        memory_max_bytes=limits.memory_max, memory_high_bytes=limits.memory_high or 0,
        swap_max_bytes=limits.swap_max, pids_max=limits.pids_max,
        io=[pb.IoLimit(device=e.device, rbps=e.rbps, wbps=e.wbps, riops=e.riops, wiops=e.wiops)
            for e in limits.io])


def account_pb(account: Account, path: str, simulated: bool) -> pb.Account:
    return pb.Account(account_id=account.account_id, package=account.package,
                      limits=limits_pb(account.limits), frozen=account.frozen,
                      created_at=timestamp(account.created_at), updated_at=timestamp(account.updated_at),
                      simulated=simulated, path=path)


def event_pb(event: Event, simulated: bool) -> pb.Event:
    return pb.Event(id=event.id, account_id=event.account_id, kind=event.kind, resource=event.resource,
                    severity=event.severity, message=event.message, created_at=timestamp(event.created_at),
                    simulated=simulated)


def stats_pb(s: GroupStats) -> pb.AccountStats:
    cpu = {k: s.cpu.get(k, 0) for k in ("usage_usec", "user_usec", "system_usec", "nr_periods",
                                         "nr_throttled", "throttled_usec")}
    return pb.AccountStats(
        account_id=s.account_id, populated=s.populated, frozen=s.frozen, cpu=pb.CpuStats(**cpu),
        memory=pb.MemoryStats(current_bytes=s.memory_current, peak_bytes=s.memory_peak,
                              max_bytes=s.memory_max or 0, high_bytes=s.memory_high or 0,
                              swap_current_bytes=s.swap_current, swap_max_bytes=s.swap_max or 0,
                              events=dict(s.memory_events)),
        pids=pb.PidStats(current=s.pids_current, max=s.pids_max or 0,
                         events_max=s.pids_events.get("max", 0)),
        io=[pb.IoStats(device=d.device, rbytes=d.rbytes, wbytes=d.wbytes, rios=d.rios, wios=d.wios)
            for d in s.io],
        pressure=[pb.Pressure(resource=p.resource, some_avg10=p.some_avg10, full_avg10=p.full_avg10,
                              some_total_usec=p.some_total_usec, full_total_usec=p.full_total_usec)
                  for p in s.pressure],
        unavailable=list(s.unavailable))
