"""Flags for tests that need no database."""

from __future__ import annotations

from datetime import UTC, datetime

from npanel.flagd.model import Flag

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def make_flag(name: str = "cgroups_isolation", *, enabled: bool = True, rollout: int = 100,
              revision: int = 1, track: str = "A") -> Flag:
    return Flag(name=name, description=f"{name} test flag", track=track, enabled=enabled,
                rollout_percent=rollout, required=False, created_at=EPOCH, updated_at=EPOCH,
                revision=revision)
