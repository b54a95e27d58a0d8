"""Cost control in the service, with a real SQLite store, audit log and metrics registry: budget
alerts fire once per threshold and period through the sink and resolve when the period ends;
the seed's cost metrics are exported; the state survives a restart (nothing fires twice, only
what the ledger misses is read again), also when a standby takes over from the leader; a
failed collection is audited, not fatal, and holds the caps; and as a
plan guard in the reconcile cycle, budget enforcement writes capped limits in prod, changes
nothing (but audits "would cap") in dry-run, and stays out when autoLimitReduction is off."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mimir_limit_optimizer.alerting.model import AlertStatus, CollectingSink, Priority
from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.controller.cost import CHECKPOINT_KEY, CostControl, build_cost_control
from mimir_limit_optimizer.controller.oneshot import build_source
from mimir_limit_optimizer.controller.reconcile import Reconciler
from mimir_limit_optimizer.engine.cost import CostUsage
from mimir_limit_optimizer.engine.overrides import parse_overrides
from mimir_limit_optimizer.observability.health import HealthState
from mimir_limit_optimizer.observability.metrics import ControllerMetrics
from mimir_limit_optimizer.sources.base import RetryableSourceError
from mimir_limit_optimizer.store import AuditLog, Store
from mimir_limit_optimizer.targets.file import FileTarget

CATALOGUE = load_catalogue()
LOG = logging.getLogger("test-cost-control")
STEP = 300.0


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class ConstantSource:
    """Every tenant at a constant rate per signal, at any time; records what was asked."""

    def __init__(self, rates: dict[str, dict[str, float]], *, down: bool = False) -> None:
        self.rates = rates
        self.down = down
        self.calls: list[tuple[tuple[str, ...], float, float]] = []

    def describe(self) -> str:
        return "constant"

    def collect_cost(self, signals: Sequence[str], *, start: float, end: float) -> CostUsage:
        self.calls.append((tuple(signals), start, end))
        if self.down:
            raise RetryableSourceError("prometheus is down", url="http://prom")
        grid = np.arange(math.ceil(start / STEP), math.floor(end / STEP) + 1) * STEP
        tenants = tuple(self.rates)
        arrays = {
            s: np.array([[self.rates[t].get(s, np.nan)] * len(grid) for t in tenants])
            for s in signals
        }
        return CostUsage(tenants, grid, STEP, arrays)


def cost_config(**cost: Any) -> Config:
    return Config.model_validate(
        {"synthetic": {"tenantCount": 12}, "costControl": {"enabled": True, **cost}}
    )


class Parts:
    def __init__(self, tmp: Path, source: ConstantSource | None = None) -> None:
        self.store = Store.open(f"sqlite:///{tmp / 'mlo.db'}")
        self.audit = AuditLog(self.store, logger=LOG)
        self.sink = CollectingSink()
        self.source = source
        self.control = self.build()

    def build(self) -> CostControl:
        """A new CostControl on the same store (a restart), with a new registry."""
        self.registry = CollectorRegistry()
        factory = (lambda _c, _n: self.source) if self.source is not None else None
        return build_cost_control(
            Config(), store=self.store, audit=self.audit, alerts=self.sink,
            registry=self.registry, clock=time.time, catalogue=CATALOGUE,
            source_factory=factory, env={},
        )  # fmt: skip

    def actions(self, action: str) -> list[Any]:
        return [e for e in self.store.audit(limit=10_000) if e.action == action]

    def sample(self, name: str, labels: dict[str, str]) -> float | None:
        return self.registry.get_sample_value(f"mimir_limit_optimizer_{name}", labels)


# 1,000 samples/s at 1 per million: 3.60 per hour, 86.40 per day. Daily budget 43.20: 50% at
# 06:00, 75% at 09:00, 90% at 10:48, 95% at 11:24, 100% at 12:00.
RATES = {"a": {"samples": 1000.0}}
DAILY = {"costPerUnit": 1.0, "globalBudget": {"daily": 43.2}}


def firing(sink: CollectingSink) -> list[tuple[str, float]]:
    return [
        (a.details["period_key"], a.details["threshold"])
        for a in sink.alerts
        if a.type == "budget_threshold" and a.status is AlertStatus.FIRING
    ]


def test_budget_thresholds_fire_once_per_period_and_resolve_when_it_ends(tmp_path: Path) -> None:
    parts = Parts(tmp_path, ConstantSource(RATES))
    config = cost_config(**DAILY)
    for hour in range(1, 24):  # a cycle every hour of March 10
        parts.control.after_cycle(None, None, config, ts(f"2024-03-10T{hour:02d}:00"))
    assert firing(parts.sink) == [("2024-03-10", t) for t in (50, 75, 90, 95, 100)]
    at_100 = next(a for a in parts.sink.alerts if a.details.get("threshold") == 100)
    assert at_100.priority is Priority.P2 and at_100.component == "cost-control"
    assert at_100.dedup_key == "budget:global:day:2024-03-10:100"
    assert "the cluster has used 100% of its daily budget" in at_100.summary

    parts.sink.alerts.clear()
    parts.control.after_cycle(None, None, config, ts("2024-03-11T00:30"))
    resolved = [a for a in parts.sink.alerts if a.status is AlertStatus.RESOLVED]
    assert sorted(a.details["threshold"] for a in resolved) == [50, 75, 90, 95, 100]
    assert {a.details["why"] for a in resolved} == {"period ended"}
    for hour in range(1, 24):
        parts.control.after_cycle(None, None, config, ts(f"2024-03-11T{hour:02d}:00"))
    assert firing(parts.sink) == [("2024-03-11", t) for t in (50, 75, 90, 95, 100)]
    assert len(parts.actions("budget_threshold_reached")) == 10
    labels = {"scope": "global", "period": "day", "threshold": "50"}
    assert parts.sample("budget_violations_total", labels) == 2.0


def test_cost_metrics_are_exported_on_the_injected_registry(tmp_path: Path) -> None:
    parts = Parts(tmp_path, ConstantSource({"a": {"samples": 1000.0}, "b": {"samples": 3000.0}}))
    config = cost_config(costPerUnit=1.0, teams={"*": "all"}, globalBudget={"daily": 400.0})
    parts.control.after_cycle(None, None, config, ts("2024-03-10T12:00"))
    day = {"period": "day", "currency": "USD"}
    tenant_a = {"scope": "tenant", "tenant": "a", "team": "all", **day}
    assert parts.sample("cost_current", tenant_a) == pytest.approx(43.2)
    glob = {"scope": "global", "tenant": "", "team": ""}
    assert parts.sample("cost_current", {**glob, **day}) == pytest.approx(172.8)
    team = {"scope": "team", "tenant": "", "team": "all", **day}
    assert parts.sample("cost_current", team) == pytest.approx(172.8)
    assert parts.sample("budget_usage_ratio", {**glob, "period": "day"}) == pytest.approx(0.432)
    assert parts.sample("cost_forecast", {**glob, **day}) == pytest.approx(345.6)
    text = generate_latest(parts.registry).decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {
        "mimir_limit_optimizer_cost_current",
        "mimir_limit_optimizer_budget_usage_ratio",
        "mimir_limit_optimizer_cost_recommendations",  # counters lose _total when parsed
        "mimir_limit_optimizer_budget_violations",
        "mimir_limit_optimizer_cost_forecast",
    } <= names
    assert parts.sample("budget_violations_total", {**{"scope": "global"}, "period": "day",
                                                    "threshold": "50"}) is None  # fmt: skip
    # A budget crossing this month is a recommendation, counted once.
    monthly = cost_config(costPerUnit=1.0, globalBudget={"monthly": 1000.0})
    parts.control.after_cycle(None, None, monthly, ts("2024-03-10T13:00"))
    parts.control.after_cycle(None, None, monthly, ts("2024-03-10T14:00"))
    assert parts.sample("cost_recommendations_total", {"kind": "budget_crossing"}) == 1.0
    assert len(parts.actions("cost_recommendation")) == 1


def _cost_tenants(parts: Parts) -> set[str]:
    """Tenants with a per-tenant cost_current series on the registry."""
    text = generate_latest(parts.registry).decode()
    return {
        sample.labels["tenant"]
        for family in text_string_to_metric_families(text)
        if family.name == "mimir_limit_optimizer_cost_current"
        for sample in family.samples
        if sample.labels["scope"] == "tenant"
    }


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # relevant: the tenants the recommendation series export (a), the one with a budget
        # (b), and the topN (1) costliest of each period (d); c is none of them.
        ("relevant", {"a", "b", "d"}),
        ("all", {"a", "b", "c", "d"}),
        ("none", set()),
    ],
)
def test_per_tenant_cost_series_follow_server_tenant_metrics(
    tmp_path: Path, mode: str, expected: set[str]
) -> None:
    rates = {t: {"samples": r} for t, r in (("a", 1e3), ("b", 2e3), ("c", 3e3), ("d", 4e3))}
    parts = Parts(tmp_path, ConstantSource(rates))
    service = Config.model_validate(
        {"server": {"tenantMetrics": {"mode": mode, "topN": 1}}, "costControl": {"enabled": True}}
    )
    parts.registry = CollectorRegistry()
    parts.control = build_cost_control(
        service, store=parts.store, audit=parts.audit, alerts=parts.sink,
        registry=parts.registry, clock=time.time, catalogue=CATALOGUE,
        source_factory=lambda _c, _n: parts.source, env={},
        exported_tenants=lambda: {"a"},
    )  # fmt: skip
    config = cost_config(
        costPerUnit=1.0,
        teams={"*": "all"},
        globalBudget={"daily": 1e6},
        tenantBudgets={"b": {"daily": 1e6}},
    )
    parts.control.after_cycle(None, None, config, ts("2024-03-10T12:00"))
    assert _cost_tenants(parts) == expected
    # The cluster and team totals are always there.
    glob = {"scope": "global", "tenant": "", "team": "", "period": "day", "currency": "USD"}
    assert parts.sample("cost_current", glob) == pytest.approx(4 * 2.5e3 * 1e-6 * 43200)
    team = {**glob, "scope": "team", "team": "all"}
    assert parts.sample("cost_forecast", team) is not None


def test_state_survives_a_restart_without_firing_twice(tmp_path: Path) -> None:
    source = ConstantSource(RATES)
    parts = Parts(tmp_path, source)
    config = cost_config(**DAILY)
    parts.control.after_cycle(None, None, config, ts("2024-03-10T07:00"))
    assert firing(parts.sink) == [("2024-03-10", 50)]
    first_start = source.calls[0][1]
    assert first_start == ts("2024-02-25T00:00") + 1  # 14 days back: the trend needs them
    assert parts.store.load_checkpoint(CHECKPOINT_KEY) is not None

    parts.control = parts.build()  # a restart: state from the checkpoint
    source.calls.clear()
    parts.control.after_cycle(None, None, config, ts("2024-03-10T07:05"))
    assert firing(parts.sink) == [("2024-03-10", 50)]  # not again
    assert source.calls[0][1] == ts("2024-03-10T00:00") + 1  # only today is read again
    assert parts.control.report is not None
    assert parts.control.report.spent["day"][-1] == pytest.approx(7 * 3.6 + 0.3)


def test_a_failed_collection_is_audited_and_keeps_the_ledger(tmp_path: Path) -> None:
    source = ConstantSource(RATES)
    parts = Parts(tmp_path, source)
    config = cost_config(**DAILY)
    parts.control.after_cycle(None, None, config, ts("2024-03-10T05:00"))
    source.down = True
    report = parts.control.after_cycle(None, None, config, ts("2024-03-10T08:00"))
    assert report is not None
    assert report.spent["day"][-1] == pytest.approx(18.0)  # what was known at 05:00
    (event,) = parts.actions("cost_collection_failed")
    assert "prometheus is down" in event.details["error"] and event.level == "error"
    assert parts.control.after_cycle(None, None, cost_config(enabled=False), 0.0) is None


# --- enforcement in the reconcile cycle --------------------------------------------------------
NOW = float(int(time.time() // STEP * STEP))


class Cycle:
    """A reconciler wired like the service, with the cost guard."""

    def __init__(self, tmp: Path) -> None:
        self.parts = Parts(tmp)
        self.path = tmp / "overrides.yaml"
        self.path.write_text("overrides: {}\n")
        applier = Applier(
            FileTarget(self.path), self.parts.store, CATALOGUE, verifier=None,
            rollback_on_failure=True, sleep=lambda _s: None, logger=LOG,
        )  # fmt: skip
        self.reconciler = Reconciler(
            catalogue=CATALOGUE,
            source_factory=lambda cfg, now: build_source(cfg, now=now, env={}),
            applier=applier, store=self.parts.store, audit=self.parts.audit,
            metrics=ControllerMetrics(CollectorRegistry()), health=HealthState(stall_after=60),
            logger=LOG, guards=[self.parts.control],
        )  # fmt: skip

    def run(self, config: Config) -> Any:
        result = self.reconciler.run_once(config, now=NOW)
        assert result.ok, result.detail
        self.parts.control.after_cycle(None, result.recommendations, config, NOW)
        return result


def enforcing(mode: str, *, auto: bool = True) -> Config:
    return Config.model_validate(
        {
            "mode": mode,
            "synthetic": {"tenantCount": 12},
            "safety": {"maxTenantsPerCycle": 100},
            "costControl": {
                "enabled": True,
                "autoLimitReduction": auto,
                # tenant-001's month is long over budget; it alone is in enforce mode.
                "tenantBudgets": {"tenant-001": {"monthly": 0.000001, "enforceBudget": True}},
            },
        }
    )


def test_prod_writes_the_capped_limit_of_the_enforced_tenant_only(tmp_path: Path) -> None:
    cycle = Cycle(tmp_path)
    cycle.run(enforcing("prod"))
    written = parse_overrides(cycle.path.read_text())
    assert written.get("tenant-001", "ingestion_rate") == 1000  # the default floor
    (event,) = cycle.parts.actions("budget_cap_planned")
    assert event.tenant == "tenant-001" and event.details["new"] == 1000
    assert event.details["old"] == 10000 and event.category == "cost"
    update = next(
        e for e in cycle.parts.actions("update_limits")
        if e.tenant == "tenant-001" and e.details["limit"] == "ingestion_rate"
    )  # fmt: skip
    assert any(r.startswith("budget: its own monthly budget") for r in update.details["reasons"])
    alerts = [a for a in cycle.parts.sink.alerts if a.type == "budget_enforcement"]
    assert [a.tenant for a in alerts] == ["tenant-001"]
    # Others keep what the recommendations said: none of their values is the floor.
    others = [written.get(t, "ingestion_rate") for t in written.tenants() if t != "tenant-001"]
    assert 1000 not in others
    cycle.run(enforcing("prod"))  # the cap holds: nothing new to audit or alert
    assert len(cycle.parts.actions("budget_cap_planned")) == 1


def test_dry_run_changes_nothing_but_audits_would_cap(tmp_path: Path) -> None:
    cycle = Cycle(tmp_path)
    cycle.run(enforcing("dry-run"))
    assert cycle.path.read_text() == "overrides: {}\n"
    (event,) = cycle.parts.actions("would_cap_limits")
    assert (event.tenant, event.details["new"], event.details["mode"]) == (
        "tenant-001", 1000, "dry-run"
    )  # fmt: skip
    would = [e for e in cycle.parts.actions("would_update_limits") if e.tenant == "tenant-001"]
    assert all(e.details["new"] != 1000 for e in would)  # the plan itself is not capped
    (alert,) = [a for a in cycle.parts.sink.alerts if a.type == "budget_enforcement"]
    assert alert.summary.startswith("would cap ingestion_rate of tenant tenant-001")


def test_monitor_only_never_caps(tmp_path: Path) -> None:
    cycle = Cycle(tmp_path)
    cycle.run(enforcing("prod", auto=False))
    written = parse_overrides(cycle.path.read_text())
    assert written.get("tenant-001", "ingestion_rate") != 1000
    assert cycle.parts.actions("budget_cap_planned") == []
    # The budget is still tracked and alerted.
    assert cycle.parts.actions("budget_threshold_reached")


def test_caps_are_held_while_the_cost_source_is_down(tmp_path: Path) -> None:
    from mimir_limit_optimizer.engine.plan import Plan
    from mimir_limit_optimizer.engine.planning import plan_recommendations
    from tests.test_cost_engine import recs_with

    source = ConstantSource({"dev": {"samples": 5000.0}})
    parts = Parts(tmp_path, source)
    config = Config.model_validate(
        {
            "mode": "prod",
            "costControl": {
                "enabled": True,
                "autoLimitReduction": True,
                "tenantBudgets": {"dev": {"monthly": 1.0, "enforceBudget": True}},
            },
        }
    )
    recs = recs_with({"dev": 10000.0})

    def guard(at: str) -> Plan:
        """One cycle of the cost guard through the planning function: the plan it writes."""
        now = ts(at)
        inputs = parts.control.guard_inputs(config, now)
        planned = plan_recommendations(recs, config, CATALOGUE, guards=inputs, now=now)
        parts.control.planned(planned, config, now)
        return planned.writes

    first = guard("2024-03-10T12:00")
    assert [(c.tenant, c.old, c.new) for c in first.changes] == [("dev", 10000.0, 1000.0)]
    parts.control.after_cycle(None, recs, config, ts("2024-03-10T12:00"))
    source.down = True
    parts.control = parts.build()  # even across a restart
    again = guard("2024-03-10T12:05")
    assert [(c.tenant, c.new) for c in again.changes] == [("dev", 1000.0)]
    assert parts.actions("budget_cap_lifted") == []
    assert len(parts.actions("cost_collection_failed")) == 1


def test_a_long_backfill_is_read_one_day_at_a_time_and_counted_once() -> None:
    from mimir_limit_optimizer.controller.cost import collect_into
    from mimir_limit_optimizer.engine.cost import Ledger, integrate_daily

    source = ConstantSource({"a": {"samples": 1000.0}, "b": {"samples": 10.0}})
    start, end = ts("2024-03-01T00:00") + 1, ts("2024-03-10T00:20")
    ledger, latest = collect_into(Ledger(), source, ["samples"], start=start, end=end)
    spans = [(low, high) for _, low, high in source.calls]
    assert len(spans) == 9 and all(high - low <= 86400 + 3600 for low, high in spans)
    assert spans[-1] == (ts("2024-03-09T00:00") + 1, end)  # the last read spans >= 1 hour
    assert latest.timestamps[-1] == ts("2024-03-10T00:20")
    once = source.collect_cost(["samples"], start=start, end=end)
    whole = Ledger().merge(integrate_daily(once), collected_at=end)
    for kind in ("month", "day"):
        assert ledger.totals(kind, end).quantities["samples"] == pytest.approx(
            whole.totals(kind, end).quantities["samples"]
        )


def test_a_standby_acts_on_nothing_and_takes_over_where_the_leader_stopped(
    tmp_path: Path,
) -> None:
    leader = Parts(tmp_path, ConstantSource(RATES))
    config = cost_config(**DAILY)
    leader.control.after_cycle(None, None, config, ts("2024-03-10T07:00"))
    assert firing(leader.sink) == [("2024-03-10", 50)]

    leading = {"now": False}
    standby = build_cost_control(
        Config(), store=leader.store, audit=leader.audit, alerts=(sink := CollectingSink()),
        registry=CollectorRegistry(), catalogue=CATALOGUE, env={},
        source_factory=lambda _c, _n: ConstantSource(RATES), is_leader=lambda: leading["now"],
    )  # fmt: skip
    leader.control.after_cycle(None, None, config, ts("2024-03-10T09:30"))  # 75% fired
    assert standby.after_cycle(None, None, config, ts("2024-03-10T09:30")) is None
    assert sink.alerts == []
    leading["now"] = True  # the leader is gone; the standby reads its state from the store
    standby.after_cycle(None, None, config, ts("2024-03-10T11:00"))
    assert firing(sink) == [("2024-03-10", 90)]  # 50 and 75 are not sent twice
