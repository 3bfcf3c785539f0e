"""watchdogd's metrics (names of issue 5; base units). Label values: target names
(a bounded set chosen by the operator), check kinds and fixed result words."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RECOVERY_BUCKETS = (0.5, 1, 2, 5, 10, 30)
CHECK_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 3, 10)
# recovery_total results: restarted (a restart was issued), failed (the restart
# itself failed), suppressed (agent_watchdog off or target paused), gave_up,
# recovered (healthy again after an incident).
RESULTS = ("restarted", "failed", "suppressed", "gave_up", "recovered")


class WatchdogMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.health = Gauge("npanel_agent_health_status", "1 while the target's last check passed.",
                            ["target"], registry=registry)
        self.recoveries = Counter("npanel_agent_recovery_total", "Recovery steps by result.",
                                  ["target", "result"], registry=registry)
        self.recovery_latency = Histogram(
            "npanel_agent_recovery_latency_seconds",
            "From a failure's detection to the first passing check after it.",
            ["target"], buckets=RECOVERY_BUCKETS, registry=registry)
        self.check_latency = Histogram(
            "npanel_agent_check_latency_seconds", "Duration of one health check.",
            ["target", "check"], buckets=CHECK_BUCKETS, registry=registry)
        self.gave_up = Gauge("npanel_agent_gave_up", "1 while the target is in GAVE_UP.",
                             ["target"], registry=registry)
        self.flag_enabled = Gauge("npanel_agent_watchdog_enabled",
                                  "1 while the agent_watchdog flag lets watchdogd restart targets.",
                                  registry=registry)

    def forget(self, target: str, check: str) -> None:
        """Drop a removed target's series so dashboards do not show it forever."""
        removals = [(self.health, (target,)), (self.recovery_latency, (target,)),
                    (self.gave_up, (target,)), (self.check_latency, (target, check)),
                    *((self.recoveries, (target, r)) for r in RESULTS)]
        for metric, labels in removals:
            with contextlib.suppress(KeyError):  # a series never written
                metric.remove(*labels)
