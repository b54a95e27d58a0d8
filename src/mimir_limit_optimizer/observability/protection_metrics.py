"""Protection's metrics (the Go optimizer's circuit breaker and emergency metrics), on an injected
registry; per-tenant breaker states are derived at scrape time by a collector."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from mimir_limit_optimizer.config.protection import PROTECTED_LIMITS
from mimir_limit_optimizer.engine.protection import KINDS
from mimir_limit_optimizer.observability.metric_prefix import PREFIX

__all__ = ["BREAKER_STATE_NAMES", "BreakerStateCollector", "ProtectionMetrics"]


class ProtectionMetrics:
    """The Go optimizer's circuit breaker and emergency metrics, on an injected registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.blast_detections_total = Counter(
            f"{PREFIX}_blast_detections_total",
            "Blasts detected: per-tenant breakers opened (kind) and cluster-wide detectors "
            "(global_<detector>), in every mode.",
            ["kind"],
            registry=registry,
        )
        self.throttled_requests_total = Counter(
            f"{PREFIX}_throttled_requests_total",
            "Tenant limits clamped by protection (the optimizer is not in the data path: each "
            "clamp is one tenant x limit tightened); mode=dry-run counts the would-be clamps.",
            ["limit", "mode"],
            registry=registry,
        )
        self.panic_mode_activations_total = Counter(
            f"{PREFIX}_panic_mode_activations_total",
            "Escalations of the cluster to an emergency level (warning, emergency, panic).",
            ["level"],
            registry=registry,
        )
        self.emergency_actions_total = Counter(
            f"{PREFIX}_emergency_actions_total",
            "Emergency actions taken (mode=prod) or reported as would-be (mode=dry-run).",
            ["action", "mode"],
            registry=registry,
        )
        self.recovery_attempts_total = Counter(
            f"{PREFIX}_recovery_attempts_total",
            "Recovery steps raising clamped limits back (kind=breaker: half-open steps; "
            "kind=emergency: auto-recovery steps).",
            ["kind"],
            registry=registry,
        )
        self.resource_usage_percent = Gauge(
            f"{PREFIX}_resource_usage_percent",
            "Cluster pressure signals in percent of their capacity (the highest instance).",
            ["resource"],
            registry=registry,
        )
        self.emergency_level = Gauge(
            f"{PREFIX}_emergency_level",
            "Cluster emergency level: 0 normal, 1 warning, 2 emergency, 3 panic.",
            registry=registry,
        )
        self.circuit_breaker_enabled = Gauge(
            f"{PREFIX}_circuit_breaker_enabled",
            "1 when protection may write (prod and enabled at runtime), 0 otherwise.",
            registry=registry,
        )
        self.fast_loop_total = Counter(
            f"{PREFIX}_fast_loop_total",
            "Fast-loop ticks by result (success, failure).",
            ["result"],
            registry=registry,
        )
        self.fast_loop_duration = Histogram(
            f"{PREFIX}_fast_loop_duration_seconds",
            "Duration of one fast-loop tick (read, step, write).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        for result in ("success", "failure"):
            self.fast_loop_total.labels(result=result)
        for kind in (
            *(k.value for k in KINDS),
            "global_ingestion",
            "global_query",
            "global_series",
        ):
            self.blast_detections_total.labels(kind=kind)
        for limit in PROTECTED_LIMITS:  # 0 before the first clamp: dashboards see 0
            for mode in ("prod", "dry-run"):
                self.throttled_requests_total.labels(limit=limit, mode=mode)
        for level in ("warning", "emergency", "panic"):
            self.panic_mode_activations_total.labels(level=level)
        for kind in ("breaker", "emergency"):
            self.recovery_attempts_total.labels(kind=kind)
        self.states = BreakerStateCollector()
        registry.register(self.states)


# Index = the value of circuit_breaker_state.
BREAKER_STATE_NAMES = ("closed", "open", "half_open")


class BreakerStateCollector(Collector):
    """`circuit_breaker_state{user}` at scrape time (1 open, 2 half-open) for the tenants of
    the last tick; a tenant's state is its worst breaker. Closed breakers (the normal state,
    10,000 series at 10,000 tenants) are left out unless `closed_too`: an absent series reads
    as closed; `circuit_breaker_tenants{state}` counts every state."""

    def __init__(self, *, closed_too: bool = False) -> None:
        self._snapshot: tuple[tuple[str, ...], list[int]] | None = None
        self._closed_too = closed_too

    def update(self, tenants: Sequence[str], states: Iterable[int]) -> None:
        self._snapshot = (tuple(tenants), list(states))

    def describe(self) -> Iterable[Metric]:
        return [self._family(), self._counts()]

    def collect(self) -> Iterable[Metric]:
        snapshot = self._snapshot
        if snapshot is None:
            return []
        family = self._family()
        for tenant, value in zip(*snapshot, strict=True):
            if value or self._closed_too:
                family.add_metric([tenant], float(value))
        # Cluster totals, every state always present (0 included): dashboards and alerts work
        # whatever subset of the per-tenant series is exported.
        counts = self._counts()
        states = snapshot[1]
        for value, name in enumerate(BREAKER_STATE_NAMES):
            counts.add_metric([name], float(sum(1 for s in states if s == value)))
        return [family, counts]

    @staticmethod
    def _counts() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            f"{PREFIX}_circuit_breaker_tenants",
            "Tenants by circuit breaker state (closed, open, half_open) in the last fast-loop "
            "tick; a tenant counts once, in its worst state.",
            labels=["state"],
        )

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            f"{PREFIX}_circuit_breaker_state",
            "Per-tenant circuit breaker state: 1 open, 2 half-open; closed breakers are not "
            "exported (an absent series means closed).",
            labels=["user"],
        )
