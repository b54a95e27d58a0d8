"""Replay a case under one strategy, cycle after cycle, as Mimir would have lived it.

The history is observed under the limits in force: accepted usage = min(demand, limit) and
discards = the rest, which is what Mimir's counters show. At every cycle of the evaluation
window the strategy sees the same kind of observation up to `now` and its recommendation
becomes the limit in force until the next cycle; so later cycles observe the throttling the
strategy's own earlier limits caused (and only strategies that read discards see past it).

A strategy that remembers (ours: the long-term peak memory the service keeps in its store)
gets a fresh session per case, which first observes the history's earlier windows (one per
`lookback`, oldest first: what the service running during the history would remember) and
then carries its memory from each cycle to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.backtest.case import Case
from mimir_limit_optimizer.backtest.strategies import Remembers, Session, Strategy
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

    def observation(now: float) -> Observation:
        hi = int(np.searchsorted(ts, now, side="right"))
        lo = min(int(np.searchsorted(ts, now - strategy.lookback, side="right")), hi)
        return Observation(
            tenants=case.tenants,
            timestamps=ts[lo:hi],
            step=case.step,
            usage={name: array[:, lo:hi] for name, array in observed.items()},
            discards={name: array[:, lo:hi] for name, array in discards.items()},
            current={name: value.copy() for name, value in now_limit.items()},
        )

    times = case.cycle_times()
    if isinstance(strategy, Remembers):
        session: Session = strategy.start()
        for now in _earlier_windows(case, strategy.lookback):
            session.observe(observation(now), now=now, limits=case.limits)
        strategy = session
    for k, now in enumerate(times):
        hi = int(np.searchsorted(ts, now, side="right"))
        wanted = strategy.recommend(observation(float(now)), now=float(now), limits=case.limits)
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


def _earlier_windows(case: Case, lookback: float) -> list[float]:
    """Ends of the windows, `lookback` apart and oldest first, that cover the history
    before the first cycle's own window (none when that window reaches its start)."""
    if lookback <= 0:
        return []
    first = case.history_end
    start = float(case.timestamps[0]) - case.step  # the first point closes this step
    count = int(np.floor((first - start) / lookback - 1e-9))
    return [first - k * lookback for k in range(count, 0, -1)]
