"""cgroupd's metrics. Per-account values are read from the kernel at scrape
time (a custom Collector), so they are never older than the scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .groups import Cgroups
from .sampler import read_stats
from .stats import GroupStats, MalformedStat

PREFIX = "npanel_cgroups_"


def _families() -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
    def g(name: str, text: str, *extra: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(PREFIX + name, text, labels=["account_id", *extra])

    def c(name: str, text: str, *extra: str) -> CounterMetricFamily:
        return CounterMetricFamily(PREFIX + name, text, labels=["account_id", *extra])

    return {
        "cpu": c("cpu_usage_seconds", "CPU time used by the account (cpu.stat usage_usec)."),
        "throttled": c("cpu_throttled_seconds", "Time throttled at cpu.max (cpu.stat throttled_usec)."),
        "mem": g("memory_usage_bytes", "memory.current."),
        "mem_limit": g("memory_limit_bytes", "memory.max (absent when unlimited)."),
        "pids": g("pid_count", "pids.current."),
        "pid_limit": g("pid_limit", "pids.max (absent when unlimited)."),
        "io": c("io_bytes", "Bytes read and written (io.stat), all devices.", "direction"),
        "exceeded": c("limit_exceeded", "Times a limit bit: memory.events max, pids.events max, "
                      "cpu.stat nr_throttled.", "resource_type"),
    }


def _add(f: dict[str, GaugeMetricFamily | CounterMetricFamily], s: GroupStats) -> None:
    a = s.account_id
    f["cpu"].add_metric([a], s.cpu.get("usage_usec", 0) / 1e6)
    f["throttled"].add_metric([a], s.cpu.get("throttled_usec", 0) / 1e6)
    f["mem"].add_metric([a], s.memory_current)
    if s.memory_max is not None:
        f["mem_limit"].add_metric([a], s.memory_max)
    f["pids"].add_metric([a], s.pids_current)
    if s.pids_max is not None:
        f["pid_limit"].add_metric([a], s.pids_max)
    f["io"].add_metric([a, "read"], sum(d.rbytes for d in s.io))
    f["io"].add_metric([a, "write"], sum(d.wbytes for d in s.io))
    counters = s.counters()
    for resource, counter in (("memory", "memory.max"), ("pids", "pids.max"), ("cpu", "cpu.nr_throttled")):
        f["exceeded"].add_metric([a, resource], counters[counter])


class _KernelCollector(Collector):
    def __init__(self, groups: Cgroups, accounts: Callable[[], Sequence[str]]) -> None:
        self._groups = groups
        self._accounts = accounts

    def collect(self) -> Iterator[Metric]:
        families = _families()
        known = self._accounts()
        for account_id in known:
            try:
                _add(families, read_stats(self._groups.fs, self._groups.root / account_id, account_id))
            except (OSError, MalformedStat):
                continue  # deleted between listing and reading, or a kernel oddity logged elsewhere
        count = GaugeMetricFamily("npanel_account_count", "Accounts with a cgroup configuration.")
        count.add_metric([], len(known))
        yield from (*families.values(), count)


class CgroupdMetrics:
    def __init__(self, registry: CollectorRegistry, groups: Cgroups,
                 accounts: Callable[[], Sequence[str]]) -> None:
        simulated = Gauge("npanel_cgroupd_simulated",
                          "1 when cgroupd runs in SIMULATION mode: nothing is enforced.", registry=registry)
        simulated.set(1 if groups.fs.simulated else 0)
        self.events = Counter("npanel_cgroups_events_total", "Events recorded, by kind and resource.",
                              ["kind", "resource"], registry=registry)
        self.unknown_groups = Gauge("npanel_cgroups_unknown_groups",
                                    "Groups under the root that no account owns (last reconcile).",
                                    registry=registry)
        self.reconcile_seconds = Gauge("npanel_cgroups_reconcile_duration_seconds",
                                       "Duration of the last reconcile pass.", registry=registry)
        self.reconcile_drift = Counter("npanel_cgroups_reconcile_repairs_total",
                                       "Groups recreated and files rewritten by the reconciler.",
                                       ["repair"], registry=registry)
        registry.register(_KernelCollector(groups, accounts))
