"""Conversions between flagd's model and its protobuf messages, both ways."""

from __future__ import annotations

from datetime import UTC

from npanel.common.timestamps import timestamp

from .evaluator import Evaluation, Reason
from .model import Flag, Toggle
from .v1 import flagd_pb2 as pb


def flag_pb(flag: Flag) -> pb.Flag:
    return pb.Flag(
        name=flag.name, description=flag.description, track=flag.track, enabled=flag.enabled,
        rollout_percent=flag.rollout_percent, required=flag.required,
        created_at=timestamp(flag.created_at), updated_at=timestamp(flag.updated_at), revision=flag.revision)


_REASONS = {reason: pb.Reason.Value(reason.value) for reason in Reason}


def evaluation_pb(e: Evaluation) -> pb.Evaluation:
    return pb.Evaluation(flag=e.flag, value=e.value, reason=_REASONS[e.reason],
                         revision=e.revision, error=e.error)


def toggle_pb(t: Toggle) -> pb.Toggle:
    return pb.Toggle(
        id=t.id, flag=t.flag, actor=t.actor, action=t.action,
        previous_enabled=t.previous_enabled, previous_rollout_percent=t.previous_rollout_percent,
        new_enabled=t.new_enabled, new_rollout_percent=t.new_rollout_percent, reason=t.reason,
        request_id=t.request_id, created_at=timestamp(t.created_at), revision=t.revision)


def flag_from_pb(message: pb.Flag) -> Flag:
    return Flag(
        name=message.name, description=message.description, track=message.track,
        enabled=message.enabled, rollout_percent=message.rollout_percent, required=message.required,
        created_at=message.created_at.ToDatetime(tzinfo=UTC),
        updated_at=message.updated_at.ToDatetime(tzinfo=UTC), revision=message.revision)
