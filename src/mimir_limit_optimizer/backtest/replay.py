"""Replay a case under one strategy, cycle after cycle, as Mimir would have lived it.

The history is observed under the limits in force: accepted usage = min(demand, limit) and
discards = the rest, which is what Mimir's counters show. At every cycle of the evaluation
window the strategy sees the same kind of observation up to `now` and its recommendation
becomes the limit in force until the next cycle; so later cycles observe the throttling the
strategy's own earlier limits caused (and only strategies that read discards see past it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.backtest.case import Case
from mimir_limit_optimizer.backtest.strategies import Strategy
from mimir_limit_optimizer.engine.usage import FloatArray, Observation

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Replay:
    """What one strategy did to one case.

    - `in_force[limit]`: (N, E) the limit in force at every evaluation point;
    - `changes[limit]`: (N,) how many cycles changed the tenant's limit (the first cycle
      counts when it changed the limit of the history)."""

    case: Case
    strategy: str
    in_force: dict[str, FloatArray]
    changes: dict[str, IntArray]
    cycles: int


def replay(case: Case, strategy: Strategy) -> Replay:
    ts = case.timestamps
    n, t = len(case.tenants), len(ts)
    first = case.evaluation_start
    limits = {s.name: np.empty((n, t)) for s in case.limits}
    observed = {s.name: np.empty((n, t)) for s in case.limits}
    discards = {s.name: np.empty((n, t)) for s in case.limits}
    now_limit = {s.name: case.current[s.name].astype(np.float64) for s in case.limits}
    changes = {s.name: np.zeros(n, dtype=np.int64) for s in case.limits}

    def enforce(name: str, segment: slice, value: FloatArray) -> None:
        demand = case.demand[name][:, segment]
        limits[name][:, segment] = value[:, None]
        # np.minimum keeps NaN (no tenant) as NaN, unlike np.fmin.
        observed[name][:, segment] = np.minimum(demand, value[:, None])
        discards[name][:, segment] = demand - observed[name][:, segment]

    for name, value in now_limit.items():
        enforce(name, slice(0, first), value)

    times = case.cycle_times()
    for k, now in enumerate(times):
        hi = int(np.searchsorted(ts, now, side="right"))
        lo = int(np.searchsorted(ts, now - strategy.lookback, side="right"))
        lo = min(lo, hi)
        observation = Observation(
            tenants=case.tenants,
            timestamps=ts[lo:hi],
            step=case.step,
            usage={name: array[:, lo:hi] for name, array in observed.items()},
            discards={name: array[:, lo:hi] for name, array in discards.items()},
            current={name: value.copy() for name, value in now_limit.items()},
        )
        wanted = strategy.recommend(observation, now=float(now), limits=case.limits)
        end = t if k == len(times) - 1 else int(np.searchsorted(ts, now + case.cycle, "right"))
        for spec in case.limits:
            name = spec.name
            proposal = wanted.get(name)
            value = now_limit[name]
            if proposal is not None:
                value = np.where(np.isfinite(proposal), proposal, value)
            changes[name] += value != now_limit[name]
            now_limit[name] = value
            enforce(name, slice(hi, end), value)

    return Replay(
        case=case,
        strategy=strategy.name,
        in_force={name: array[:, first:] for name, array in limits.items()},
        changes=changes,
        cycles=len(times),
    )
