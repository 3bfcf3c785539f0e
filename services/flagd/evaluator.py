"""Flag evaluation: pure, deterministic, and the same everywhere it runs.

flagd itself, the flag client in every other service and the OpenFeature
endpoints all call `evaluate`, so an account gets one answer wherever it asks.

Rollout buckets use flagd's fractional algorithm: MurmurHash3 (x86, 32-bit,
seed 0) of flag name + account id, as a signed int32, |h| / (2^31 - 1) * 100.
The bucket of an account never changes, so the answer is sticky, and an
account is in when bucket < rollout_percent, so raising the percent only adds
accounts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import mmh3

from .model import Flag

_INT32_MAX = 2**31 - 1


class Reason(enum.Enum):
    STATIC = "STATIC"
    TARGETING_MATCH = "TARGETING_MATCH"  # reserved: no targeting rules exist yet
    SPLIT = "SPLIT"
    DISABLED = "DISABLED"
    ERROR = "ERROR"


@dataclass(frozen=True)
class Evaluation:
    flag: str
    value: bool
    reason: Reason
    revision: int
    error: str = ""


def bucket(flag: str, account_id: str) -> float:
    """The account's position in [0, 100] for this flag."""
    return abs(mmh3.hash(flag + account_id, 0, signed=True)) / _INT32_MAX * 100


def evaluate(flag: Flag, account_id: str | None) -> Evaluation:
    if not flag.enabled:
        return Evaluation(flag.name, False, Reason.DISABLED, flag.revision)
    if flag.rollout_percent >= 100:
        return Evaluation(flag.name, True, Reason.STATIC, flag.revision)
    if flag.rollout_percent <= 0:
        return Evaluation(flag.name, False, Reason.SPLIT, flag.revision)
    if not account_id:
        # A partial rollout without an account cannot pick a side; off is safe.
        return Evaluation(flag.name, False, Reason.ERROR, flag.revision, "TARGETING_KEY_MISSING")
    return Evaluation(
        flag.name, bucket(flag.name, account_id) < flag.rollout_percent, Reason.SPLIT, flag.revision
    )
