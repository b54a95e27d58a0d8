"""Cost control in the service: collect the cost signals, keep the per-day ledger, alert on
budget thresholds, export the cost metrics, and enforce budgets as a plan guard.

Wiring (the Reconciler's guards and an after-cycle call, see `build_cost_control`):
    control = build_cost_control(config, store=..., audit=..., alerts=..., registry=..., clock=...)
    Reconciler(..., guards=[control, ...])
    ... after each successful plan:  control.after_cycle(observation, recs, config, now)

Both calls share one collection per `now` (the guard runs first in a cycle and uses the
freshly collected costs; `after_cycle` alerts, exports and checkpoints).

Split along its seams: the decisions are the engine's (engine/cost: ledger, forecasts, budget
caps, thresholds); the state and its checkpoint are in cost_state.py, the reporting (audit,
alerts, counters) in cost_report.py, the metric declarations in observability/cost_metrics.py;
this module wires them into the cycle.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict

import numpy as np
from prometheus_client import CollectorRegistry

from mimir_limit_optimizer.alerting.model import AlertSink
from mimir_limit_optimizer.catalogue import Catalogue, load_catalogue
from mimir_limit_optimizer.config.models import Config, Mode
from mimir_limit_optimizer.controller.cost_report import COMPONENT, CostReporter
from mimir_limit_optimizer.controller.cost_state import (
    CHECKPOINT_KEY,
    CostState,
    collect_into,
    load_state,
    save_state,
)
from mimir_limit_optimizer.controller.reporter import Reporter
from mimir_limit_optimizer.engine.cost import (
    PERIODS,
    BudgetCheck,
    Cap,
    CapOutcome,
    CostRecommendation,
    CostReport,
    CostUsage,
    PriceModel,
    StickyScope,
    build_report,
    evaluate_thresholds,
    plan_caps,
    recommendations,
)
from mimir_limit_optimizer.engine.cost.periods import HOUR, backfill_start
from mimir_limit_optimizer.engine.planning import CyclePlan, GuardInputs
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.engine.usage import Observation
from mimir_limit_optimizer.observability.cost_metrics import CostMetrics
from mimir_limit_optimizer.sources.base import SourceError
from mimir_limit_optimizer.sources.cost_signals import CostSource, build_cost_source
from mimir_limit_optimizer.store import AuditLog, Store

__all__ = ["CHECKPOINT_KEY", "CostControl", "CostSourceFactory", "build_cost_control",
           "collect_into"]  # fmt: skip
# A finished day is re-read until it is complete or was read this long after it ended.
SETTLE = HOUR

CostSourceFactory = Callable[[Config, float], CostSource]


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
        self.log = logger or logging.getLogger(__name__)
        self.reporter = CostReporter(
            Reporter(audit=audit, alerts=alerts, logger=self.log, component=COMPONENT,
                     category="cost"),
            metrics,
        )  # fmt: skip
        self.source_factory = source_factory
        self.clock = clock
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
    def _load(self) -> CostState:
        return load_state(self.store, self.log)

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
        save_state(self.store, self.state, now, self.log)

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
                self.reporter.collection_failed(str(exc), now)
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
            self.reporter.cap(outcome, acting=acting, now=now, currency=currency)
        self._lift(set(self.state.caps) - held, now, "the budget no longer needs it")

    def _lift(self, keys: set[str], now: float, why: str) -> None:
        for key in sorted(keys):
            entry = self.state.caps.pop(key)
            tenant, _, limit = key.partition("|")
            self.reporter.cap_lifted(tenant, limit, entry["value"], why, now)

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
            self.reporter.threshold(event, report.currency, config, now)

    def _recommendations(
        self, report: CostReport, recs: Recommendations | None, now: float
    ) -> None:
        current = recommendations(report, recs)
        self.last_recommendations = current
        known = set(self.state.recommendations)
        for item in current:
            if item.key in known:
                continue
            self.reporter.recommendation(item, now)
        self.state.recommendations = sorted({item.key for item in current})


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
    exported_tenants: Callable[[], Collection[str] | None] = lambda: None,
) -> CostControl:
    """A CostControl for the service. `source_factory(config, now)` defaults to the cost
    source matching `source.kind` (Prometheus: one range query per priced signal; synthetic:
    the built-in cluster), with `env` (default: the process environment) for credentials.
    `is_leader`: with leader election, only the leader caps, alerts, audits and checkpoints.
    `exported_tenants()`: the tenants with per-tenant recommendation series; per-tenant cost
    series follow them and config.server.tenantMetrics (observability/cost_metrics.py)."""
    tenant_series = config.server.tenant_metrics  # a restart-only setting, like the other's
    cat = catalogue or load_catalogue()
    environment = dict(os.environ if env is None else env)

    def default_factory(cfg: Config, now: float) -> CostSource:
        return build_cost_source(cfg, cat, now=now, env=environment)

    return CostControl(
        store=store,
        audit=audit,
        alerts=alerts,
        metrics=CostMetrics(registry, tenant_series=tenant_series, selected=exported_tenants),
        source_factory=source_factory or default_factory,
        clock=clock,
        logger=logger,
        is_leader=is_leader,
    )
