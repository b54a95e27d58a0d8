"""Cost control's metrics (the Go tool's names), on an injected registry. Gauges are derived from
the latest report at scrape time; counters count events as they happen."""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from mimir_limit_optimizer.engine.cost import PERIODS, CostReport
from mimir_limit_optimizer.observability.metrics import PREFIX

__all__ = ["CostCollector", "CostMetrics"]


class CostMetrics:
    """The Go optimizer's cost metrics on an injected registry. Gauges are derived from the latest
    report at scrape time; counters count events as they happen."""

    def __init__(self, registry: CollectorRegistry) -> None:
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
        self.collector = CostCollector()
        registry.register(self.collector)


class CostCollector(Collector):
    """cost_current, cost_forecast and budget_usage_ratio per scope and period."""

    def __init__(self) -> None:
        self._report: CostReport | None = None

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
        labels = []
        for row in range(scopes.size):
            kind, name = scopes.kind(row), scopes.name(row)
            tenant = name if kind == "tenant" else ""
            team = (
                (scopes.team_of[row] or "") if kind == "tenant" else name if kind == "team" else ""
            )
            labels.append((kind, tenant, team))
        for period in PERIODS:
            spent = report.spent[period].tolist()
            end = report.forecast.end[period].tolist()
            usage = report.usage_ratio[period].tolist()
            for row, (kind, tenant, team) in enumerate(labels):
                current.add_metric([kind, tenant, team, period, report.currency], spent[row])
                forecast.add_metric([kind, tenant, team, period, report.currency], end[row])
                if math.isfinite(usage[row]):
                    ratio.add_metric([kind, tenant, team, period], usage[row])
        return [current, forecast, ratio]


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
