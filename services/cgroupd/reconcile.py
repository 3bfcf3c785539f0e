"""Make the kernel match the desired state: recreate missing groups, rewrite
drifted limit files, restore freeze state, report (never delete) unknown groups.

Synchronous, for a worker thread. Bounded: it stops at `limit_s` and says how
far it got; progress is reported every `every` accounts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from npanel.common.errors import DomainError

from .groups import Cgroups
from .model import Account

log = logging.getLogger(__name__)


@dataclass
class Report:
    total: int
    checked: int = 0
    recreated: list[str] = field(default_factory=list)
    rewritten: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0
    complete: bool = False
    finished: bool = False  # False while the pass is still running (progress lines)

    def summary(self) -> str:
        if not self.finished:
            state = "in progress"
        else:
            state = "done" if self.complete else "STOPPED at the time limit"
        return (f"reconcile {state}: {self.checked}/{self.total} accounts in {self.elapsed_s:.2f} s, "
                f"{len(self.recreated)} recreated, {len(self.rewritten)} files rewritten, "
                f"{len(self.unknown)} unknown groups, {len(self.failed)} failed")


def reconcile(groups: Cgroups, accounts: Sequence[Account], *, limit_s: float = 60.0, every: int = 500,
              progress: Callable[[Report], None] = lambda r: None) -> Report:
    start = time.monotonic()
    report = Report(total=len(accounts))
    present = set(groups.groups())
    wanted = {a.account_id for a in accounts}
    report.unknown = sorted(present - wanted)
    for account in accounts:
        if time.monotonic() - start > limit_s:
            break
        try:
            _one(groups, account, account.account_id in present, report)
        except (DomainError, OSError) as exc:
            report.failed.append((account.account_id, str(exc)))
            log.warning("reconcile %s failed: %s", account.account_id, exc)
        report.checked += 1
        if report.checked % every == 0:
            report.elapsed_s = time.monotonic() - start
            progress(report)
    report.elapsed_s = time.monotonic() - start
    report.complete = report.checked == report.total
    report.finished = True
    progress(report)
    return report


def _one(groups: Cgroups, account: Account, present: bool, report: Report) -> None:
    if not present:
        groups.create(account.account_id, account.limits)
        report.recreated.append(account.account_id)
    else:
        stale = groups.drift(account.account_id, account.limits)
        if stale:
            groups.write_all(groups.path(account.account_id), stale)
            report.rewritten += [(account.account_id, f) for f, _ in stale]
    frozen = groups.events(account.account_id).get("frozen") == "1"
    if frozen != account.frozen:
        groups.set_frozen(account.account_id, account.frozen)
