"""Budget enforcement: which tenants' limits to cap, at what value, and the plan that results.

A budget (tenant, team or global; day, month or year) is AT RISK when its forecast spend at
the end of the period exceeds it. Its remaining budget over the rest of the period is an
allowed spend per second:
- a tenant's own budget: that allowance is the tenant's;
- a team's or the global budget: tenants in monitor-only mode keep their forecast spend; the
  rest of the allowance is shared by the enforce-mode members by water-filling (the biggest
  forecast spenders are capped to one common level, small tenants are not touched).
A tenant's allowance is the lowest of the budgets it is under. It becomes limits through the
tenant's current mix of spend: the spend on signals no limit bounds (queries) is taken off,
and every enforceable signal (samples -> ingestion_rate, series -> max_global_series_per_user)
is capped in proportion, rounded DOWN, never below the floor.

Every enforce-mode member of an at-risk budget gets that allowance: a limit already below the
cap it implies is left alone (tenants spending far less than the common level are not
touched). A budget once at risk stays enforced until its period ends or the budget changes
(sticky): otherwise a cap would bring the forecast under budget, be lifted, and the spend would
climb back. Its level is recomputed every cycle; when the caps make everything fit (no finite
water level), the level it had is kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from mimir_limit_optimizer.engine.cost.forecast import Forecast
from mimir_limit_optimizer.engine.cost.model import ENFORCED_BY, PriceModel
from mimir_limit_optimizer.engine.cost.periods import (
    DAY,
    PERIODS,
    PeriodKind,
    period_bounds,
    period_key,
)
from mimir_limit_optimizer.engine.cost.scopes import BoolArray, Scopes
from mimir_limit_optimizer.engine.plan import Change, Plan
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.engine.usage import FloatArray

_RATE_UNIT = MappingProxyType({"samples": "samples/s", "series": "series"})


@dataclass(frozen=True)
class StickyScope:
    """A budget enforced during its period (plain data: checkpointed)."""

    scope: str
    period: PeriodKind
    period_key: str
    budget: float
    level: float  # allowed spend per second per enforced tenant (inf: no common level)

    @property
    def key(self) -> str:
        return f"{self.scope}|{self.period}"


@dataclass(frozen=True)
class Cap:
    tenant: str
    limit: str
    value: float  # the capped limit, >= floor
    floor: float
    at_floor: bool
    scope: str  # the budget that decided: "tenant:<id>", "team:<name>", "global"
    period: PeriodKind
    budget: float
    spent: float
    forecast: float
    allowed_per_day: float  # the tenant's allowance, currency per day
    reason: str


@dataclass(frozen=True)
class CapDecision:
    caps: tuple[Cap, ...]
    sticky: dict[str, StickyScope]


def round_down(value: float, digits: int) -> float:
    """`value` rounded down to `digits` significant digits (12,345 -> 12,000 with 2)."""
    if not math.isfinite(value) or value <= 0:
        return 0.0
    exponent = math.floor(math.log10(value)) - digits + 1
    factor = 10.0**exponent
    return math.floor(value / factor + 1e-9) * factor


def water_level(rates: FloatArray, pool: float) -> float:
    """The level L with sum(min(rates, L)) == pool (inf when everything fits; 0 when the
    pool is empty)."""
    if pool <= 0:
        return 0.0
    ordered = np.sort(rates)
    if ordered.sum() <= pool:
        return math.inf
    below = 0.0
    k = len(ordered)
    for j, value in enumerate(ordered.tolist()):
        level = (pool - below) / (k - j)
        if level <= value:
            return level
        below += value
    return math.inf


def compute_caps(
    *,
    scopes: Scopes,
    budgets: Mapping[PeriodKind, FloatArray],
    forecast: Forecast,
    enforce: BoolArray,
    cost_rates: Mapping[str, FloatArray],
    usage_rates: Mapping[str, FloatArray],
    floors: Mapping[str, FloatArray],
    price: PriceModel,
    sticky: Mapping[str, StickyScope],
    now: float,
    digits: int,
    currency: str,
) -> CapDecision:
    """Caps for enforce-mode tenants under at-risk budgets. `cost_rates`/`usage_rates`:
    current per-tenant rates per signal; `floors[limit]`: (N,) floor per tenant."""
    n = len(scopes.tenants)
    allowance = np.full(n, np.inf)  # currency per second
    decided_by: list[tuple[int, PeriodKind] | None] = [None] * n
    new_sticky: dict[str, StickyScope] = {}
    keys = scopes.keys()
    for kind in PERIODS:
        _, end = period_bounds(kind, now)
        left = end - now
        if left <= 0:
            continue
        pkey = period_key(kind, now)
        budget = budgets[kind]
        for row in np.flatnonzero(np.isfinite(budget)).tolist():
            key = f"{keys[row]}|{kind}"
            held = sticky.get(key)
            if held is not None and (held.period_key != pkey or held.budget != budget[row]):
                held = None  # a new period or a changed budget: start over
            at_risk = bool(forecast.end[kind][row] > budget[row])
            if not at_risk and held is None:
                continue
            remaining = max(float(budget[row] - forecast.spent_estimate[kind][row]), 0.0)
            allowed = remaining / left
            members = scopes.members(row)
            enforced = members & enforce
            if scopes.kind(row) == "tenant":
                level = allowed
            else:
                projected = forecast.rest_rate[kind][:n]
                monitored = float(projected[members & ~enforce].sum())
                level = water_level(projected[enforced], allowed - monitored)
            if not math.isfinite(level):
                if held is None:
                    continue  # the forecast overrun is not the enforce-mode tenants' doing
                level = held.level
            new_sticky[key] = StickyScope(keys[row], kind, pkey, float(budget[row]), level)
            for i in np.flatnonzero(enforced & (allowance > level)).tolist():
                allowance[i] = level
                decided_by[i] = (row, kind)

    caps: list[Cap] = []
    enforceable = [s for s in price.priced if s in ENFORCED_BY]
    other = [s for s in price.priced if s not in ENFORCED_BY]
    for i in np.flatnonzero(np.isfinite(allowance)).tolist():
        decided = decided_by[i]
        assert decided is not None
        row, kind = decided
        spend_enforceable = sum(float(cost_rates[s][i]) for s in enforceable if s in cost_rates)
        if spend_enforceable <= 0:
            continue  # nothing a limit bounds is spent: no cap can help
        spend_other = sum(float(cost_rates[s][i]) for s in other if s in cost_rates)
        factor = max(float(allowance[i]) - spend_other, 0.0) / spend_enforceable
        for signal in enforceable:
            usage = float(usage_rates.get(signal, np.zeros(n))[i])
            if usage <= 0:
                continue
            limit = ENFORCED_BY[signal]
            floor = float(floors[limit][i]) if limit in floors else 0.0
            raw = round_down(factor * usage, digits)
            value = max(raw, floor)
            if signal == "series":
                value = float(math.ceil(value)) if value == floor else float(math.floor(value))
            caps.append(
                Cap(
                    tenant=scopes.tenants[i],
                    limit=limit,
                    value=value,
                    floor=floor,
                    at_floor=raw <= floor,
                    scope=keys[row],
                    period=kind,
                    budget=float(budgets[kind][row]),
                    spent=float(forecast.spent_estimate[kind][row]),
                    forecast=float(forecast.end[kind][row]),
                    allowed_per_day=float(allowance[i]) * DAY,
                    reason="",
                )
            )
    caps = [replace(c, reason=_reason(c, currency)) for c in caps]
    return CapDecision(tuple(caps), new_sticky)


def _reason(cap: Cap, currency: str) -> str:
    budget_name = {"day": "daily", "month": "monthly", "year": "annual"}[cap.period]
    whose = (
        "its own"
        if cap.scope == f"tenant:{cap.tenant}"
        else (
            "the global" if cap.scope == "global" else f"team {cap.scope.removeprefix('team:')}'s"
        )
    )
    signal = next(s for s, limit in ENFORCED_BY.items() if limit == cap.limit)
    floor = " (its floor: the budget alone would allow less)" if cap.at_floor else ""
    return (
        f"budget: {whose} {budget_name} budget of {cap.budget:,.2f} {currency} is forecast to "
        f"be exceeded ({cap.forecast:,.2f}); {max(cap.budget - cap.spent, 0):,.2f} left allows "
        f"this tenant {cap.allowed_per_day:,.2f} {currency}/day: {cap.limit} capped at "
        f"{cap.value:,.0f} {_RATE_UNIT[signal]}{floor}"
    )


@dataclass(frozen=True)
class CapOutcome:
    cap: Cap
    old: float  # the limit in force (NaN when unknown)
    planned: float | None  # the plan's new value before the cap, None: no change planned
    new: float | None  # the value the guarded plan sets, None: nothing to do
    note: str  # "capped", "raise limited", "already within", "not managed", "current unknown"


def _at_least_minimum(cap: Cap, recs: Recommendations) -> Cap:
    """A cap never goes below the limit's own minimum (limitOverrides/minLimits/catalogue)."""
    result = recs.results.get(cap.limit)
    if result is None or cap.value >= result.minimum:
        return cap
    value = float(math.ceil(result.minimum))
    reason = f"{cap.reason}; kept at {cap.limit}'s minimum {value:,.0f}"
    return replace(cap, value=value, floor=max(cap.floor, value), at_floor=True, reason=reason)


def apply_caps(
    plan: Plan, recs: Recommendations, caps: tuple[Cap, ...]
) -> tuple[Plan, list[CapOutcome]]:
    """The plan with every cap applied; only ever tightens: a planned change above its cap is
    lowered to it (dropped when that is the current value), and a limit above its cap with no
    change planned gets a change down to it. Limits the optimizer does not manage are left
    alone, as are tenants whose current value is unknown."""
    caps = tuple(_at_least_minimum(c, recs) for c in caps)
    by_key = {(c.tenant, c.limit): c for c in caps}
    index = {t: i for i, t in enumerate(recs.tenants)}
    outcomes: list[CapOutcome] = []
    changes: list[Change] = []
    planned_keys: set[tuple[str, str]] = set()
    for change in plan.changes:
        key = (change.tenant, change.limit)
        cap = by_key.get(key)
        if cap is None:
            changes.append(change)
            continue
        planned_keys.add(key)
        if change.new <= cap.value:
            changes.append(change)
            outcomes.append(CapOutcome(cap, change.old, change.new, change.new, "already within"))
            continue
        new = cap.value
        if new == change.old:
            outcomes.append(CapOutcome(cap, change.old, change.new, None, "kept at the cap"))
            continue
        note = "raise limited" if new > change.old else "capped"
        changes.append(
            Change(change.tenant, change.limit, change.old, new, (*change.reasons, cap.reason))
        )
        outcomes.append(CapOutcome(cap, change.old, change.new, new, note))
    for cap in caps:
        key = (cap.tenant, cap.limit)
        if key in planned_keys:
            continue
        result = recs.results.get(cap.limit)
        i = index.get(cap.tenant)
        if result is None or i is None:
            outcomes.append(CapOutcome(cap, math.nan, None, None, "not managed"))
            continue
        current = float(result.current[i])
        if not math.isfinite(current):
            outcomes.append(CapOutcome(cap, current, None, None, "current unknown"))
            continue
        effective = math.inf if current == 0 and result.spec.zero_means_unlimited else current
        if cap.value >= effective:
            outcomes.append(CapOutcome(cap, current, None, None, "already within"))
            continue
        changes.append(Change(cap.tenant, cap.limit, current, cap.value, (cap.reason,)))
        outcomes.append(CapOutcome(cap, current, None, cap.value, "capped"))
    order = {t: k for k, t in enumerate(recs.tenants)}
    changes.sort(key=lambda c: (order.get(c.tenant, len(order)), c.tenant, c.limit))
    return Plan(tuple(changes)), outcomes
