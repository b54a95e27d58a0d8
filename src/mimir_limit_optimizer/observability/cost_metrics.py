"""Cost control's metrics (the Go tool's names), on an injected registry. Gauges are derived from
the latest report at scrape time; counters count events as they happen."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from mimir_limit_optimizer.config.service import TenantMetricsSettings
from mimir_limit_optimizer.engine.cost import PERIODS, CostReport
from mimir_limit_optimizer.observability.metric_prefix import PREFIX

__all__ = ["CostCollector", "CostMetrics"]


class CostMetrics:
    """The Go optimizer's cost metrics on an injected registry. Gauges are derived from the latest
    report at scrape time; counters count events as they happen."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        tenant_series: TenantMetricsSettings | None = None,
        selected: Callable[[], Collection[str] | None] = lambda: None,
    ) -> None:
        """`tenant_series` and `selected` choose the tenants with per-tenant cost series
        (see CostCollector); without them, every tenant has them."""
        self.budget_violations_total = Counter(
            f"{PREFIX}_budget_violations_total",
            "Budget alert thresholds reached, by scope (global, team, tenant), period "
            "(day, month, year) and threshold (percent of the budget).",
            ["scope", "period", "threshold"],
            registry=registry,
        )
        self.cost_recommendations_total = Counter(
            f"{PREFIX}_cost_recommendations_total",
            "Cost recommendations issued (each counted once, when it first appears), by kind.",
            ["kind"],
            registry=registry,
        )
        self.budget_caps_total = Counter(
            f"{PREFIX}_budget_caps_total",
            "Limits capped by budget enforcement (mode=prod) or that would be (mode=dry-run).",
            ["mode"],
            registry=registry,
        )
        for kind in ("lower_limit", "budget_crossing"):
            self.cost_recommendations_total.labels(kind=kind)
        self.collector = CostCollector(tenant_series, selected)
        registry.register(self.collector)


class CostCollector(Collector):
    """cost_current, cost_forecast and budget_usage_ratio per scope and period.

    Team and global scopes are always exported. Tenant scopes follow server.tenantMetrics,
    like the other per-tenant series: `mode: all` exports every tenant, `none` none; the
    default `relevant` exports the tenants `selected()` names (those the recommendation
    series export), every tenant with a budget, and the `topN` costliest tenants of each
    period (what the dashboard's top-10 cost panel shows)."""

    def __init__(
        self,
        settings: TenantMetricsSettings | None = None,
        selected: Callable[[], Collection[str] | None] = lambda: None,
    ) -> None:
        self._report: CostReport | None = None
        self._settings = settings or TenantMetricsSettings(mode="all", max_series=0)
        self._selected = selected

    def update(self, report: CostReport | None) -> None:
        self._report = report

    def describe(self) -> Iterable[Metric]:
        return list(_families())

    def collect(self) -> Iterable[Metric]:
        report = self._report
        if report is None:
            return []
        current, forecast, ratio = _families()
        scopes = report.scopes
        keep = self._tenant_rows(report)
        labels = []
        for row in range(scopes.size):
            kind, name = scopes.kind(row), scopes.name(row)
            tenant = name if kind == "tenant" else ""
            team = (
                (scopes.team_of[row] or "") if kind == "tenant" else name if kind == "team" else ""
            )
            labels.append((kind, tenant, team))
        rows = [row for row, (kind, _, _) in enumerate(labels) if kind != "tenant" or keep[row]]
        for period in PERIODS:
            spent = report.spent[period].tolist()
            end = report.forecast.end[period].tolist()
            usage = report.usage_ratio[period].tolist()
            for row in rows:
                kind, tenant, team = labels[row]
                current.add_metric([kind, tenant, team, period, report.currency], spent[row])
                forecast.add_metric([kind, tenant, team, period, report.currency], end[row])
                if math.isfinite(usage[row]):
                    ratio.add_metric([kind, tenant, team, period], usage[row])
        return [current, forecast, ratio]

    def _tenant_rows(self, report: CostReport) -> npt.NDArray[np.bool_]:
        """(N,) True for the tenants whose cost series are exported."""
        tenants = report.scopes.tenants
        n = len(tenants)
        mode = self._settings.mode
        if mode != "relevant":
            return np.full(n, mode == "all")
        chosen = self._selected()
        if chosen is None:
            return np.ones(n, dtype=bool)
        keep = np.fromiter((t in chosen for t in tenants), dtype=bool, count=n)
        top = self._settings.top_n
        for period in PERIODS:
            keep |= np.isfinite(report.usage_ratio[period][:n])  # it has a budget
            if top:
                spent = np.nan_to_num(np.asarray(report.spent[period][:n], dtype=np.float64))
                keep[np.argsort(-spent, kind="stable")[:top]] = True
        return keep


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    labels = ["scope", "tenant", "team", "period", "currency"]
    return (
        GaugeMetricFamily(
            f"{PREFIX}_cost_current",
            "Spend so far in the current UTC day, calendar month or year (measured; days "
            "without data count as nothing), per tenant, team (sum of its tenants) and global.",
            labels=labels,
        ),
        GaugeMetricFamily(
            f"{PREFIX}_cost_forecast",
            "Forecast spend at the end of the current day, month or year (trend of daily costs).",
            labels=labels,
        ),
        GaugeMetricFamily(
            f"{PREFIX}_budget_usage_ratio",
            "Spend so far divided by the budget of the period (1 = budget used up); only "
            "scopes with a budget.",
            labels=["scope", "tenant", "team", "period"],
        ),
    )
