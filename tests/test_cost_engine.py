"""The pure cost engine against hand-computed examples: every cost model (samples, series,
queries, composite) within 1% (they are exact), sums per team and for the cluster, UTC day,
month and year boundaries, the month-end forecast and when a budget is reached, the ledger
(merge, prune, plain-data round trip), budget alert thresholds (each fired once per period,
resolved when back under or when the period ends), enforcement caps (allowance, rounding down,
floors, the hybrid per-tenant mode, water-filling for shared budgets, sticky caps), and that
applying caps to a plan only ever tightens it."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.cost import CostControlSettings
from mimir_limit_optimizer.engine.cost import (
    BudgetCheck,
    Cap,
    CostUsage,
    Ledger,
    PriceModel,
    StickyScope,
    apply_caps,
    build_report,
    evaluate_thresholds,
    integrate_daily,
    plan_caps,
)
from mimir_limit_optimizer.engine.cost.enforce import round_down, water_level
from mimir_limit_optimizer.engine.cost.periods import DAY, period_bounds
from mimir_limit_optimizer.engine.plan import Change, Plan
from mimir_limit_optimizer.engine.results import LimitResult, Recommendations

STEP = 300.0
CATALOGUE = load_catalogue()


def ts(text: str) -> float:
    """'2024-03-10T06:00' (UTC) -> unix seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def usage(tenants: dict[str, dict[str, tuple[float, str, str]]], start: str, end: str) -> CostUsage:
    """Constant rates: {tenant: {signal: (rate, from, to)}} on a 5-minute grid over
    (start, end]; a step counts when it lies inside [from, to]. NaN elsewhere."""
    grid = np.arange(ts(start) + STEP, ts(end) + 1, STEP)
    names = tuple(tenants)
    signals = {s for spec in tenants.values() for s in spec}
    rates = {s: np.full((len(names), len(grid)), np.nan) for s in signals}
    for i, name in enumerate(names):
        for signal, (rate, first, last) in tenants[name].items():
            inside = (grid - STEP >= ts(first) - 1e-6) & (grid <= ts(last) + 1e-6)
            rates[signal][i, inside] = rate
    return CostUsage(names, grid, STEP, rates)


def report_for(data: CostUsage, settings: CostControlSettings, now: float) -> Any:
    ledger = Ledger().merge(integrate_daily(data), collected_at=now).prune(now)
    return build_report(ledger, settings, now, latest=data)


def cost_settings(**values: Any) -> CostControlSettings:
    return CostControlSettings.model_validate(values)


def row(report: Any, scope: str) -> int:
    return report.scopes.keys().index(scope)


# --- the four models, by hand ---------------------------------------------------------------
# A: 2,000 samples/s for the whole of 2024-03-10 = 172,800,000 samples.
# B: 12,000 series for 6 hours = 72,000 series-hours.
# C: 5 queries/s for 1 hour = 18,000 queries; 2,000,000 bytes/s for 1 hour = 7.2 GB.
DAY_DATA = {
    "a": {"samples": (2000.0, "2024-03-10T00:00", "2024-03-11T00:00")},
    "b": {"series": (12000.0, "2024-03-10T06:00", "2024-03-10T12:00")},
    "c": {
        "queries": (5.0, "2024-03-10T10:00", "2024-03-10T11:00"),
        "fetched_bytes": (2.0e6, "2024-03-10T10:00", "2024-03-10T11:00"),
    },
}
PRICES = {
    "costPerUnit": 0.5,  # per million samples
    "prices": {"perSeriesHour": 0.0001, "perThousandQueries": 0.2, "perFetchedGB": 0.05},
}
NOW = ts("2024-03-11T00:00")  # the day is over


@pytest.mark.parametrize(
    ("method", "weights", "expected"),
    [
        # 172.8 M samples x 0.5 / M = 86.40
        ("samples", None, {"a": 86.40, "b": 0.0, "c": 0.0}),
        # 72,000 series-hours x 0.0001 = 7.20
        ("series", None, {"a": 0.0, "b": 7.20, "c": 0.0}),
        # 18,000 / 1,000 x 0.2 = 3.60, plus 7.2 GB x 0.05 = 0.36
        ("queries", None, {"a": 0.0, "b": 0.0, "c": 3.96}),
        # the seed's weights: 0.4 x 86.40 + 0.4 x 7.20 + 0.2 x 3.96
        ("composite", None, {"a": 34.56, "b": 2.88, "c": 0.792}),
        ("composite", {"samples": 1, "series": 1, "queries": 1}, {"a": 86.4, "b": 7.2, "c": 3.96}),
    ],
)
def test_each_model_matches_the_hand_computation(
    method: str, weights: dict[str, float] | None, expected: dict[str, float]
) -> None:
    extra = {"compositeWeights": weights} if weights else {}
    settings = cost_settings(costMethod=method, **PRICES, **extra)
    report = report_for(usage(DAY_DATA, "2024-03-09T23:00", "2024-03-11T00:00"), settings, NOW)
    for tenant, value in expected.items():
        # Yesterday's cost is today's month-to-date (the day ended at NOW = March 11, 00:00).
        got = report.spent["month"][row(report, f"tenant:{tenant}")]
        assert got == pytest.approx(value, rel=0.01)
        assert got == pytest.approx(value, rel=1e-9)  # exact, in fact
    assert report.spent["month"][report.scopes.global_row] == pytest.approx(sum(expected.values()))
    assert report.spent["day"][report.scopes.global_row] == 0.0  # March 11 has just begun


def test_prices_default_to_the_seed_cost_per_unit() -> None:
    price = PriceModel.from_settings(cost_settings(costPerUnit=0.001))
    assert price.unit_price["samples"] == pytest.approx(0.001 / 1e6)
    assert price.priced == ("samples",)
    explicit = PriceModel.from_settings(cost_settings(prices={"perMillionSamples": 0.003}))
    assert explicit.unit_price["samples"] == pytest.approx(0.003 / 1e6)


def test_quantities_integrate_rates_never_counter_values() -> None:
    data = usage(DAY_DATA, "2024-03-09T23:00", "2024-03-11T00:00")
    daily = integrate_daily(data)
    day = list(daily.days).index(int(ts("2024-03-10T00:00") // DAY))
    a, b, c = 0, 1, 2
    assert daily.quantities["samples"][a, day] == pytest.approx(172_800_000)
    assert daily.quantities["series"][b, day] == pytest.approx(72_000)  # series-hours
    assert daily.quantities["queries"][c, day] == pytest.approx(18_000)
    assert daily.quantities["fetched_bytes"][c, day] == pytest.approx(7.2e9)
    assert daily.coverage[day] == DAY  # every step of the day had data


# --- teams and the cluster ------------------------------------------------------------------
def test_costs_sum_per_team_and_for_the_cluster() -> None:
    data = usage(
        {
            "shop-web": {"samples": (1000.0, "2024-03-10T00:00", "2024-03-11T00:00")},
            "shop-api": {"samples": (3000.0, "2024-03-10T00:00", "2024-03-11T00:00")},
            "ml-train": {"samples": (500.0, "2024-03-10T00:00", "2024-03-11T00:00")},
            "misc": {"samples": (100.0, "2024-03-10T00:00", "2024-03-11T00:00")},
        },
        "2024-03-09T23:00",
        "2024-03-11T00:00",
    )
    settings = cost_settings(costPerUnit=1.0, teams={"shop-*": "shop", "ml-*": "ml"})
    report = report_for(data, settings, NOW)
    # 86.4 M samples per 1,000 samples/s and day, at 1 per million.
    month = dict(zip(report.scopes.keys(), report.spent["month"].tolist(), strict=True))
    assert month["team:shop"] == pytest.approx(86.4 + 259.2)
    assert month["team:ml"] == pytest.approx(43.2)
    assert month["global"] == pytest.approx(86.4 + 259.2 + 43.2 + 8.64)
    assert report.scopes.team_of == ("shop", "shop", "ml", None)


# --- periods ---------------------------------------------------------------------------------
def test_day_month_and_year_boundaries_are_utc() -> None:
    # 1,000 samples/s from Dec 31 22:00 to Jan 1 02:00 (UTC): 7.2 M samples on each side.
    data = usage(
        {"t": {"samples": (1000.0, "2023-12-31T22:00", "2024-01-01T02:00")}},
        "2023-12-31T20:00",
        "2024-01-01T03:00",
    )
    settings = cost_settings(costPerUnit=1.0)
    report = report_for(data, settings, ts("2024-01-01T03:00"))
    g = report.scopes.global_row
    assert report.period_keys == {"day": "2024-01-01", "month": "2024-01", "year": "2024"}
    for kind in ("day", "month", "year"):
        assert report.spent[kind][g] == pytest.approx(7.2)
    # The last step of the year (23:55-24:00, stamped 00:00) still belongs to Dec 31.
    ledger = Ledger().merge(integrate_daily(data), collected_at=0)
    december = ledger.totals("day", ts("2023-12-31T12:00"))
    assert december.quantities["samples"][0] == pytest.approx(7.2e6)
    assert period_bounds("month", ts("2024-02-15T00:00")) == (
        ts("2024-02-01T00:00"),
        ts("2024-03-01T00:00"),
    )


# --- forecast --------------------------------------------------------------------------------
def growing(days: int, first: float, step: float, month: str = "2024-03") -> CostUsage:
    """One tenant costing first, first + step, ... per day (at 1 per million samples) over
    the first `days` days of `month`."""
    data = usage({"t": {"samples": (0.0, f"{month}-01T00:00", f"{month}-02T00:00")}},
                 f"{month}-01T00:00", f"{month}-{days + 1:02d}T00:00")  # fmt: skip
    rates = data.rates["samples"]
    day_of = ((data.timestamps - STEP / 2) // DAY - data.timestamps[0] // DAY).astype(int)
    rates[0] = (first + step * day_of) * 1e6 / DAY
    return data


def test_month_end_forecast_follows_the_linear_trend() -> None:
    # Daily costs 10, 11, 12, 13, 14 (March 1-5); at March 6, 00:00 the line says 15, 16, ...
    data = growing(5, 10.0, 1.0)
    settings = cost_settings(costPerUnit=1.0, globalBudget={"monthly": 100.0})
    now = ts("2024-03-06T00:00")
    report = report_for(data, settings, now)
    g = report.scopes.global_row
    assert report.spent["month"][g] == pytest.approx(60.0)
    # March 6..31 on the line: sum(d + 9 for d in 6..31) = 715.
    assert report.forecast.end["month"][g] == pytest.approx(60.0 + 715.0)
    assert report.forecast.trend.method == "linear trend over 5 complete days"
    # 60 + 15 (6th) + 16 (7th) = 91; the 8th costs 17: 9 more are reached 9/17 into it.
    expected = ts("2024-03-08T00:00") + 9 / 17 * DAY
    assert report.forecast.crossing["month"][g] == pytest.approx(expected)


def test_the_year_forecast_is_never_below_the_month_forecast_in_december() -> None:
    # Dec 6 with a rising cost: the month's remaining days follow the line; the year ends
    # with the month, so its forecast is the same, never the lower flat extrapolation.
    data = growing(5, 10.0, 1.0, month="2024-12")
    settings = cost_settings(costPerUnit=1.0, globalBudget={"monthly": 100.0, "annual": 700.0})
    now = ts("2024-12-06T00:00")
    report = report_for(data, settings, now)
    g = report.scopes.global_row
    assert report.forecast.end["month"][g] == pytest.approx(60.0 + 715.0)
    assert report.forecast.end["year"][g] == pytest.approx(report.forecast.end["month"][g])
    # The yearly budget is reached when the month's line reaches it, not later.
    assert report.forecast.crossing["year"][g] == pytest.approx(
        now + _days_to(700.0 - 60.0, start=15.0) * DAY
    )
    # In March the year goes on after the month at the month's last predicted day, flat.
    march = report_for(growing(5, 10.0, 1.0), settings, ts("2024-03-06T00:00"))
    days_after_march = (ts("2025-01-01T00:00") - ts("2024-04-01T00:00")) / DAY
    assert march.forecast.end["year"][g] == pytest.approx(60.0 + 715.0 + 40.0 * days_after_march)
    assert (march.forecast.end["year"] >= march.forecast.end["month"]).all()


def _days_to(amount: float, *, start: float) -> float:
    """Days (fractional) until a daily cost of start, start + 1, ... adds up to `amount`."""
    total, day = 0.0, 0
    while total + start + day < amount:
        total += start + day
        day += 1
    return day + (amount - total) / (start + day)


def test_few_complete_days_use_their_mean_and_a_partial_day_is_scaled() -> None:
    settings = cost_settings(costPerUnit=1.0)
    two = report_for(growing(2, 10.0, 2.0), settings, ts("2024-03-03T00:00"))
    assert two.forecast.trend.method == "mean of 2 complete days"
    # 22 so far + 29 days (3rd..31st) at the mean 11.
    assert two.forecast.end["month"][0] == pytest.approx(22 + 29 * 11)
    # Six hours of a 4-per-day rate: 1 so far; the rest of the day at 4 per day adds 3.
    partial = usage({"t": {"samples": (4e6 / DAY, "2024-03-01T00:00", "2024-03-01T06:00")}},
                    "2024-03-01T00:00", "2024-03-01T06:00")  # fmt: skip
    one = report_for(partial, settings, ts("2024-03-01T06:00"))
    assert one.forecast.trend.method == "today's cost so far, scaled to a day"
    assert one.forecast.end["day"][0] == pytest.approx(4.0)


def test_days_without_data_are_estimated_in_the_forecast_but_not_in_spend() -> None:
    # Data only for March 4 and 5 (10 per day); March 1-3 unknown (before the optimizer).
    data = usage({"t": {"samples": (10e6 / DAY, "2024-03-04T00:00", "2024-03-06T00:00")}},
                 "2024-03-04T00:00", "2024-03-06T00:00")  # fmt: skip
    report = report_for(data, cost_settings(costPerUnit=1.0), ts("2024-03-06T00:00"))
    assert report.spent["month"][0] == pytest.approx(20.0)  # measured only
    assert report.coverage["month"] == pytest.approx(2 / 5)
    assert report.forecast.spent_estimate["month"][0] == pytest.approx(50.0)
    assert report.forecast.end["month"][0] == pytest.approx(310.0)  # 31 days x 10


# --- ledger ----------------------------------------------------------------------------------
def test_ledger_keeps_the_better_reading_of_a_day_and_round_trips_as_plain_data() -> None:
    full = usage({"t": {"samples": (1000.0, "2024-03-10T00:00", "2024-03-11T00:00")}},
                 "2024-03-10T00:00", "2024-03-11T00:00")  # fmt: skip
    half = usage({"t": {"samples": (9999.0, "2024-03-10T00:00", "2024-03-10T12:00")},
                  "u": {"samples": (1.0, "2024-03-10T00:00", "2024-03-10T12:00")}},
                 "2024-03-10T00:00", "2024-03-10T12:00")  # fmt: skip
    ledger = Ledger().merge(integrate_daily(full), collected_at=NOW)
    merged = ledger.merge(integrate_daily(half), collected_at=NOW + 60)
    totals = merged.totals("day", ts("2024-03-10T12:00"))
    assert merged.tenants == ("t", "u")
    assert totals.quantities["samples"].tolist() == pytest.approx([86.4e6, 0.0])  # full day kept
    assert merged.collected_at[0] == NOW + 60
    assert merged.is_complete(int(ts("2024-03-10T00:00") // DAY), settle=3600)
    again = Ledger.from_plain(merged.to_plain())
    assert again.to_plain() == merged.to_plain()


def test_ledger_rolls_old_days_into_months_and_asks_only_for_what_it_misses() -> None:
    data = usage({"t": {"samples": (1e6 / DAY, "2024-01-01T00:00", "2024-03-20T00:00")}},
                 "2024-01-01T00:00", "2024-03-20T00:00")  # fmt: skip
    now = ts("2024-03-20T00:00")
    ledger = Ledger().merge(integrate_daily(data), collected_at=now).prune(now)
    assert ledger.months == ("2024-01",)  # February is the previous month: kept as days
    assert ledger.totals("year", now).quantities["samples"][0] == pytest.approx(79e6)
    assert ledger.totals("month", now).quantities["samples"][0] == pytest.approx(19e6)
    assert ledger.collect_from(now + 3600, backfill_from=ts("2024-03-01T00:00"), settle=3600) == (
        now + 1
    )  # every past day complete: only today
    # A day no data exists for is read once after it ended, then left alone.
    empty = CostUsage(("t",), np.zeros(0), STEP, {"samples": np.zeros((1, 0))})
    start, soon, later = ts("2024-02-01T00:00"), ts("2024-02-02T00:30"), ts("2024-02-02T02:00")
    gaps = Ledger().merge(integrate_daily(empty), collected_at=soon, window=(start, soon))
    assert gaps.collect_from(soon, backfill_from=start, settle=3600) == start + 1  # late data?
    gaps = gaps.merge(integrate_daily(empty), collected_at=later, window=(start + 1, later))
    assert gaps.collect_from(later, backfill_from=start, settle=3600) == ts("2024-02-02T00:00") + 1


# --- thresholds ------------------------------------------------------------------------------
def step(state: dict[str, Any], spent: float, key: str = "2024-03", budget: float = 100.0):
    checks = [BudgetCheck("tenant:a", "month", key, spent, budget)]
    return evaluate_thresholds(state, checks, [50, 75, 90, 95, 100])


def test_thresholds_fire_once_per_period_and_resolve() -> None:
    state, events = step({}, 40)
    assert events == []
    state, events = step(state, 55)
    assert [(e.status, e.threshold) for e in events] == [("firing", 50)]
    state, events = step(state, 55)
    assert events == []  # once
    state, events = step(state, 96)
    assert [(e.status, e.threshold) for e in events] == [
        ("firing", 75),
        ("firing", 90),
        ("firing", 95),
    ]
    assert events[1].dedup_key == "budget:tenant:a:month:2024-03:90"
    # The budget is raised: back under 90 and 95 (resolved), still over 50.
    state, events = step(state, 96, budget=120.0)
    assert [(e.status, e.threshold, e.why) for e in events] == [
        ("resolved", 90, "back under"),
        ("resolved", 95, "back under"),
    ]
    state, events = step(state, 110, budget=120.0)
    assert events == []  # 90 already fired this period: not again
    # A new month: everything still active resolves, nothing fires at 10%.
    state, events = step(state, 10, key="2024-04")
    assert {(e.status, e.threshold, e.period_key, e.why) for e in events} == {
        ("resolved", 50, "2024-03", "period ended"),
        ("resolved", 75, "2024-03", "period ended"),
    }
    state, events = step(state, 60, key="2024-04")
    assert [(e.status, e.threshold) for e in events] == [("firing", 50)]  # once per period
    state, events = evaluate_thresholds(state, [], [50])
    assert [(e.status, e.why) for e in events] == [("resolved", "budget removed")]
    assert state == {}


# --- enforcement -----------------------------------------------------------------------------
APRIL_21 = ts("2024-04-21T00:00")  # 20 of April's 30 days gone


def april(rates: dict[str, float]) -> CostUsage:
    return usage(
        {t: {"samples": (r, "2024-04-01T00:00", "2024-04-21T00:00")} for t, r in rates.items()},
        "2024-04-01T00:00",
        "2024-04-21T00:00",
    )


def caps_for(data: CostUsage, now: float = APRIL_21, sticky=None, **values: Any):
    settings = cost_settings(prices={"perMillionSamples": 0.01}, **values)
    report = report_for(data, settings, now)
    decision = plan_caps(report, settings, sticky=sticky or {}, digits=2)
    return report, decision


def test_a_tenant_over_its_own_budget_is_capped_at_what_the_rest_allows() -> None:
    # 5,000 samples/s at 0.01 per million = 4.32 per day: 86.40 in 20 days, 129.60 forecast.
    # 13.60 left for 10 days = 1.36 per day = 1,574 samples/s, rounded down to 1,500.
    report, decision = caps_for(
        april({"dev": 5000.0, "prod": 5000.0}),
        tenantBudgets={"dev": {"monthly": 100.0, "enforceBudget": True}},
    )
    assert report.spent["month"][0] == pytest.approx(86.4)
    assert report.forecast.end["month"][0] == pytest.approx(129.6)
    (cap,) = decision.caps
    assert (cap.tenant, cap.limit, cap.value, cap.at_floor) == (
        "dev",
        "ingestion_rate",
        1500,
        False,
    )
    assert cap.allowed_per_day == pytest.approx(1.36)
    assert "monthly budget of 100.00 USD" in cap.reason and "capped at 1,500" in cap.reason


def test_a_cap_never_goes_below_the_floor() -> None:
    _, decision = caps_for(
        april({"dev": 5000.0}),
        tenantBudgets={"dev": {"monthly": 100.0, "enforceBudget": True,
                               "floors": {"ingestion_rate": 2000}}},
    )  # fmt: skip
    (cap,) = decision.caps
    assert (cap.value, cap.floor, cap.at_floor) == (2000, 2000, True)
    over = {"dev": {"monthly": 50.0, "enforceBudget": True}}
    _, spent = caps_for(april({"dev": 5000.0}), tenantBudgets=over)
    assert spent.caps[0].value == 1000  # nothing left: the default floor


def test_monitor_only_tenants_are_never_capped_hybrid_mode() -> None:
    # The seed's hybrid example: global monitor-only, `critical` monitor, `dev` enforced.
    # Each 4.32 per day. Global 200 per month: 172.80 spent, 259.20 forecast; 27.20 left for
    # 10 days is 2.72 per day, less than critical alone keeps spending: dev gets its floor.
    _, decision = caps_for(
        april({"critical": 5000.0, "dev": 5000.0}),
        globalBudget={"monthly": 200.0, "enforceBudget": False},
        tenantBudgets={"critical": {"enforceBudget": False}, "dev": {"enforceBudget": True}},
    )
    assert [(c.tenant, c.value, c.scope) for c in decision.caps] == [("dev", 1000, "global")]
    _, none = caps_for(april({"critical": 5000.0, "dev": 5000.0}),
                       globalBudget={"monthly": 200.0})  # fmt: skip
    assert none.caps == ()  # everyone monitor-only (the default)


def test_shared_budgets_cap_the_biggest_spenders_first() -> None:
    assert water_level(np.array([1.0, 2.0, 10.0]), 7.0) == pytest.approx(4.0)
    assert water_level(np.array([1.0, 2.0]), 7.0) == math.inf
    assert water_level(np.array([1.0, 2.0]), 0.0) == 0.0
    # Team of three enforced tenants; 10,000 / 1,000 / 500 samples/s = 8.64 / 0.864 / 0.432
    # per day. Team budget 250: 198.72 spent, 298.08 forecast, 51.28 left = 5.128 per day.
    # Water level: 0.432 + 0.864 + L = 5.128 -> L = 3.832 per day = 4,435 samples/s.
    _, decision = caps_for(
        april({"big": 10000.0, "mid": 1000.0, "small": 500.0}),
        teams={"*": "team"},
        teamBudgets={"team": {"monthly": 250.0, "enforceBudget": True}},
    )
    caps = {c.tenant: c for c in decision.caps}
    assert caps["big"].value == 4400 and caps["big"].allowed_per_day == pytest.approx(3.832)
    # The small ones get the same (far higher) allowance: caps they are well below.
    assert caps["mid"].value == 4400 and caps["small"].value == 4400
    assert set(decision.sticky) == {"team:team|month"}


def test_an_enforced_budget_stays_enforced_for_its_period() -> None:
    data = april({"dev": 1000.0})  # 0.864 per day: within a 100 budget
    values = {"tenantBudgets": {"dev": {"monthly": 100.0, "enforceBudget": True}}}
    _, calm = caps_for(data, **values)
    assert calm.caps == ()
    held = StickyScope("tenant:dev", "month", "2024-04", 100.0, 1.0 / DAY)
    _, sticky = caps_for(data, sticky={held.key: held}, **values)
    assert [c.tenant for c in sticky.caps] == ["dev"]  # still enforced (recomputed level)
    _, may = caps_for(data, now=ts("2024-05-01T01:00"), sticky={held.key: held}, **values)
    assert may.caps == ()  # a new period: released


def test_round_down_keeps_significant_digits() -> None:
    assert round_down(1574.07, 2) == 1500
    assert round_down(12345, 3) == 12300
    assert round_down(0.0, 2) == 0.0


# --- the plan: caps only tighten -------------------------------------------------------------
def recs_with(current: dict[str, float], limit: str = "ingestion_rate") -> Recommendations:
    spec = CATALOGUE.limits[limit]
    tenants = tuple(current)
    n = len(tenants)
    values = np.array(list(current.values()), dtype=float)
    nan = np.full(n, np.nan)
    result = LimitResult(
        spec=spec, current=values, recommended=values.copy(), status=np.ones(n, dtype=np.int8),
        demand=nan, p50=nan, p95=nan, p99=nan, maximum=nan, confidence=np.ones(n),
        flags=np.zeros(n, dtype=np.int64), undefined_reason=[None] * n, buffer_percent=nan,
        spike_count=np.zeros(n, dtype=np.int64), spike_ratio=nan, discard_share=nan,
        parent_value=nan,
    )  # fmt: skip
    return Recommendations(tenants, {limit: result}, (0.0, 1.0), 1.0)


def cap(tenant: str, value: float, limit: str = "ingestion_rate") -> Cap:
    return Cap(tenant, limit, value, 1000.0, False, f"tenant:{tenant}", "month", 1.0, 1.0, 2.0,
               1.0, "budget")  # fmt: skip


def test_caps_lower_raises_and_add_changes_but_never_raise() -> None:
    recs = recs_with({"a": 10000.0, "b": 10000.0, "c": 10000.0, "d": 500.0, "e": 8000.0})
    plan = Plan((
        Change("a", "ingestion_rate", 10000.0, 20000.0, ("throttled",)),  # raise, capped
        Change("b", "ingestion_rate", 10000.0, 9000.0, ("lower",)),  # already below the cap
        Change("e", "ingestion_rate", 8000.0, 12000.0, ("raise",)),  # raise limited
    ))  # fmt: skip
    caps = (cap("a", 5000.0), cap("b", 9500.0), cap("c", 3000.0), cap("d", 1000.0),
            cap("e", 9000.0), cap("zz", 10.0))  # fmt: skip
    guarded, outcomes = apply_caps(plan, recs, caps)
    got = {(c.tenant, c.old, c.new) for c in guarded.changes}
    assert got == {
        ("a", 10000.0, 5000.0),
        ("b", 10000.0, 9000.0),
        ("c", 10000.0, 3000.0),  # no change planned: one is added
        ("e", 8000.0, 9000.0),  # still a raise, but only to the cap
    }
    notes = {o.cap.tenant: o.note for o in outcomes}
    assert notes == {"a": "capped", "b": "already within", "c": "capped", "d": "already within",
                     "e": "raise limited", "zz": "not managed"}  # fmt: skip
    assert "budget" in next(c for c in guarded.changes if c.tenant == "a").reasons


def test_a_cap_equal_to_the_current_value_drops_the_raise() -> None:
    recs = recs_with({"a": 5000.0})
    plan = Plan((Change("a", "ingestion_rate", 5000.0, 8000.0, ()),))
    guarded, outcomes = apply_caps(plan, recs, (cap("a", 5000.0),))
    assert guarded.changes == () and outcomes[0].note == "kept at the cap"


def test_unlimited_series_are_capped_from_zero() -> None:
    recs = recs_with({"a": 0.0}, limit="max_global_series_per_user")
    guarded, _ = apply_caps(Plan(()), recs, (cap("a", 20000.0, "max_global_series_per_user"),))
    assert [(c.old, c.new) for c in guarded.changes] == [(0.0, 20000.0)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d"]),
            st.floats(100, 1e6),
            st.floats(100, 1e6),
            st.one_of(st.none(), st.floats(100, 1e6)),
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda x: x[0],
    )
)
def test_caps_only_ever_tighten(rows: list[tuple[str, float, float, float | None]]) -> None:
    current = {t: cur for t, cur, _, _ in rows}
    recs = recs_with(current)
    plan = Plan(tuple(Change(t, "ingestion_rate", cur, new, ()) for t, cur, new, _ in rows
                      if new != cur))  # fmt: skip
    caps = tuple(cap(t, value) for t, _, _, value in rows if value is not None)
    guarded, _ = apply_caps(plan, recs, caps)
    planned = {c.tenant: c.new for c in plan.changes}
    for change in guarded.changes:
        ceiling = planned.get(change.tenant, current[change.tenant])
        assert change.new <= ceiling  # never above what the plan (or the current value) said
        assert change.old == current[change.tenant]
        limit = next((c.value for c in caps if c.tenant == change.tenant), math.inf)
        assert change.new <= max(limit, change.new if change.tenant in planned else -1)
    # A tenant without a cap keeps exactly its planned change.
    for change in plan.changes:
        if change.tenant not in {c.tenant for c in caps}:
            assert change in guarded.changes


def test_a_cap_never_goes_below_the_limits_own_minimum() -> None:
    recs = recs_with({"a": 10000.0})
    recs.results["ingestion_rate"].minimum = 4000.0  # limitOverrides.ingestion_rate.minValue
    guarded, outcomes = apply_caps(Plan(()), recs, (cap("a", 1500.0),))
    assert [c.new for c in guarded.changes] == [4000.0]
    assert outcomes[0].cap.at_floor and "minimum 4,000" in outcomes[0].cap.reason


# --- settings from files ---------------------------------------------------------------------
def load_text(tmp_path: Any, text: str) -> Any:
    from mimir_limit_optimizer.config.loader import load_config

    path = tmp_path / "mlo.yaml"
    path.write_text(text)
    return load_config(path, env={}, cli={}, catalogue=CATALOGUE)


def test_the_seed_cost_examples_load_and_mean_what_they_say(tmp_path: Any) -> None:
    from mimir_limit_optimizer.engine.cost.scopes import build_scopes, enforce_mask

    # The seed's "Hybrid Mode" example, correctly indented.
    hybrid = load_text(
        tmp_path,
        "costControl:\n  enabled: true\n  autoLimitReduction: true\n  globalBudget:\n"
        "    enforceBudget: false\n  tenantBudgets:\n    critical-service:\n"
        "      enforceBudget: false\n    development:\n      enforceBudget: true\n",
    )
    assert hybrid.warnings == ()  # used, not "accepted, not used"
    settings = hybrid.config.cost_control
    scopes = build_scopes(("critical-service", "development", "other"), settings)
    assert enforce_mask(settings, scopes).tolist() == [False, True, False]
    # The seed's big example and its Helm values.
    seed = load_text(
        tmp_path,
        "costControl:\n  enabled: true\n  costMethod: composite\n  costPerUnit: 0.001\n"
        "  globalBudget: {daily: 1000, monthly: 30000, annual: 365000, currency: USD,"
        " enforceBudget: false}\n  alertThresholds: [95, 50, 75, 90]\n"
        "  autoLimitReduction: false\n  budgetAlerts: true\n  costOptimization: true\n"
        "  perTenantBudgets: {enabled: true, enforceBudget: true}\n",
    ).config.cost_control
    assert seed.alert_thresholds == [50, 75, 90, 95]
    assert seed.global_budget.amounts() == {"day": 1000, "month": 30000, "year": 365000}
    helm = load_text(tmp_path, "costControl:\n  globalBudget: {enabled: true, amount: 50000}\n")
    assert helm.config.cost_control.global_budget.amounts()["month"] == 50000


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("costControl:\n  teamBudgets:\n    ml: {monthly: 10}\n", "costControl.teamBudgets",
         "no `costControl.teams` glob maps"),
        ("costControl:\n  globalBudget: {monthly: 1, amount: 2}\n", "costControl.globalBudget",
         "set only one of them"),
        ("costControl:\n  floors: {request_rate: 5}\n", "costControl.floors",
         "not request_rate"),
        ("costControl:\n  costMethod: tokens\n", "costControl.costMethod", "composite"),
    ],
)  # fmt: skip
def test_cost_settings_errors_name_the_key(
    tmp_path: Any, text: str, key: str, problem: str
) -> None:
    from mimir_limit_optimizer.config.loader import ConfigError

    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert key in str(info.value) and problem in str(info.value)


def test_lowering_advice_never_goes_below_what_the_engine_would_recommend() -> None:
    """The advice's target is where the engine is heading: its value without the maximum
    step per cycle, with all its floors (here the last day's higher level), never the bare
    demand plus buffer below them."""
    from mimir_limit_optimizer.config.loader import load_config
    from mimir_limit_optimizer.engine.cost.advice import limit_advice
    from mimir_limit_optimizer.engine.recommend import recommend
    from mimir_limit_optimizer.engine.usage import Observation

    points = 7 * 288
    level = np.full((1, points), 1000.0)
    level[0, -24:] = 3000.0  # the last 2 h run higher: the last day's p95, not the week's
    grid = ts("2024-03-01T00:00") + STEP * np.arange(points)
    obs = Observation(
        tenants=("t",),
        timestamps=grid,
        step=STEP,
        usage={"ingestion_rate": level},
        current={"ingestion_rate": np.array([200000.0])},
    )
    now = float(grid[-1])

    def config(**change: float) -> Any:
        cli = {f"changePolicy.{k}": v for k, v in change.items()}
        return load_config(None, env={}, cli=cli, catalogue=CATALOGUE).config

    stepped = recommend(obs, config(), CATALOGUE, now=now, limits=["ingestion_rate"])
    free = recommend(
        obs, config(maxDecreasePercent=100.0), CATALOGUE, now=now, limits=["ingestion_rate"]
    )
    engine_target = float(free.results["ingestion_rate"].recommended[0])
    this_cycle = float(stepped.results["ingestion_rate"].recommended[0])
    assert engine_target < this_cycle  # the step limit held the lowering back

    price = PriceModel.from_settings(cost_settings(costPerUnit=0.001))
    advice = limit_advice(stepped, price, "USD")
    assert len(advice) == 1
    target = advice[0].target
    assert target is not None
    # Rounding to readable numbers aside (2 significant digits), the same value.
    assert engine_target * 0.95 <= target <= this_cycle
    assert target >= 3000.0  # above the last day's level, not the week's 1000 + buffer
