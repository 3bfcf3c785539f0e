from __future__ import annotations

import asyncio

import pytest

from npanel.common.errors import InvalidArgument
from npanel.flagd.cache import SUBSCRIBER_BACKLOG, FlagCache, Lagged
from npanel.flagd.model import FlagChange, action_for
from tests.flagd.factories import make_flag

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("change", "field", "value"), [
    (FlagChange("x", "admin", "why", rollout_percent=101), "rollout_percent", "101"),
    (FlagChange("x", "admin", "why", rollout_percent=-1), "rollout_percent", "-1"),
    (FlagChange("x", "", "why", enabled=True), "actor", "''"),
    (FlagChange("x", "admin", "  ", enabled=True), "reason", "'  '"),
    (FlagChange("x", "admin", "why"), "enabled", "None"),
    (FlagChange("Bad-Name", "admin", "why", enabled=True), "name", "'Bad-Name'"),
])
def test_bad_changes_name_the_field_and_value(change: FlagChange, field: str, value: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        change.validate()
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}={value}")


def test_action_names_what_changed() -> None:
    off = make_flag(enabled=False, rollout=100)
    assert action_for(off, FlagChange("x", "a", "r", enabled=True).apply(off)) == "enabled"
    on = make_flag(enabled=True, rollout=100)
    assert action_for(on, FlagChange("x", "a", "r", enabled=False).apply(on)) == "disabled"
    assert action_for(on, FlagChange("x", "a", "r", rollout_percent=20).apply(on)) == "rollout"
    assert action_for(on, FlagChange("x", "a", "r", enabled=True).apply(on)) is None


def test_cache_keeps_only_newer_revisions() -> None:
    cache = FlagCache()
    cache.apply([make_flag(revision=5, enabled=True)])
    assert cache.apply([make_flag(revision=4, enabled=False)]) == []
    flag = cache.get("cgroups_isolation")
    assert flag is not None and flag.enabled and cache.revision == 5


@pytest.mark.asyncio
async def test_subscribers_receive_changes_and_lag_is_reported() -> None:
    cache = FlagCache()
    with cache.subscribe() as sub:
        cache.apply([make_flag(revision=1)])
        flags, revision = await sub.next()
        assert [f.name for f in flags] == ["cgroups_isolation"] and revision == 1
        for r in range(2, SUBSCRIBER_BACKLOG + 3):
            cache.apply([make_flag(revision=r)])
        for _ in range(SUBSCRIBER_BACKLOG):
            await sub.next()
        with pytest.raises(Lagged):
            await asyncio.wait_for(sub.next(), 1)
    assert cache.watchers == 0
