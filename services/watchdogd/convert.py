"""Conversions between watchdogd's model and its protobuf messages, both ways."""

from __future__ import annotations

from npanel.common.timestamps import timestamp

from .model import CheckSpec, DriverSpec, Incident, Policy, Target
from .supervisor import TargetStatus
from .v1 import watchdogd_pb2 as pb


def _or(value: float, default: float) -> float:
    """Proto3 zero means "not given": the model's default."""
    return value if value else default


def target_from_pb(message: pb.Target) -> Target:
    c, d, p = message.check, message.driver, message.policy
    check_defaults, driver_defaults, policy_defaults = CheckSpec(""), DriverSpec(""), Policy()
    check = CheckSpec(
        kind=c.kind, address=c.address, service=c.service,
        expect_status=int(_or(c.expect_status, check_defaults.expect_status)),
        send=c.send, expect=c.expect, command=tuple(c.command),
        interval_s=_or(c.interval_seconds, check_defaults.interval_s),
        timeout_s=_or(c.timeout_seconds, check_defaults.timeout_s),
        failures=int(_or(c.failures, check_defaults.failures)),
        keepalive_s=c.keepalive_seconds if c.HasField("keepalive_seconds") else check_defaults.keepalive_s)
    driver = DriverSpec(
        kind=d.kind or "none", command=tuple(d.command), env=dict(d.env), cwd=d.cwd, log_file=d.log_file,
        unit=d.unit, container=d.container,
        stop_timeout_s=_or(d.stop_timeout_seconds, driver_defaults.stop_timeout_s))
    policy = Policy(
        backoff_initial_s=_or(p.backoff_initial_seconds, policy_defaults.backoff_initial_s),
        backoff_max_s=_or(p.backoff_max_seconds, policy_defaults.backoff_max_s),
        max_restarts_per_hour=int(_or(p.max_restarts_per_hour, policy_defaults.max_restarts_per_hour)),
        healthy_reset_s=_or(p.healthy_reset_seconds, policy_defaults.healthy_reset_s),
        start_timeout_s=_or(p.start_timeout_seconds, policy_defaults.start_timeout_s))
    return Target(message.name, check, driver, policy, source="api")


def target_pb(status: TargetStatus) -> pb.Target:
    t = status.target
    c, d, p = t.check, t.driver, t.policy
    message = pb.Target(
        name=t.name, source=t.source, paused=t.paused, state=status.state,
        restarts_in_window=status.restarts_in_window, last_failure=status.last_failure, pid=status.pid,
        check=pb.Check(kind=c.kind, address=c.address, service=c.service, expect_status=c.expect_status,
                       send=c.send, expect=c.expect, command=c.command, interval_seconds=c.interval_s,
                       timeout_seconds=c.timeout_s, failures=c.failures, keepalive_seconds=c.keepalive_s),
        driver=pb.Driver(kind=d.kind, command=d.command, env=dict(d.env), cwd=d.cwd, log_file=d.log_file,
                         unit=d.unit, container=d.container, stop_timeout_seconds=d.stop_timeout_s),
        policy=pb.Policy(backoff_initial_seconds=p.backoff_initial_s, backoff_max_seconds=p.backoff_max_s,
                         max_restarts_per_hour=p.max_restarts_per_hour,
                         healthy_reset_seconds=p.healthy_reset_s, start_timeout_seconds=p.start_timeout_s))
    if t.updated_at is not None:
        message.updated_at.CopyFrom(timestamp(t.updated_at))
    return message


def incident_pb(i: Incident) -> pb.Incident:
    message = pb.Incident(
        id=i.id, target=i.target, detected_at=timestamp(i.detected_at), failure_type=i.failure_type,
        evidence=i.evidence, last_log_lines=i.last_log_lines, restart_count=i.restart_count,
        recovery_seconds=i.recovery_seconds or 0.0, resolved=i.resolved, gave_up=i.gave_up)
    if i.recovered_at is not None:
        message.recovered_at.CopyFrom(timestamp(i.recovered_at))
    return message
