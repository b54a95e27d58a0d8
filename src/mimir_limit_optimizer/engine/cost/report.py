"""Everything known about cost at `now`, from the ledger and the settings: spend per tenant,
team and cluster for today, the month and the year, budgets and their usage, the forecast,
and (on request) budget caps and recommendations. Pure: time is passed in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mimir_limit_optimizer.config.cost import CostControlSettings
from mimir_limit_optimizer.engine.cost.advice import (
    CostRecommendation,
    crossing_advice,
    limit_advice,
)
from mimir_limit_optimizer.engine.cost.enforce import CapDecision, StickyScope, compute_caps
from mimir_limit_optimizer.engine.cost.forecast import Forecast, fit_trend, forecast
from mimir_limit_optimizer.engine.cost.ledger import Ledger
from mimir_limit_optimizer.engine.cost.model import ENFORCED_BY, PriceModel
from mimir_limit_optimizer.engine.cost.periods import (
    DAY,
    PERIODS,
    PeriodKind,
    days_of,
    period_bounds,
    period_key,
)
from mimir_limit_optimizer.engine.cost.scopes import (
    BoolArray,
    Scopes,
    budget_rows,
    build_scopes,
    enforce_mask,
    floor_values,
)
from mimir_limit_optimizer.engine.cost.usage import CostUsage, IntArray, recent_rates
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.engine.usage import FloatArray


@dataclass(frozen=True)
class CostReport:
    now: float
    currency: str
    price: PriceModel
    scopes: Scopes
    period_keys: dict[PeriodKind, str]
    spent: dict[PeriodKind, FloatArray]  # (R,) measured so far in the period
    coverage: dict[PeriodKind, float]  # share of the elapsed period with data, 0..1
    budgets: dict[PeriodKind, FloatArray]  # (R,) NaN: no budget
    usage_ratio: dict[PeriodKind, FloatArray]  # (R,) spent / budget, NaN: no budget
    forecast: Forecast
    quantities: dict[str, FloatArray]  # (N,) month to date, in QUANTITY_UNITS
    month_days: IntArray  # (D,) days of the month so far held by the ledger
    month_daily: FloatArray  # (R, D) their cost
    month_coverage: FloatArray  # (D,) share of each of those days with data
    enforce: BoolArray  # (N,) tenants in enforce mode
    usage_rates: dict[str, FloatArray]  # (N,) latest rates per signal
    missing: dict[str, str]  # priced signal -> why its cost is missing or partial

    @property
    def method(self) -> str:
        return self.price.method


def build_report(
    ledger: Ledger,
    settings: CostControlSettings,
    now: float,
    *,
    latest: CostUsage | None = None,
) -> CostReport:
    """`latest`: the newest collection, for current rates (enforcement) and the reasons of
    signals it could not collect."""
    price = PriceModel.from_settings(settings)
    scopes = build_scopes(ledger.tenants, settings)
    currency = settings.global_budget.currency
    spent: dict[PeriodKind, FloatArray] = {}
    coverage: dict[PeriodKind, float] = {}
    missing: dict[str, str] = {}
    reasons = dict(latest.unavailable) if latest is not None else {}
    quantities: dict[str, FloatArray] = {}
    for kind in PERIODS:
        totals = ledger.totals(kind, now)
        spent[kind] = (
            scopes.rows(price.cost(totals.quantities))
            if ledger.tenants
            else (np.zeros(scopes.size))
        )
        start, _ = period_bounds(kind, now)
        coverage[kind] = min(1.0, totals.coverage / max(now - start, 1.0))
        if kind == "month":
            quantities = totals.quantities
        for signal in price.priced:
            if signal in totals.missing or signal not in totals.quantities:
                missing.setdefault(signal, reasons.get(signal, f"{signal} was not collected"))
    daily_tenants = (
        price.cost(ledger.quantities)
        if ledger.quantities
        else (np.zeros((len(ledger.tenants), len(ledger.days))))
    )
    daily = scopes.rows(daily_tenants)
    budgets = budget_rows(settings, scopes)
    trend = fit_trend(daily, ledger.days, ledger.coverage, now, fit_days=settings.forecast_days)
    predicted = forecast(
        trend,
        spent=spent,
        days=ledger.days,
        day_coverage=ledger.coverage,
        budgets=budgets,
        now=now,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = {
            kind: np.where(
                budgets[kind] > 0,
                spent[kind] / budgets[kind],
                np.where(
                    np.isfinite(budgets[kind]), np.where(spent[kind] > 0, np.inf, 0.0), np.nan
                ),
            )
            for kind in PERIODS
        }
    in_month = np.isin(ledger.days, np.fromiter(days_of("month", now), dtype=np.int64))
    usage_rates = _aligned_rates(latest, ledger.tenants)
    return CostReport(
        now=now,
        currency=currency,
        price=price,
        scopes=scopes,
        period_keys={kind: period_key(kind, now) for kind in PERIODS},
        spent=spent,
        coverage=coverage,
        budgets=budgets,
        usage_ratio=ratio,
        forecast=predicted,
        quantities=quantities,
        month_days=ledger.days[in_month],
        month_daily=daily[:, in_month],
        month_coverage=ledger.coverage[in_month] / DAY,
        enforce=enforce_mask(settings, scopes),
        usage_rates=usage_rates,
        missing=missing,
    )


def _aligned_rates(latest: CostUsage | None, tenants: tuple[str, ...]) -> dict[str, FloatArray]:
    if latest is None:
        return {}
    rates = recent_rates(latest)
    position = {t: i for i, t in enumerate(latest.tenants)}
    rows = np.array([position.get(t, -1) for t in tenants], dtype=np.int64)
    known = rows >= 0
    out: dict[str, FloatArray] = {}
    for signal, values in rates.items():
        aligned = np.zeros(len(tenants))
        aligned[known] = values[rows[known]]
        out[signal] = aligned
    return out


def plan_caps(
    report: CostReport,
    settings: CostControlSettings,
    *,
    sticky: Mapping[str, StickyScope],
    digits: int,
) -> CapDecision:
    """The caps budget enforcement asks for (whether they may be applied is the caller's
    decision: prod mode and autoLimitReduction)."""
    floors = {limit: floor_values(settings, report.scopes, limit) for limit in ENFORCED_BY.values()}
    return compute_caps(
        scopes=report.scopes,
        budgets=report.budgets,
        forecast=report.forecast,
        enforce=report.enforce,
        cost_rates=report.price.cost_rates(report.usage_rates),
        usage_rates=report.usage_rates,
        floors=floors,
        price=report.price,
        sticky=sticky,
        now=report.now,
        digits=digits,
        currency=report.currency,
    )


def recommendations(report: CostReport, recs: Recommendations | None) -> list[CostRecommendation]:
    """Budget crossings first (soonest first), then limits to lower (largest saving first)."""
    out = crossing_advice(
        report.scopes, report.budgets, report.spent, report.forecast, report.currency
    )
    if recs is not None:
        out.extend(limit_advice(recs, report.price, report.currency))
    return out
