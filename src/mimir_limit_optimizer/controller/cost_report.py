"""How cost control reports: audit events (category `cost`), alerts and counters, through the
shared Reporter. Decisions are made before (engine/cost); this only tells people."""

from __future__ import annotations

from mimir_limit_optimizer.alerting.model import Priority, Severity
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.reporter import Reporter
from mimir_limit_optimizer.engine.cost import CapOutcome, CostRecommendation, ThresholdEvent
from mimir_limit_optimizer.observability.cost_metrics import CostMetrics

COMPONENT = "cost-control"
_BUDGET_NAMES = {"day": "daily", "month": "monthly", "year": "annual"}


class CostReporter:
    def __init__(self, reporter: Reporter, metrics: CostMetrics) -> None:
        self.report = reporter
        self.metrics = metrics

    def collection_failed(self, error: str, now: float) -> None:
        self.report.event(now, "cost_collection_failed", level="error", error=error)

    def cap(self, outcome: CapOutcome, *, acting: bool, now: float, currency: str) -> None:
        """A budget cap put into the plan (prod) or that would be (dry-run). The guard runs
        before the safety caps and the write: the write itself is audited as update_limits
        (or held back in the cycle's change_held_back summary)."""
        cap = outcome.cap
        mode = "prod" if acting else "dry-run"
        verb = "cap planned for" if acting else "would cap"
        self.report.event(
            now,
            "budget_cap_planned" if acting else "would_cap_limits",
            tenant=cap.tenant,
            level="warning",
            limit=cap.limit,
            old=outcome.old,
            planned=outcome.planned,
            new=cap.value,
            floor=cap.floor,
            scope=cap.scope,
            period=cap.period,
            budget=cap.budget,
            spent=cap.spent,
            forecast=cap.forecast,
            allowed_per_day=cap.allowed_per_day,
            currency=currency,
            mode=mode,
            reason=cap.reason,
        )
        self.metrics.budget_caps_total.labels(mode=mode).inc()
        self.report.alert(
            now,
            "budget_enforcement",
            f"budget_cap:{cap.tenant}:{cap.limit}",
            (Priority.P2, Severity.WARNING),
            f"{verb} {cap.limit} of tenant {cap.tenant} at {cap.value:,.0f}: {cap.reason}",
            tenant=cap.tenant,
            limit=cap.limit,
            old=outcome.old,
            new=cap.value,
            floor=cap.floor,
            scope=cap.scope,
            period=cap.period,
            mode=mode,
        )

    def cap_lifted(self, tenant: str, limit: str, was: float, why: str, now: float) -> None:
        self.report.event(now, "budget_cap_lifted", tenant=tenant, limit=limit, was=was, why=why)
        self.report.alert(
            now,
            "budget_enforcement",
            f"budget_cap:{tenant}:{limit}",
            (Priority.P2, Severity.INFO),
            f"budget cap of {limit} lifted for tenant {tenant}: {why}",
            tenant=tenant,
            resolved=True,
            limit=limit,
            was=was,
            why=why,
        )

    def threshold(self, event: ThresholdEvent, currency: str, config: Config, now: float) -> None:
        kind, _, name = event.scope.partition(":")
        tenant = name if kind == "tenant" else None
        who = "the cluster" if event.scope == "global" else f"{kind} {name}"
        budget_name = _BUDGET_NAMES[event.period]
        firing = event.status == "firing"
        if firing:
            self.metrics.budget_violations_total.labels(
                scope=kind, period=event.period, threshold=f"{event.threshold:g}"
            ).inc()
            summary = (
                f"{who} has used {event.percent:.0f}% of its {budget_name} budget "
                f"({event.spent:,.2f} of {event.budget:,.2f} {currency}, {event.period_key}): "
                f"threshold {event.threshold:g}% reached"
            )
        else:
            summary = (
                f"{who}: {budget_name} budget threshold {event.threshold:g}% "
                f"({event.period_key}) resolved: {event.why}"
            )
        details = {
            "scope": event.scope,
            "period": event.period,
            "period_key": event.period_key,
            "threshold": event.threshold,
            "percent": event.percent,
            "spent": event.spent,
            "budget": event.budget,
            "currency": currency,
            "why": event.why,
        }
        self.report.event(
            now,
            "budget_threshold_reached" if firing else "budget_threshold_resolved",
            tenant=tenant,
            level="warning" if firing and event.threshold >= 100 else "info",
            details=details,
        )
        if not config.cost_control.budget_alerts:
            return
        if event.threshold >= 100:
            level = (Priority.P2, Severity.ERROR)
        elif event.threshold >= 75:
            level = (Priority.P2, Severity.WARNING)
        else:
            level = (Priority.P3, Severity.INFO)
        self.report.alert(
            now,
            "budget_threshold",
            event.dedup_key,
            level,
            summary,
            tenant=tenant,
            resolved=not firing,
            details=details,
        )

    def recommendation(self, item: CostRecommendation, now: float) -> None:
        """A cost recommendation, reported once, when it first appears."""
        self.metrics.cost_recommendations_total.labels(kind=item.kind).inc()
        kind, _, name = item.scope.partition(":")
        self.report.event(
            now,
            "cost_recommendation",
            tenant=name if kind == "tenant" else None,
            kind=item.kind,
            scope=item.scope,
            text=item.text,
            limit=item.limit,
            current=item.current,
            target=item.target,
            monthly_saving=item.monthly_saving,
            period=item.period,
            crossing_at=item.crossing_at,
        )
