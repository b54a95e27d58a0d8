"""The optimizer's own Prometheus metrics, all registered on an injected registry.

Names follow the Go tool's README (`mimir_limit_optimizer_*`). Counters and histograms are updated
by the controller as things happen; per-tenant gauges are derived from the latest
recommendations when Prometheus scrapes, by a collector (recommendation_metrics.py; so they
never go stale piecemeal and a tenant that disappears from one cycle to the next disappears
from the scrape).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mimir_limit_optimizer.config.service import TenantMetricsSettings
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.observability.metric_prefix import PREFIX
from mimir_limit_optimizer.observability.recommendation_metrics import RecommendationsCollector

# Label values created at construction so that dashboards see 0, not "no data", before the
# first event. Other values are accepted (the label sets stay small and code-defined).
RECONCILE_RESULTS = ("success", "failure", "skipped")
# Phases of a cycle: "total" is the reconcile (collect .. apply); cost and prune run after it.
PHASES = (
    "collect",
    "read_target",
    "recommend",
    "plan",
    "memory",  # the engine's long-term peak memory: loaded, updated, saved
    "report",
    "audit",
    "apply",
    "verify",
    "cost",
    "prune",
    "total",
)
RELOAD_RESULTS = ("success", "failure")
CHANGE_OUTCOMES = ("applied", "held_back", "not_applied")
# (component, reason) pairs of errors_total that the reconciler counts: created at 0 so that
# the shipped alert rules (deploy/helm/.../files/alerts.yaml) compute increase() from 0.
KNOWN_ERRORS = (
    ("source", "collect_failed"),
    ("target", "read_failed"),
    ("target", "write_failed"),
    ("verify", "reload_failed"),
    ("verify", "unverified"),
)

# Seconds. A cycle over many tenants can take minutes; a single PromQL query, milliseconds.
RECONCILE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
QUERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ControllerMetrics:
    """Every metric of the controller, registered on `registry` (no global registry).

    `timer` is a monotonic clock in seconds used for durations (injected so tests can
    control it).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        timer: Callable[[], float] = time.perf_counter,
        tenant_series: TenantMetricsSettings | None = None,
    ) -> None:
        """`tenant_series`: which tenants get per-tenant series (None: every tenant)."""
        self._timer = timer
        self.reconcile_total = Counter(
            f"{PREFIX}_reconcile_total",
            "Reconcile cycles by result (success, failure, skipped).",
            ["result"],
            registry=registry,
        )
        self.reconcile_duration = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "Duration of each phase of a reconcile cycle; phase=total is the whole cycle.",
            ["phase"],
            buckets=RECONCILE_BUCKETS,
            registry=registry,
        )
        self.last_reconcile_timestamp = Gauge(
            f"{PREFIX}_last_reconcile_timestamp",
            "Unix time (seconds) at which the last successful reconcile cycle finished.",
            registry=registry,
        )
        self.errors_total = Counter(
            f"{PREFIX}_errors_total",
            "Errors by the component that saw them and a short machine-readable reason.",
            ["component", "reason"],
            registry=registry,
        )
        self.limits_applied_total = Counter(
            f"{PREFIX}_limits_applied_total",
            "Tenant limit values written to the target (one per tenant x limit changed).",
            registry=registry,
        )
        self.spikes_detected_total = Counter(
            f"{PREFIX}_spikes_detected_total",
            "Transient usage spikes detected and kept out of the baseline.",
            registry=registry,
        )
        self.health_status = Gauge(
            f"{PREFIX}_health_status",
            "1 when the optimizer is healthy, 0 when not.",
            registry=registry,
        )
        self.source_queries_total = Counter(
            f"{PREFIX}_source_queries_total",
            "Queries to the usage source by source and result (success, failure).",
            ["source", "result"],
            registry=registry,
        )
        self.source_query_duration = Histogram(
            f"{PREFIX}_source_query_duration_seconds",
            "Duration of queries to the usage source.",
            ["source"],
            buckets=QUERY_BUCKETS,
            registry=registry,
        )
        self.config_reloads_total = Counter(
            f"{PREFIX}_config_reloads_total",
            "Configuration reload attempts by result (success, failure).",
            ["result"],
            registry=registry,
        )
        self.config_last_reload_successful = Gauge(
            f"{PREFIX}_config_last_reload_successful",
            "1 when the last configuration (re)load succeeded, 0 when the last good config "
            "is kept because a reload failed.",
            registry=registry,
        )
        self.plans_unchanged_total = Counter(
            f"{PREFIX}_plans_unchanged_total",
            "Cycles that did not write (dry-run, standby, nothing to write) and whose planned "
            "writes were the same as the last audited ones: not audited again.",
            registry=registry,
        )
        self.changes_total = Counter(
            f"{PREFIX}_changes_total",
            "Planned limit changes (tenant x limit) by outcome: applied (written), held_back "
            "(by a safety rule: cooldown, pinned, freeze, caps), not_applied (dry-run, "
            "follower, partial data or a failed write).",
            ["outcome"],
            registry=registry,
        )
        self.leader = Gauge(
            f"{PREFIX}_leader",
            "1 while this replica may write (it holds the Lease, or leader election is off), "
            "0 while it stands by.",
            registry=registry,
        )
        for result in RECONCILE_RESULTS:
            self.reconcile_total.labels(result=result)
        for outcome in CHANGE_OUTCOMES:
            self.changes_total.labels(outcome=outcome)
        for component, reason in KNOWN_ERRORS:
            self.errors_total.labels(component=component, reason=reason)
        for name in PHASES:
            self.reconcile_duration.labels(phase=name)
        for result in RELOAD_RESULTS:
            self.config_reloads_total.labels(result=result)
        # The service only starts with a valid configuration: the initial load succeeded.
        self.config_last_reload_successful.set(1)
        self._recommendations = RecommendationsCollector(
            tenant_series or TenantMetricsSettings(mode="all", max_series=0)
        )
        registry.register(self._recommendations)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the body into reconcile_duration{phase=name}, also when it raises."""
        start = self._timer()
        try:
            yield
        finally:
            self.reconcile_duration.labels(phase=name).observe(max(0.0, self._timer() - start))

    @contextmanager
    def source_query(self, source: str) -> Iterator[None]:
        """Time one source query and count it: result=failure when the body raises (the
        exception propagates), success otherwise."""
        start = self._timer()
        try:
            yield
        except Exception:
            self.source_queries_total.labels(source=source, result="failure").inc()
            raise
        else:
            self.source_queries_total.labels(source=source, result="success").inc()
        finally:
            elapsed = max(0.0, self._timer() - start)
            self.source_query_duration.labels(source=source).observe(elapsed)

    def cycle_finished(self, result: str, *, now: float) -> None:
        """Count a cycle; a successful one also sets last_reconcile_timestamp to `now`."""
        if result not in RECONCILE_RESULTS:
            raise ValueError(f"reconcile result must be one of {RECONCILE_RESULTS}, not {result!r}")
        self.reconcile_total.labels(result=result).inc()
        if result == "success":
            self.last_reconcile_timestamp.set(now)

    def count_changes(self, *, planned: int, applied: int, held_back: int) -> None:
        """Count one cycle's planned changes by outcome (`planned` includes held-back ones)."""
        self.changes_total.labels(outcome="applied").inc(applied)
        self.changes_total.labels(outcome="held_back").inc(held_back)
        self.changes_total.labels(outcome="not_applied").inc(max(0, planned - held_back - applied))

    def config_reloaded(self, *, ok: bool) -> None:
        """Count a reload attempt and set config_last_reload_successful."""
        self.config_reloads_total.labels(result="success" if ok else "failure").inc()
        self.config_last_reload_successful.set(1 if ok else 0)

    def exported_tenants(self) -> frozenset[str] | None:
        """The tenants with per-tenant series (server.tenantMetrics) in the latest cycle;
        None: every tenant (`mode: all`). Cost series follow the same choice."""
        return self._recommendations.exported_tenants()

    def observe_recommendations(
        self, recs: Recommendations, *, planned: Iterable[str] = (), now: float | None = None
    ) -> None:
        """Remember `recs` as the state the per-tenant gauges show from the next scrape on.
        `planned`: tenants with a change going ahead this cycle; `now`: the cycle's time."""
        self._recommendations.update(recs, planned=planned, now=now)
