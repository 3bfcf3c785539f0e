from __future__ import annotations

import pytest

from npanel.flagd.evaluator import Reason, bucket, evaluate
from tests.flagd.factories import make_flag

pytestmark = pytest.mark.unit
ACCOUNTS = [f"acct{i}" for i in range(2000)]


def _on(rollout: int) -> set[str]:
    flag = make_flag(rollout=rollout)
    return {a for a in ACCOUNTS if evaluate(flag, a).value}


def test_disabled_is_off_for_everyone() -> None:
    e = evaluate(make_flag(enabled=False), "acct1")
    assert (e.value, e.reason) == (False, Reason.DISABLED)


def test_full_rollout_is_static_on() -> None:
    e = evaluate(make_flag(rollout=100), None)
    assert (e.value, e.reason) == (True, Reason.STATIC)


def test_zero_rollout_is_off() -> None:
    assert _on(0) == set()


def test_partial_rollout_without_account_is_an_error_and_off() -> None:
    e = evaluate(make_flag(rollout=50), None)
    assert (e.value, e.reason, e.error) == (False, Reason.ERROR, "TARGETING_KEY_MISSING")


def test_sticky_same_account_same_answer() -> None:
    flag = make_flag(rollout=37)
    assert [evaluate(flag, a).value for a in ACCOUNTS] == [evaluate(flag, a).value for a in ACCOUNTS]


def test_raising_the_percent_only_adds_accounts() -> None:
    previous: set[str] = set()
    for rollout in (1, 5, 10, 25, 50, 75, 99):
        current = _on(rollout)
        assert previous <= current, f"accounts dropped when going to {rollout}%"
        previous = current


@pytest.mark.parametrize("rollout", [10, 30, 60, 90])
def test_share_is_close_to_the_percent(rollout: int) -> None:
    share = len(_on(rollout)) / len(ACCOUNTS) * 100
    assert abs(share - rollout) < 4, share


def test_buckets_differ_between_flags() -> None:
    # Otherwise the same accounts would get every experiment first.
    a = [bucket("flag_a", x) < 50 for x in ACCOUNTS]
    b = [bucket("flag_b", x) < 50 for x in ACCOUNTS]
    assert a != b


def test_bucket_matches_flagd_fractional_formula() -> None:
    # flagd: abs(int32(murmur3_x86_32(flagKey + targetingKey, seed 0))) / MaxInt32 * 100.
    # Published MurmurHash3 x86_32 vector: "The quick brown fox jumps over the lazy dog" -> 0x2e4ff723.
    expected = 0x2E4FF723 / (2**31 - 1) * 100
    assert bucket("The quick brown fox jumps over the lazy ", "dog") == pytest.approx(expected)
    assert bucket("", "") == 0.0  # murmur3_x86_32("", 0) == 0
