"""Forecast of spend to the end of the day, month and year, and when a budget is reached.

The trend (per scope row, vectorised): a least-squares line through the daily costs of the
last `fit_days` COMPLETE days (at least 3); with 1-2 complete days, their mean; with none,
today's cost scaled to a whole day. Predicted daily cost = max(0, line at that day).

- Spend so far is estimated as measured cost + the prediction for elapsed time of the current
  month without data (a Prometheus gap, days before the optimizer started); earlier months
  are not estimated. The measured part alone is what budget alerts use.
- Month end: spend so far + the rest of today + each remaining day of the month on the line.
- Day end: spend so far + the rest of today at today's predicted cost.
- Year end: the month-end forecast, then the months after it at the daily cost the line
  predicts for the month's last day, held flat (a line over months from a few weeks of data
  would extrapolate far beyond what the data says). So the year forecast always contains the
  month's: on Dec 6 they share the same remaining days and the year is never below the month.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mimir_limit_optimizer.engine.cost.ledger import COMPLETE_SHARE
from mimir_limit_optimizer.engine.cost.periods import (
    DAY,
    PERIODS,
    PeriodKind,
    day_number,
    days_of,
    period_bounds,
)
from mimir_limit_optimizer.engine.cost.usage import IntArray
from mimir_limit_optimizer.engine.usage import FloatArray

MIN_TREND_DAYS = 3


@dataclass(frozen=True)
class Trend:
    """Predicted cost per day: max(0, intercept + slope x (day - origin))."""

    intercept: FloatArray  # (R,) predicted cost of day `origin` (today)
    slope: FloatArray  # (R,) change of the daily cost per day
    origin: int  # today's day number
    method: str

    def per_day(self, days: IntArray) -> FloatArray:
        """(R, len(days)) predicted cost of each day."""
        offset = np.asarray(days, dtype=np.float64) - self.origin
        line = self.intercept[:, None] + self.slope[:, None] * offset[None, :]
        return np.maximum(line, 0.0)

    def today(self) -> FloatArray:
        return np.maximum(self.intercept, 0.0)


def fit_trend(
    daily_costs: FloatArray,
    days: IntArray,
    coverage: FloatArray,
    now: float,
    *,
    fit_days: int,
) -> Trend:
    """`daily_costs` (R, D) for ledger `days` (D,) with `coverage` (D,) seconds each."""
    rows = daily_costs.shape[0]
    today = day_number(now)
    complete = np.flatnonzero((coverage >= COMPLETE_SHARE * DAY) & (days < today))[-fit_days:]
    k = len(complete)
    if k >= MIN_TREND_DAYS:
        x = (days[complete] - today).astype(np.float64)
        y = daily_costs[:, complete]
        dx = x - x.mean()
        slope = (y - y.mean(axis=1, keepdims=True)) @ dx / float((dx**2).sum())
        intercept = y.mean(axis=1) - slope * x.mean()
        return Trend(intercept, slope, today, f"linear trend over {k} complete days")
    zero = np.zeros(rows)
    if k >= 1:
        mean = daily_costs[:, complete].mean(axis=1)
        return Trend(mean, zero, today, f"mean of {k} complete day{'s' if k > 1 else ''}")
    now_col = np.flatnonzero(days == today)
    if len(now_col) and coverage[now_col[0]] > 0:
        scaled = daily_costs[:, now_col[0]] * DAY / coverage[now_col[0]]
        return Trend(scaled, zero, today, "today's cost so far, scaled to a day")
    return Trend(zero, zero, today, "no data")


@dataclass(frozen=True)
class Forecast:
    trend: Trend
    spent_estimate: dict[PeriodKind, FloatArray]  # (R,) measured + estimate for gaps
    end: dict[PeriodKind, FloatArray]  # (R,) forecast spend at the end of the period
    rest_rate: dict[PeriodKind, FloatArray]  # (R,) forecast average spend per second until the end
    crossing: dict[
        PeriodKind, FloatArray
    ]  # (R,) unix time the budget is reached, NaN: not this period


def forecast(
    trend: Trend,
    *,
    spent: Mapping[PeriodKind, FloatArray],
    days: IntArray,
    day_coverage: FloatArray,
    budgets: Mapping[PeriodKind, FloatArray],
    now: float,
) -> Forecast:
    """`spent[kind]` (R,) measured so far in the period; `days`/`day_coverage`: the ledger's
    days (for the gaps of the current month)."""
    today = trend.origin
    _, day_end = period_bounds("day", now)
    per_second_today = trend.today() / DAY
    covered_by_day = dict(zip(days.tolist(), day_coverage.tolist(), strict=True))

    estimate: dict[PeriodKind, FloatArray] = {}
    # Gaps of today and of the month: per day, at that day's predicted cost.
    month_days = np.fromiter((d for d in days_of("month", now) if d <= today), dtype=np.int64)
    elapsed = np.array([min(DAY, now - d * DAY) for d in month_days])
    uncovered = np.maximum(
        elapsed - np.array([covered_by_day.get(int(d), 0.0) for d in month_days]), 0.0
    )
    predicted = trend.per_day(month_days)
    gap_costs = predicted * (uncovered / DAY)[None, :]
    estimate["day"] = spent["day"] + gap_costs[:, -1] if len(month_days) else spent["day"]
    estimate["month"] = spent["month"] + gap_costs.sum(axis=1)
    _, year_end = period_bounds("year", now)
    # Earlier months without data are NOT estimated: a year's history is rarely at hand and
    # inventing months of spend would trigger annual budgets on guesses (coverage says it).
    estimate["year"] = spent["year"] + gap_costs.sum(axis=1)

    rest_today = per_second_today * (day_end - now)
    _, month_end = period_bounds("month", now)
    future = np.arange(today + 1, int(month_end // DAY), dtype=np.int64)
    future_costs = trend.per_day(future)
    rest_of_month = rest_today + future_costs.sum(axis=1)
    # After this month: the last predicted day of the month, held flat (per second).
    last_day = future_costs[:, -1] if future_costs.shape[1] else trend.today()
    after_month = last_day / DAY * max(year_end - month_end, 0.0)
    end: dict[PeriodKind, FloatArray] = {
        "day": estimate["day"] + rest_today,
        "month": estimate["month"] + rest_of_month,
        "year": estimate["year"] + rest_of_month + after_month,
    }
    # Longer periods contain shorter ones (their spend so far includes the shorter's).
    end["month"] = np.maximum(end["month"], end["day"])
    end["year"] = np.maximum(end["year"], end["month"])
    bounds = {kind: period_bounds(kind, now) for kind in PERIODS}
    rest_rate = {
        kind: (end[kind] - estimate[kind]) / max(bounds[kind][1] - now, 1.0) for kind in PERIODS
    }

    crossing: dict[PeriodKind, FloatArray] = {
        "day": _flat_crossing(
            estimate["day"], budgets["day"], per_second_today, now, bounds["day"][1]
        )
    }
    # Month: piecewise over the rest of today and each remaining day; the year goes on with
    # one flat segment from the month's end to the year's.
    starts = np.concatenate([[now], future.astype(np.float64) * DAY])
    lengths = np.concatenate([[day_end - now], np.full(len(future), DAY)])
    amounts = np.concatenate([rest_today[:, None], future_costs], axis=1)
    crossing["month"] = _piecewise_crossing(
        estimate["month"],
        budget=budgets["month"],
        starts=starts,
        lengths=lengths,
        amounts=amounts,
        now=now,
    )
    crossing["year"] = _piecewise_crossing(
        estimate["year"],
        budget=budgets["year"],
        starts=np.concatenate([starts, [month_end]]),
        lengths=np.concatenate([lengths, [max(year_end - month_end, 0.0)]]),
        amounts=np.concatenate([amounts, after_month[:, None]], axis=1),
        now=now,
    )
    return Forecast(trend, estimate, end, rest_rate, crossing)


def _flat_crossing(
    spent: FloatArray, budget: FloatArray, rate: FloatArray, now: float, end: float
) -> FloatArray:
    out = np.full(len(spent), np.nan)
    has = np.isfinite(budget)
    already = has & (spent >= budget)
    out[already] = now
    going = has & ~already & (rate > 0)
    when = now + (budget[going] - spent[going]) / rate[going]
    out[np.flatnonzero(going)] = np.where(when <= end, when, np.nan)
    return out


def _piecewise_crossing(
    spent: FloatArray,
    *,
    budget: FloatArray,
    starts: FloatArray,
    lengths: FloatArray,
    amounts: FloatArray,
    now: float,
) -> FloatArray:
    """First time the cumulative spend reaches the budget, spend growing linearly by
    `amounts[:, j]` over segment j ([starts[j], starts[j] + lengths[j]))."""
    out = np.full(len(spent), np.nan)
    has = np.isfinite(budget)
    already = has & (spent >= budget)
    out[already] = now
    rows = np.flatnonzero(has & ~already)
    if len(rows) == 0 or amounts.shape[1] == 0:
        return out
    cumulative = spent[rows, None] + np.cumsum(amounts[rows], axis=1)
    reached = cumulative >= budget[rows, None]
    any_reached = np.asarray(np.any(reached, axis=1), dtype=bool)
    first = np.argmax(reached, axis=1)
    for r, row in enumerate(rows):
        if not any_reached[r]:
            continue
        j = int(first[r])
        before = spent[row] + (amounts[row, :j].sum() if j else 0.0)
        amount = amounts[row, j]
        share = (budget[row] - before) / amount if amount > 0 else 0.0
        out[row] = starts[j] + share * lengths[j]
    return out
