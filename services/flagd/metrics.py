"""flagd's own metrics. Flag states are read from the cache at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .cache import FlagCache
from .evaluator import Evaluation


class _FlagStateCollector(Collector):
    def __init__(self, cache: FlagCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = GaugeMetricFamily(
            "npanel_feature_flag_state", "1 when the flag is enabled.", labels=["feature_name", "track"])
        rollout = GaugeMetricFamily(
            "npanel_feature_flag_rollout_percent", "Share of accounts an enabled flag is on for.",
            labels=["feature_name"])
        required = GaugeMetricFamily(
            "npanel_feature_flag_required", "1 when the flag must be on (RequiredFeatureDisabled).",
            labels=["feature_name"])
        for flag in self._cache.all():
            state.add_metric([flag.name, flag.track], 1.0 if flag.enabled else 0.0)
            rollout.add_metric([flag.name], float(flag.rollout_percent))
            required.add_metric([flag.name], 1.0 if flag.required else 0.0)
        yield from (state, rollout, required)


class FlagMetrics:
    def __init__(self, registry: CollectorRegistry, cache: FlagCache) -> None:
        self.toggles = Counter(
            "npanel_feature_flag_toggles_total", "Acknowledged flag changes.",
            ["feature_name", "action"], registry=registry)
        self.evaluations = Counter(
            "npanel_feature_flag_evaluations_total", "Flag evaluations answered, by reason.",
            ["feature_name", "reason"], registry=registry)
        self.sync_up = Gauge(
            "npanel_flagd_database_sync_up",
            "1 while this replica follows PostgreSQL; 0 while it serves cached flags.",
            registry=registry)
        self.watchers = Gauge(
            "npanel_flagd_watchers", "Open WatchFlags and EventStream streams.", registry=registry)
        self.watchers.set_function(lambda: cache.watchers)
        registry.register(_FlagStateCollector(cache))
        self._children: dict[tuple[str, str], Any] = {}

    def record(self, evaluation: Evaluation) -> None:
        # On every evaluation: look each (flag, reason) child up once, not per call.
        key = (evaluation.flag, evaluation.reason.value)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.evaluations.labels(*key)
        child.inc()

    def toggled(self, flag: str, action: str) -> None:
        self.toggles.labels(flag, action).inc()
