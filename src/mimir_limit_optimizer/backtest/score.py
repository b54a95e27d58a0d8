"""Scores of a replay against the TRUE demand of the evaluation window.

Per tenant x limit, over the evaluation points only:
- throttled minutes: points where demand > the limit in force, x step / 60;
- dropped (rate limits): the integral of demand above the limit, in the limit's unit x
  seconds (samples for ingestion_rate);
- rejected series (count limits): the largest excess of demand over the limit during the
  window (series a tenant could not create at the worst moment); summed over tenants;
- headroom: the time-averaged limit in force / p99 of demand (tenant x limit pairs whose
  p99 is > 0); median and p90 over the pairs;
- churn: the number of cycles that changed a limit.
A limit of 0 that means "unlimited" never throttles. Tenants without demand (NaN) count
nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from mimir_limit_optimizer.backtest.replay import Replay
from mimir_limit_optimizer.catalogue import LimitSpec, LimitType
from mimir_limit_optimizer.engine.usage import FloatArray

# What each reported metric means, with its unit: printed under every table and carried in
# the JSON documents (`definitions`).
METRIC_DEFINITIONS: Mapping[str, str] = MappingProxyType(
    {
        "throttled_minutes": "minutes (summed over tenant × limit pairs) in which true demand "
        "was above the limit in force",
        "dropped_samples": "samples above a rate limit (integral of demand over the limit, "
        "samples/s × s)",
        "rejected_series": "series a tenant could not create at the worst moment (largest "
        "excess over a series limit, summed over tenants)",
        "headroom": "time-averaged limit in force ÷ p99 of true demand (×; 1.00× = the limit "
        "equals the demand's p99, below 1 = under-provisioned); headroom_median / "
        "headroom_p90 over tenant × limit pairs",
        "churn": "limit changes (writes): cycles that changed a tenant × limit's limit, "
        "summed over the whole evaluation window",
    }
)


@dataclass(frozen=True)
class Score:
    strategy: str
    scenario: str
    tenants: int
    throttled_minutes: float
    dropped_samples: float
    rejected_series: float
    churn: int
    cycles: int
    headrooms: tuple[float, ...]  # one per tenant x limit pair with demand

    @property
    def headroom_median(self) -> float | None:
        return _quantile(self.headrooms, 50.0)

    @property
    def headroom_p90(self) -> float | None:
        return _quantile(self.headrooms, 90.0)


def _quantile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q)) if values else None


def effective(limit: FloatArray, spec: LimitSpec) -> FloatArray:
    """The limit as enforced: 0 means unlimited for limits where it does."""
    if spec.zero_means_unlimited:
        return np.where(limit == 0, np.inf, limit)
    return limit


def throttled_minutes(demand: FloatArray, limit: FloatArray, step: float) -> float:
    with np.errstate(invalid="ignore"):
        over = demand > limit  # NaN demand compares False
    return float(np.count_nonzero(over)) * step / 60.0


def dropped(demand: FloatArray, limit: FloatArray, step: float) -> float:
    """Integral of demand above the limit (unit x seconds)."""
    with np.errstate(invalid="ignore"):
        excess = np.where(demand > limit, demand - limit, 0.0)
    return float(excess.sum()) * step


def peak_excess(demand: FloatArray, limit: FloatArray) -> float:
    """Sum over tenants of the largest excess of demand over the limit."""
    with np.errstate(invalid="ignore"):
        excess = np.where(demand > limit, demand - limit, 0.0)
    if excess.size == 0:
        return 0.0
    return float(excess.max(axis=1).sum())


def headroom_ratios(demand: FloatArray, limit: FloatArray) -> FloatArray:
    """Per tenant: mean limit in force / p99 of demand, for tenants whose p99 is > 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tenants without demand: NaN
        p99 = np.nanpercentile(demand, 99.0, axis=1) if demand.shape[1] else None
    if p99 is None:
        return np.zeros(0)
    mean_limit = limit.mean(axis=1)
    keep = np.isfinite(p99) & (p99 > 0)
    ratios: FloatArray = mean_limit[keep] / p99[keep]
    return ratios


def score_replay(run: Replay) -> Score:
    case = run.case
    first = case.evaluation_start
    minutes = samples = series = 0.0
    headrooms: list[float] = []
    churn = 0
    for spec in case.limits:
        demand = case.demand[spec.name][:, first:]
        limit = effective(run.in_force[spec.name], spec)
        minutes += throttled_minutes(demand, limit, case.step)
        if spec.type is LimitType.RATE:
            samples += dropped(demand, limit, case.step)
        else:
            series += peak_excess(demand, limit)
        headrooms.extend(headroom_ratios(demand, limit).tolist())
        churn += int(run.changes[spec.name].sum())
    return Score(
        strategy=run.strategy,
        scenario=case.name,
        tenants=len(case.tenants),
        throttled_minutes=minutes,
        dropped_samples=samples,
        rejected_series=series,
        churn=churn,
        cycles=run.cycles,
        headrooms=tuple(headrooms),
    )


def total(strategy: str, scores: Iterable[Score]) -> Score:
    """Sums over scenarios; headroom quantiles over every pair of every scenario (pooled)."""
    mine = [s for s in scores if s.strategy == strategy]
    return Score(
        strategy=strategy,
        scenario="total",
        tenants=sum(s.tenants for s in mine),
        throttled_minutes=sum(s.throttled_minutes for s in mine),
        dropped_samples=sum(s.dropped_samples for s in mine),
        rejected_series=sum(s.rejected_series for s in mine),
        churn=sum(s.churn for s in mine),
        cycles=sum(s.cycles for s in mine),
        headrooms=tuple(h for s in mine for h in s.headrooms),
    )


# Median headrooms closer than this (relative) are a tie at one point: a single point per
# strategy cannot resolve them; the trade-off curves (backtest/sweep.py) compare at equal
# headroom.
HEADROOM_TIE = 0.01


def dominates(a: Score, b: Score) -> bool:
    """Pareto at one point on the suite: strictly fewer throttled minutes at no more median
    headroom (a difference under HEADROOM_TIE counts as equal)."""
    if a.headroom_median is None or b.headroom_median is None:
        return False
    return a.throttled_minutes < b.throttled_minutes and a.headroom_median <= b.headroom_median * (
        1.0 + HEADROOM_TIE
    )
