"""Feature flags: plain values and the rules for changing them. No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from npanel.common.errors import InvalidArgument, NotFound

TRACKS = ("A", "B", "C")
ACTIONS = ("enabled", "disabled", "rollout", "rollback")
MAX_REASON = 500
MAX_ACTOR = 128
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Flag:
    name: str
    description: str
    track: str
    enabled: bool
    rollout_percent: int
    required: bool
    created_at: datetime
    updated_at: datetime
    revision: int

    def state(self) -> dict[str, object]:
        """What a toggle changes, as recorded in previous_state / new_state."""
        return {"enabled": self.enabled, "rollout_percent": self.rollout_percent}


@dataclass(frozen=True)
class FlagChange:
    """A request to change one flag; `None` leaves that field as it is."""

    name: str
    actor: str
    reason: str
    enabled: bool | None = None
    rollout_percent: int | None = None

    def validate(self) -> None:
        check_name(self.name)
        check_actor_reason(self.actor, self.reason)
        if self.enabled is None and self.rollout_percent is None:
            raise InvalidArgument("enabled", None, "set enabled and/or rollout_percent; nothing to change")
        if self.rollout_percent is not None and not 0 <= self.rollout_percent <= 100:
            raise InvalidArgument("rollout_percent", self.rollout_percent, "must be from 0 to 100")

    def apply(self, flag: Flag) -> Flag:
        return replace(
            flag,
            enabled=flag.enabled if self.enabled is None else self.enabled,
            rollout_percent=flag.rollout_percent if self.rollout_percent is None else self.rollout_percent,
        )


def action_for(before: Flag, after: Flag) -> str | None:
    """The toggle action a change amounts to; None when nothing changes."""
    if before.enabled != after.enabled:
        return "enabled" if after.enabled else "disabled"
    if before.rollout_percent != after.rollout_percent:
        return "rollout"
    return None


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidArgument("name", name, "a flag name is lowercase letters, digits and _")


def check_actor_reason(actor: str, reason: str) -> None:
    if not actor.strip() or len(actor) > MAX_ACTOR:
        raise InvalidArgument("actor", actor, f"who makes the change is required (1..{MAX_ACTOR} chars)")
    if not reason.strip() or len(reason) > MAX_REASON:
        raise InvalidArgument("reason", reason, f"a reason is required (1..{MAX_REASON} chars)")


def flag_not_found(name: str) -> NotFound:
    return NotFound("flag", name, "`npanel flags list` shows the flags that exist")


@dataclass(frozen=True)
class Toggle:
    id: int
    flag: str
    actor: str
    action: str
    previous_enabled: bool
    previous_rollout_percent: int
    new_enabled: bool
    new_rollout_percent: int
    reason: str
    request_id: str
    created_at: datetime
    revision: int


@dataclass(frozen=True)
class ToggleQuery:
    flag: str | None
    since: datetime | None
    until: datetime | None
    page_size: int
    before_id: int | None  # keyset pagination: rows with id < before_id, newest first

    def validate(self) -> None:
        if self.flag is not None:
            check_name(self.flag)
        if not 1 <= self.page_size <= 500:
            raise InvalidArgument("page_size", self.page_size, "must be from 1 to 500")
        if self.since and self.until and self.since > self.until:
            raise InvalidArgument("since", self.since.isoformat(), "must not be after until")
