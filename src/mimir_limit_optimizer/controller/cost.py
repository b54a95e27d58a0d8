"""Cost control in the service: collect the cost signals, keep the per-day ledger, alert on
budget thresholds, export the cost metrics, and enforce budgets as a plan guard.

Wiring (the Reconciler's guards and an after-cycle call, see `build_cost_control`):
    control = build_cost_control(config, store=..., audit=..., alerts=..., registry=..., clock=...)
    Reconciler(..., guards=[control, ...])
    ... after each successful plan:  control.after_cycle(observation, recs, config, now)

Both calls share one collection per `now` (the guard runs first in a cycle and uses the
freshly collected costs; `after_cycle` alerts, exports and checkpoints). Everything is plain
data in one checkpoint (`cost_control`), so a restart resumes mid-month without re-reading it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from mimir_limit_optimizer.alerting.model import Alert, AlertSink, AlertStatus, Priority, Severity
from mimir_limit_optimizer.catalogue import Catalogue, load_catalogue
from mimir_limit_optimizer.config.models import Config, Mode
from mimir_limit_optimizer.engine.cost import (
    PERIODS,
    BudgetCheck,
    Cap,
    CapOutcome,
    CostRecommendation,
    CostReport,
    CostUsage,
    Ledger,
    PriceModel,
    StickyScope,
    ThresholdEvent,
    build_report,
    evaluate_thresholds,
    integrate_daily,
    plan_caps,
    recommendations,
)
from mimir_limit_optimizer.engine.cost.periods import DAY, HOUR, backfill_start
from mimir_limit_optimizer.engine.planning import CyclePlan, GuardInputs
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.engine.usage import Observation
from mimir_limit_optimizer.observability.metrics import PREFIX
from mimir_limit_optimizer.sources.base import SourceError
from mimir_limit_optimizer.sources.cost_signals import CostSource, build_cost_source
from mimir_limit_optimizer.store import AuditEvent, AuditLog, Store, StoreError

CHECKPOINT_KEY = "cost_control"
STATE_VERSION = 1
COMPONENT = "cost-control"
# A finished day is re-read until it is complete or was read this long after it ended.
SETTLE = HOUR

CostSourceFactory = Callable[[Config, float], CostSource]


# --- metrics ---------------------------------------------------------------------------------
class CostMetrics:
    """The seed's cost metrics on an injected registry. Gauges are derived from the latest
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


# --- the controller part ---------------------------------------------------------------------
@dataclass
class _State:
    ledger: Ledger
    thresholds: dict[str, Any]
    sticky: dict[str, StickyScope]
    caps: dict[str, dict[str, Any]]  # "tenant|limit" -> what was capped (or would be)
    recommendations: list[str]

    def to_plain(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "ledger": self.ledger.to_plain(),
            "thresholds": self.thresholds,
            "sticky": {
                k: {
                    "scope": s.scope,
                    "period": s.period,
                    "periodKey": s.period_key,
                    "budget": s.budget,
                    "level": s.level if math.isfinite(s.level) else None,
                }
                for k, s in self.sticky.items()
            },
            "caps": self.caps,
            "recommendations": self.recommendations,
        }

    @classmethod
    def fresh(cls) -> _State:
        return cls(Ledger(), {}, {}, {}, [])

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> _State:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown cost state version {data.get('version')!r}")
        sticky = {
            k: StickyScope(
                v["scope"],
                v["period"],
                v["periodKey"],
                float(v["budget"]),
                math.inf if v["level"] is None else float(v["level"]),
            )
            for k, v in data["sticky"].items()
        }
        return cls(
            Ledger.from_plain(data["ledger"]),
            dict(data["thresholds"]),
            sticky,
            dict(data["caps"]),
            list(data["recommendations"]),
        )


class CostControl:
    """See the module docstring. Every dependency is injected."""

    def __init__(
        self,
        *,
        store: Store,
        audit: AuditLog,
        alerts: AlertSink,
        metrics: CostMetrics,
        source_factory: CostSourceFactory,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.is_leader = is_leader
        self._leading = True
        self.audit = audit
        self.alerts = alerts
        self.metrics = metrics
        self.source_factory = source_factory
        self.clock = clock
        self.log = logger or logging.getLogger(__name__)
        self.state = self._load()
        self.report: CostReport | None = None
        self._report_at: float | None = None
        self.last_error: str | None = None
        self.last_recommendations: list[CostRecommendation] = []
        self.last_caps: list[CapOutcome] = []
        # The newest successful collection: its rates convert budgets into limits, also
        # through a failed collection (a Prometheus hiccup must not lift every cap).
        self._latest: CostUsage | None = None
        # Between guard_inputs and planned of one cycle: enforcement on, and the sticky
        # budgets the caps were computed with.
        self._guarding = False
        self._sticky: dict[str, StickyScope] = {}

    # --- state -------------------------------------------------------------------------
    def _load(self) -> _State:
        raw = self.store.load_checkpoint(CHECKPOINT_KEY)
        if raw is None:
            return _State.fresh()
        try:
            return _State.from_plain(json.loads(zlib.decompress(raw)))
        except (ValueError, KeyError, TypeError, zlib.error) as exc:
            self.log.warning("cost checkpoint unreadable, starting a new ledger: %s", exc)
            return _State.fresh()

    def _lead(self) -> bool:
        """True while this replica leads. Standbys act on nothing (no caps, alerts, audit or
        checkpoint: the leader does it); on becoming leader the state is re-read from the
        store, where the previous leader left it."""
        leading = self.is_leader()
        if leading and not self._leading:
            self.state = self._load()
            self.report, self._report_at, self._latest = None, None, None
        self._leading = leading
        return leading

    def _save(self, now: float) -> None:
        data = zlib.compress(json.dumps(self.state.to_plain()).encode("utf-8"), 6)
        try:
            self.store.save_checkpoint(CHECKPOINT_KEY, data, at=now)
        except StoreError as exc:
            self.log.error("cannot checkpoint the cost state: %s", exc)

    def _event(
        self, now: float, action: str, *, tenant: str | None = None, level: str = "info",
        **details: object,
    ) -> None:  # fmt: skip
        try:
            self.audit.record(AuditEvent(now, level, "cost", COMPONENT, action, tenant, details))
        except StoreError as exc:  # the audit line is still logged by AuditLog
            self.log.error("audit event %s not stored: %s", action, exc)

    # --- costs -------------------------------------------------------------------------
    def refresh(self, config: Config, now: float) -> CostReport:
        """Collect what the ledger misses (once per `now`) and rebuild the report."""
        if self.report is not None and self._report_at == now:
            return self.report
        settings = config.cost_control
        price = PriceModel.from_settings(settings)
        backfill = backfill_start(now, settings.forecast_days)
        start = self.state.ledger.collect_from(now, backfill_from=backfill, settle=SETTLE)
        self.last_error = None
        if price.priced and start < now:
            try:
                source = self.source_factory(config, now)
                ledger, latest = collect_into(
                    self.state.ledger, source, price.priced, start=start, end=now
                )
            except SourceError as exc:
                self.last_error = str(exc)
                self._event(now, "cost_collection_failed", level="error", error=str(exc))
            else:
                self.state.ledger = ledger.prune(now)
                self._latest = latest
        self.report = build_report(self.state.ledger, settings, now, latest=self._latest)
        self._report_at = now
        return self.report

    def report_now(self, config: Config) -> CostReport:
        return self.refresh(config, self.clock())

    # --- the guard ---------------------------------------------------------------------
    def guard_inputs(self, config: Config, now: float) -> GuardInputs:
        """PlanGuard: the caps of budget enforcement (autoLimitReduction, enforce-mode
        tenants). They shape the plan in prod; in dry-run the planning function only reports
        what they would do (`planned` audits and alerts them as "would cap"). The caps only
        ever tighten (engine/cost/enforce.apply_caps)."""
        settings = config.cost_control
        self._guarding = False
        if not self._lead():
            return GuardInputs()
        if not (settings.enabled and settings.auto_limit_reduction):
            return GuardInputs()
        self._guarding = True
        report = self.refresh(config, now)
        if report.usage_rates:
            decision = plan_caps(
                report,
                settings,
                sticky=self.state.sticky,
                digits=config.change_policy.rounding_digits,
            )
            self._sticky = decision.sticky
            caps = decision.caps
        else:  # no rates to convert budgets with (the source is down): hold the caps we have
            self._sticky = self.state.sticky
            caps = tuple(Cap(**entry["cap"]) for entry in self.state.caps.values())
        return GuardInputs(budget=caps, budget_acting=config.mode is Mode.PROD)

    def planned(self, plan: CyclePlan, config: Config, now: float) -> None:
        """PlanGuard: audit, alert and count the caps the plan made (or would make), lift the
        ones no longer needed, and keep the sticky budgets."""
        if not self._lead():
            return
        if not self._guarding:
            self._lift(set(self.state.caps), now, "enforcement is off")
            self.state.sticky = {}
            return
        self.state.sticky = self._sticky
        self.last_caps = list(plan.budget)
        currency = self.report.currency if self.report is not None else ""
        self._record_caps(
            self.last_caps, acting=config.mode is Mode.PROD, now=now, currency=currency
        )

    def _record_caps(
        self, outcomes: list[CapOutcome], *, acting: bool, now: float, currency: str
    ) -> None:
        held: set[str] = set()
        mode = "prod" if acting else "dry-run"
        for outcome in outcomes:
            cap = outcome.cap
            key = f"{cap.tenant}|{cap.limit}"
            binding = outcome.note in ("capped", "raise limited", "kept at the cap")
            if not binding and not (outcome.note == "already within" and key in self.state.caps):
                continue
            held.add(key)
            previous = self.state.caps.get(key)
            if previous is not None and previous["value"] == cap.value:
                continue
            self.state.caps[key] = {"value": cap.value, "mode": mode, "cap": asdict(cap)}
            # The guard runs before the safety caps and the write: in prod this is the cap put
            # into the plan; the write itself is audited as update_limits (or change_held_back).
            verb = "cap planned for" if acting else "would cap"
            self._event(
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
            self.alerts.emit(
                Alert(
                    type="budget_enforcement",
                    priority=Priority.P2,
                    severity=Severity.WARNING,
                    summary=f"{verb} {cap.limit} of tenant {cap.tenant} at {cap.value:,.0f}: "
                    f"{cap.reason}",
                    component=COMPONENT,
                    dedup_key=f"budget_cap:{cap.tenant}:{cap.limit}",
                    timestamp=now,
                    tenant=cap.tenant,
                    details={
                        "limit": cap.limit,
                        "old": outcome.old,
                        "new": cap.value,
                        "floor": cap.floor,
                        "scope": cap.scope,
                        "period": cap.period,
                        "mode": mode,
                    },
                )
            )
        self._lift(set(self.state.caps) - held, now, "the budget no longer needs it")

    def _lift(self, keys: set[str], now: float, why: str) -> None:
        for key in sorted(keys):
            entry = self.state.caps.pop(key)
            tenant, _, limit = key.partition("|")
            self._event(
                now, "budget_cap_lifted", tenant=tenant, limit=limit, was=entry["value"], why=why
            )
            self.alerts.emit(
                Alert(
                    type="budget_enforcement",
                    priority=Priority.P2,
                    severity=Severity.INFO,
                    summary=f"budget cap of {limit} lifted for tenant {tenant}: {why}",
                    component=COMPONENT,
                    dedup_key=f"budget_cap:{tenant}:{limit}",
                    timestamp=now,
                    tenant=tenant,
                    details={"limit": limit, "was": entry["value"], "why": why},
                    status=AlertStatus.RESOLVED,
                )
            )

    # --- after the cycle ---------------------------------------------------------------
    def after_cycle(
        self,
        observation: Observation | None,
        recs: Recommendations | None,
        config: Config,
        now: float,
    ) -> CostReport | None:
        """Costs, budget alerts (each threshold once per period), recommendations, metrics
        and the checkpoint. `observation` is accepted for the wiring's symmetry and not read:
        cost comes from its own signals (a month of samples only, never exemplars, and query
        statistics), collected by `refresh`. None when cost control is disabled or this replica
        is a standby."""
        del observation
        settings = config.cost_control
        if not settings.enabled or not self._lead():
            self.metrics.collector.update(None)
            return None
        report = self.refresh(config, now)
        self._thresholds(report, config, now)
        if settings.cost_optimization:
            self._recommendations(report, recs, now)
        self.metrics.collector.update(report)
        self._save(now)
        return report

    def _thresholds(self, report: CostReport, config: Config, now: float) -> None:
        keys = report.scopes.keys()
        checks = [
            BudgetCheck(
                keys[row],
                period,
                report.period_keys[period],
                float(report.spent[period][row]),
                float(report.budgets[period][row]),
            )
            for period in PERIODS
            for row in np.flatnonzero(np.isfinite(report.budgets[period])).tolist()
        ]
        thresholds = config.cost_control.alert_thresholds
        self.state.thresholds, events = evaluate_thresholds(
            self.state.thresholds, checks, thresholds
        )
        for event in events:
            self._threshold_event(event, report, config, now)

    def _threshold_event(
        self, event: ThresholdEvent, report: CostReport, config: Config, now: float
    ) -> None:
        kind, _, name = event.scope.partition(":")
        tenant = name if kind == "tenant" else None
        who = "the cluster" if event.scope == "global" else f"{kind} {name}"
        budget_name = {"day": "daily", "month": "monthly", "year": "annual"}[event.period]
        currency = report.currency
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
        self._event(
            now,
            "budget_threshold_reached" if firing else "budget_threshold_resolved",
            tenant=tenant,
            level="warning" if firing and event.threshold >= 100 else "info",
            **details,
        )
        if not config.cost_control.budget_alerts:
            return
        if event.threshold >= 100:
            priority, severity = Priority.P2, Severity.ERROR
        elif event.threshold >= 75:
            priority, severity = Priority.P2, Severity.WARNING
        else:
            priority, severity = Priority.P3, Severity.INFO
        self.alerts.emit(
            Alert(
                type="budget_threshold",
                priority=priority,
                severity=severity,
                summary=summary,
                component=COMPONENT,
                dedup_key=event.dedup_key,
                timestamp=now,
                tenant=tenant,
                details=details,
                status=AlertStatus.FIRING if firing else AlertStatus.RESOLVED,
            )
        )

    def _recommendations(
        self, report: CostReport, recs: Recommendations | None, now: float
    ) -> None:
        current = recommendations(report, recs)
        self.last_recommendations = current
        known = set(self.state.recommendations)
        for item in current:
            if item.key in known:
                continue
            self.metrics.cost_recommendations_total.labels(kind=item.kind).inc()
            kind, _, name = item.scope.partition(":")
            self._event(
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
        self.state.recommendations = sorted({item.key for item in current})


def collect_into(
    ledger: Ledger,
    source: CostSource,
    signals: Sequence[str],
    *,
    start: float,
    end: float,
) -> tuple[Ledger, CostUsage]:
    """`ledger` with [start, end] read from `source` one UTC day per query (a first backfill
    of weeks over thousands of tenants never holds more than a day in memory), and the last
    read, which covers at least the last hour (the current rates enforcement works with)."""
    windows: list[tuple[float, float]] = []
    first = start
    while True:
        day_end = (math.floor(first / DAY) + 1) * DAY
        if day_end >= end or end - day_end < HOUR:
            windows.append((min(first, end - HOUR) if windows else first, end))
            break
        windows.append((first, day_end))
        first = day_end + 1.0
    latest: CostUsage | None = None
    for low, high in windows:
        latest = source.collect_cost(signals, start=low, end=high)
        daily = integrate_daily(latest)
        ledger = ledger.merge(daily, collected_at=end, window=(low, high))
    assert latest is not None
    return ledger, latest


def build_cost_control(
    config: Config,
    *,
    store: Store,
    audit: AuditLog,
    alerts: AlertSink,
    registry: CollectorRegistry,
    clock: Callable[[], float] = time.time,
    catalogue: Catalogue | None = None,
    source_factory: CostSourceFactory | None = None,
    env: Mapping[str, str] | None = None,
    logger: logging.Logger | None = None,
    is_leader: Callable[[], bool] = lambda: True,
) -> CostControl:
    """A CostControl for the service. `source_factory(config, now)` defaults to the cost
    source matching `source.kind` (Prometheus: one range query per priced signal; synthetic:
    the built-in cluster), with `env` (default: the process environment) for credentials.
    `is_leader`: with leader election, only the leader caps, alerts, audits and checkpoints."""
    del config  # read per call (hot reload); kept for a uniform builder signature
    cat = catalogue or load_catalogue()
    environment = dict(os.environ if env is None else env)

    def default_factory(cfg: Config, now: float) -> CostSource:
        return build_cost_source(cfg, cat, now=now, env=environment)

    return CostControl(
        store=store,
        audit=audit,
        alerts=alerts,
        metrics=CostMetrics(registry),
        source_factory=source_factory or default_factory,
        clock=clock,
        logger=logger,
        is_leader=is_leader,
    )
