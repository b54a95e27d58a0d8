"""Long-term peak memory: per tenant and usage-driven limit, the highest level it held and
when, remembered beyond the analysis window (trendAnalysis.adaptive.longTermWindow;
docs/engine.md, "Memory, growth and variability").

The engine is otherwise stateless: it remembers what its window holds, so a tenant quiet
for as long as the window (half its load moved away for a week, a team's shutdown) loses
its old level from memory just as it comes back. The memory is the one piece of state the
engine reads from earlier cycles. Pure: the service keeps it in its store and the backtest
carries it from one replay step to the next; `recommend` reads it (`recall`) and `update`
computes the next one from a cycle's results.

What is remembered is the window's highest day level the quiet memory already reads
(engine/strategies.tenant_shape: a day's 70th percentile of hourly means of spike-cleaned
demand, so a level held most of a day, never a spike, an incident or a cardinality blast
of a few hours), as float32 in the limit's unit, and the unix time of the last cycle whose
window held it (float64: float32 seconds since 1970 are only 128 s apart; 12 bytes per
tenant and limit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.engine.usage import FloatArray

Float32Array = npt.NDArray[np.float32]
# The window's level renews the remembered one (its time) when within this share of it:
# hourly means are counted back from each cycle's `now`, so the same peak reads a few
# percent differently from one cycle to the next while it is still in the window.
RENEW_SHARE = 0.9
# The result extra that carries the window's own level (engine/adaptive.floors).
HELD_LEVEL = "held_level"


@dataclass(frozen=True)
class LimitMemory:
    """One limit's memory: `level[i]` (NaN: nothing remembered) was last held in the
    analysis window of the cycle at `seen_at[i]` (unix seconds) by tenant `tenants[i]`."""

    tenants: tuple[str, ...]
    level: Float32Array
    seen_at: FloatArray

    def __post_init__(self) -> None:
        n = len(self.tenants)
        if self.level.shape != (n,) or self.seen_at.shape != (n,):
            raise ValueError(
                f"peak memory arrays must have one entry per tenant ({n}), got "
                f"{self.level.shape} and {self.seen_at.shape}"
            )

    @property
    def known(self) -> int:
        """How many tenants have a remembered level."""
        return int(np.count_nonzero(np.isfinite(self.level)))


@dataclass(frozen=True)
class PeakMemory:
    """Per limit name, its `LimitMemory`; empty before the first cycle."""

    limits: Mapping[str, LimitMemory] = field(default_factory=dict)

    @property
    def entries(self) -> int:
        """Remembered levels over all limits (the size the store holds)."""
        return sum(m.known for m in self.limits.values())


def _positions(stored: tuple[str, ...], tenants: Sequence[str]) -> npt.NDArray[np.int64] | None:
    """Index into `stored` of each of `tenants` (-1: not there); None when they are the
    same tenants in the same order (the usual case from one cycle to the next: no lookup)."""
    if stored is tenants or (len(stored) == len(tenants) and stored == tuple(tenants)):
        return None
    index = {tenant: i for i, tenant in enumerate(stored)}
    return np.fromiter((index.get(t, -1) for t in tenants), dtype=np.int64, count=len(tenants))


def _aligned(memory: LimitMemory, tenants: Sequence[str]) -> tuple[FloatArray, FloatArray]:
    """(level, seen_at) of `memory` in the order of `tenants`, NaN where unknown."""
    level = memory.level.astype(np.float64)
    seen = memory.seen_at.astype(np.float64)
    where = _positions(memory.tenants, tenants)
    if where is None:
        return level, seen
    found = where >= 0
    out_level = np.full(len(tenants), np.nan)
    out_seen = np.full(len(tenants), np.nan)
    out_level[found] = level[where[found]]
    out_seen[found] = seen[where[found]]
    return out_level, out_seen


def recall(
    memory: PeakMemory | None,
    limit: str,
    tenants: Sequence[str],
    *,
    now: float,
    long_term_window: float,
) -> tuple[FloatArray, FloatArray] | None:
    """(remembered level, when it was last in the window) per tenant of `tenants`, NaN
    where nothing is remembered or it expired (last seen more than `long_term_window`
    seconds before `now`); None when there is no memory for `limit` or it is off."""
    if memory is None or long_term_window <= 0:
        return None
    stored = memory.limits.get(limit)
    if stored is None:
        return None
    level, seen = _aligned(stored, tenants)
    seen = np.minimum(seen, now)  # a time ahead of `now` (a clock that jumped) is now
    with np.errstate(invalid="ignore"):
        expired = ~(now - seen <= long_term_window)
    level[expired] = np.nan
    seen[expired] = np.nan
    return level, seen


def renew(
    level: FloatArray,
    seen: FloatArray,
    window_level: FloatArray,
    *,
    now: float,
    long_term_window: float,
) -> tuple[FloatArray, FloatArray]:
    """One tenant-wise step of the memory: expired entries are forgotten; the window's
    level replaces a lower (or no) remembered level; a window level within RENEW_SHARE of
    the remembered one renews its time (the peak is still in the window), a lower one
    leaves the memory as it was. NaN window levels (no data) leave it as it was."""
    seen = np.minimum(seen, now)  # a time ahead of `now` (a clock that jumped) is now
    with np.errstate(invalid="ignore"):
        alive = now - seen <= long_term_window
        level = np.where(alive, level, np.nan)
        seen = np.where(alive, seen, np.nan)
        fresh = np.isfinite(window_level) & ~(window_level < RENEW_SHARE * level)
    return (
        np.where(fresh, np.fmax(level, window_level), level),
        np.where(fresh, now, seen),
    )


def update(
    memory: PeakMemory | None,
    recs: Recommendations,
    *,
    now: float,
    long_term_window: float,
) -> PeakMemory:
    """The memory after the cycle of `recs` at `now`: for each usage-driven limit the
    engine computed, each tenant's window level renews its entry (`renew`). Tenants absent
    from this cycle (silent, or out of scope) keep their entries until they expire; limits
    not computed this cycle keep theirs likewise. Bounded: an entry lives at most
    `long_term_window` after its tenant last reached it. Off (0): an empty memory."""
    if long_term_window <= 0:
        return PeakMemory()
    old = memory.limits if memory is not None else {}
    out: dict[str, LimitMemory] = {}
    for name, result in recs.results.items():
        window_level = result.extra.get(HELD_LEVEL)
        if window_level is None:
            continue
        previous = old.get(name)
        if previous is None:
            level = np.full(len(recs.tenants), np.nan)
            seen = np.full(len(recs.tenants), np.nan)
        else:
            level, seen = _aligned(previous, recs.tenants)
        level, seen = renew(
            level,
            seen,
            np.asarray(window_level, dtype=np.float64),
            now=now,
            long_term_window=long_term_window,
        )
        tenants, level32 = recs.tenants, level.astype(np.float32)
        if previous is not None:
            gone = _kept_absent(previous, recs.tenants, now=now, window=long_term_window)
            if gone is not None:
                tenants = tenants + tuple(previous.tenants[i] for i in gone)
                level32 = np.concatenate([level32, previous.level[gone]])
                seen = np.concatenate([seen, previous.seen_at[gone]])
        out[name] = LimitMemory(tenants, level32, seen)
    for name, previous in old.items():
        if name not in out:
            kept = _forget_expired(previous, now=now, window=long_term_window)
            if kept is not None:
                out[name] = kept
    return PeakMemory(out)


def _kept_absent(
    previous: LimitMemory, tenants: Sequence[str], *, now: float, window: float
) -> npt.NDArray[np.int64] | None:
    """Rows of `previous` whose tenant is not in `tenants` and whose entry is alive."""
    if previous.tenants is tenants or previous.tenants == tuple(tenants):
        return None
    present = set(tenants)
    with np.errstate(invalid="ignore"):
        alive = (now - previous.seen_at <= window) & np.isfinite(previous.level)
    rows = [i for i in np.flatnonzero(alive).tolist() if previous.tenants[i] not in present]
    return np.asarray(rows, dtype=np.int64) if rows else None


def _forget_expired(previous: LimitMemory, *, now: float, window: float) -> LimitMemory | None:
    with np.errstate(invalid="ignore"):
        alive = (now - previous.seen_at <= window) & np.isfinite(previous.level)
    if not alive.any():
        return None
    if alive.all():
        return previous
    rows = np.flatnonzero(alive)
    return LimitMemory(
        tuple(previous.tenants[i] for i in rows.tolist()),
        previous.level[rows],
        previous.seen_at[rows],
    )


def merge(first: PeakMemory, second: PeakMemory) -> PeakMemory:
    """Both memories in one, tenant by tenant: the higher remembered level with its time
    (the later time where the levels are equal); a tenant or limit only one of them knows
    is kept as it is there."""
    out = dict(first.limits)
    for name, theirs in second.limits.items():
        mine = out.get(name)
        if mine is None:
            out[name] = theirs
            continue
        known = set(mine.tenants)
        tenants = mine.tenants + tuple(t for t in theirs.tenants if t not in known)
        level_a, seen_a = _aligned(mine, tenants)
        level_b, seen_b = _aligned(theirs, tenants)
        with np.errstate(invalid="ignore"):
            take_b = (level_b > level_a) | (np.isnan(level_a) & np.isfinite(level_b))
            same = level_a == level_b
        seen = np.where(take_b, seen_b, np.where(same, np.fmax(seen_a, seen_b), seen_a))
        level = np.where(take_b, level_b, level_a)
        out[name] = LimitMemory(tenants, level.astype(np.float32), seen)
    return PeakMemory(out)
