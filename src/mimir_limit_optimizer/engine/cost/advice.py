"""Cost recommendations, each with its numbers:
- `lower_limit`: a tenant's limit sits well above its usage and the optimizer recommends a
  lower value; lowering it lowers the most the tenant can spend on that signal by
  (current - recommended) x unit price per 30-day month (what a runaway could cost, not what
  the tenant spends today);
- `budget_crossing`: at its current trend a scope (tenant, team, global) reaches a budget
  before the period ends, at the time given (or already has).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

import numpy as np

from mimir_limit_optimizer.catalogue.units import format_number
from mimir_limit_optimizer.engine.cost.forecast import Forecast
from mimir_limit_optimizer.engine.cost.model import ENFORCED_BY, PriceModel
from mimir_limit_optimizer.engine.cost.periods import MONTH_30, PERIODS, PeriodKind
from mimir_limit_optimizer.engine.cost.scopes import Scopes
from mimir_limit_optimizer.engine.results import CHANGE, LimitResult, Reason, Recommendations
from mimir_limit_optimizer.engine.usage import FloatArray

_BUDGET = MappingProxyType({"day": "daily", "month": "monthly", "year": "annual"})


@dataclass(frozen=True)
class CostRecommendation:
    kind: str  # "lower_limit" | "budget_crossing"
    scope: str  # "tenant:<id>", "team:<name>", "global"
    text: str
    limit: str | None = None
    current: float | None = None
    target: float | None = None
    unused_share: float | None = None  # of the current limit, 0..1
    monthly_saving: float | None = None  # currency per 30-day month
    period: PeriodKind | None = None
    budget: float | None = None
    forecast: float | None = None
    crossing_at: float | None = None  # unix seconds

    @property
    def key(self) -> str:
        """Identity across cycles (for counting new recommendations)."""
        return f"{self.kind}:{self.scope}:{self.limit or self.period}"


def limit_advice(
    recs: Recommendations, price: PriceModel, currency: str
) -> list[CostRecommendation]:
    """`lower_limit` for each priced, enforceable signal's limit the engine lowers."""
    out: list[CostRecommendation] = []
    for signal, limit in ENFORCED_BY.items():
        result = recs.results.get(limit)
        if result is None or signal not in price.priced:
            continue
        per_unit_month = price.rate_price(signal) * MONTH_30
        current, recommended, p95 = result.current, result.recommended, result.p95
        lower = (
            (result.status == CHANGE)
            & np.isfinite(recommended)
            & (recommended < current)
            & (current > 0)
        )
        goal = _goal(result)
        for i in np.flatnonzero(lower).tolist():
            cur, new = float(current[i]), float(goal[i])
            steps = new < float(recommended[i])
            saving = (cur - new) * per_unit_month
            used = float(p95[i]) if np.isfinite(p95[i]) else math.nan
            unused = 1.0 - used / cur if math.isfinite(used) else None
            unit = result.spec.unit
            usage_text = (
                f"p95 usage {format_number(used, unit)}, {unused:.0%} of the limit unused; "
                if unused is not None
                else ""
            )
            pace = (
                f"; the optimizer gets there in steps, {format_number(float(recommended[i]), unit)}"
                " this cycle"
                if steps
                else ""
            )
            out.append(
                CostRecommendation(
                    "lower_limit",
                    f"tenant:{recs.tenants[i]}",
                    f"{recs.tenants[i]}: lower {limit} from {format_number(cur, unit)} to "
                    f"{format_number(new, unit)} ({usage_text}the most it can spend on "
                    f"{signal} falls by {saving:,.2f} {currency} per month{pace})",
                    limit=limit,
                    current=cur,
                    target=new,
                    unused_share=unused,
                    monthly_saving=saving,
                )
            )
    out.sort(key=lambda r: -(r.monthly_saving or 0.0))
    return out


def _goal(result: LimitResult) -> FloatArray:
    """Where the engine is heading: its recommendation, or, where only the maximum step per
    cycle held it back, the engine's own value before that step limit (with every floor it
    applies: recent level, throttling, tiers, min/max). Never below what the engine would
    recommend, never above this cycle's recommendation."""
    stepped = (result.flags & int(Reason.LOWER_LIMITED)) != 0
    unstepped = result.extra.get("unstepped")
    if unstepped is None:
        return np.asarray(result.recommended, dtype=np.float64)
    target = np.asarray(unstepped, dtype=np.float64)
    goal = np.where(stepped & np.isfinite(target), target, result.recommended)
    return np.asarray(np.minimum(goal, result.recommended), dtype=np.float64)


def crossing_advice(
    scopes: Scopes,
    budgets: Mapping[PeriodKind, FloatArray],
    spent: Mapping[PeriodKind, FloatArray],
    forecast: Forecast,
    currency: str,
) -> list[CostRecommendation]:
    """`budget_crossing` for every scope and period whose budget is reached this period."""
    out: list[CostRecommendation] = []
    keys = scopes.keys()
    for kind in PERIODS:
        when = forecast.crossing[kind]
        for row in np.flatnonzero(np.isfinite(when)).tolist():
            scope = keys[row]
            who = {"tenant": "tenant ", "team": "team ", "global": ""}[scopes.kind(row)]
            name = "the cluster" if scope == "global" else f"{who}{scopes.name(row)}"
            budget = float(budgets[kind][row])
            end = float(forecast.end[kind][row])
            at = float(when[row])
            already = spent[kind][row] >= budget
            stamp = datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
            verb = "has reached" if already else f"will reach, on {stamp},"
            out.append(
                CostRecommendation(
                    "budget_crossing",
                    scope,
                    f"{name} {verb} its {_BUDGET[kind]} budget of {budget:,.2f} {currency} "
                    f"(forecast {end:,.2f} {currency} by the end of the {kind}; "
                    f"{forecast.trend.method})",
                    period=kind,
                    budget=budget,
                    forecast=end,
                    crossing_at=at,
                )
            )
    out.sort(key=lambda r: r.crossing_at or 0.0)
    return out
