"""Straightforward reference versions of the engine's statistics passes, as they were before
they were made fast (issue 13: 10,000 tenants in 1.5 s): whole (N, T) arrays, numpy's own
reductions (`mean`, `nansum`, `nanmean`, `nanmax`), one sort per day. The fast versions must
give the same results; tests/test_engine_reference.py swaps these in and compares.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mimir_limit_optimizer.engine.spikes import Cleaned
from mimir_limit_optimizer.engine.stats import SortedRows
from mimir_limit_optimizer.engine.strategies import TenantShape

_HOUR = 3600.0
_DAY = 86400.0
_DAY_LEVEL_PERCENTILE = 70.0
_MAD_TO_SIGMA = 1.2533
_RETRY_DEMAND_BOUND = 1.0
_DISCARD_LOOKBACK = 3600.0
_RECENT_LEVEL = 86400.0


def _hour_blocks(values: Any, per_hour: int) -> tuple[Any, Any]:
    n, t = values.shape
    hours = t // per_hour
    blocks = np.asarray(values[:, t - hours * per_hour :], dtype=np.float32).reshape(
        n, hours, per_hour
    )
    gaps = np.isnan(blocks)
    if gaps.any():
        total = np.where(gaps, np.float32(0), blocks).sum(axis=2)
        count = per_hour - np.count_nonzero(gaps, axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (total / count).astype(np.float32)
    else:
        means = blocks.mean(axis=2)
    return blocks, means


def tenant_shape(
    raw: Any,
    cleaned: Any,
    *,
    timestamps: Any,
    step: float,
    now: float,
    quiet_share: float,
    recent: float,
    raw_stats: Any = None,
) -> TenantShape:
    """`raw_stats` is not trusted: computed again from `raw`."""
    if isinstance(cleaned, Cleaned):
        cleaned = cleaned.full() if len(cleaned.rows) else raw
    n, t = cleaned.shape
    per_hour = max(1, round(_HOUR / step))
    hours = t // per_hour
    if hours == 0 or n == 0:
        nan = np.full(n, np.nan)
        return TenantShape(nan, nan.copy(), np.zeros(n), nan.copy(), np.zeros(n), nan.copy())
    blocks, raw_means = _hour_blocks(raw, per_hour)
    with np.errstate(invalid="ignore", divide="ignore"):
        deviation = blocks / raw_means[:, :, None]
        deviation -= 1
        np.abs(deviation, out=deviation)
        np.minimum(deviation, 1, out=deviation)
    deviation = deviation.reshape(n, hours * per_hour)
    if np.isnan(deviation).any():
        count = np.count_nonzero(~np.isnan(deviation), axis=1)
        total = np.nansum(deviation, axis=1)
    else:
        count = np.full(n, deviation.shape[1])
        total = deviation.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        variability = np.where(count > 0, _MAD_TO_SIGMA * total.astype(np.float64) / count, np.nan)
    means = raw_means if cleaned is raw else _hour_blocks(cleaned, per_hour)[1]
    filled = np.where(np.isfinite(means), means, -np.inf)
    ends = float(timestamps[-1]) - _HOUR * np.arange(hours)[::-1]
    last = ends > now - recent
    recent_top = filled[:, last].max(axis=1) if last.any() else np.full(n, -np.inf)
    recent_peak = np.where(np.isfinite(recent_top), recent_top, np.nan)
    days = hours // 24
    levels = np.full((n, max(days, 1)), -np.inf)
    for k in range(days):
        day = means[:, hours - (k + 1) * 24 : hours - k * 24]
        level = SortedRows(day).percentile(_DAY_LEVEL_PERCENTILE)
        levels[:, k] = np.where(np.isfinite(level), level, -np.inf)
    top = levels.max(axis=1)
    peak = np.where(np.isfinite(top), top, np.nan)
    with np.errstate(invalid="ignore"):
        reached = levels >= quiet_share * top[:, None]
    first = np.argmax(reached, axis=1)
    quiet = np.where(np.isfinite(top) & reached.any(axis=1), first * _DAY, 0.0)
    growth = np.zeros(n)
    if days >= 3:
        d0, d1, d2 = levels[:, 0], levels[:, 1], levels[:, 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            grew = (d0 > d1) & (d1 > d2) & (d2 > 0)
            rate = np.sqrt(np.where(grew, d0 / np.where(grew, d2, 1.0), 1.0)) - 1.0
        growth = np.clip(np.nan_to_num(rate, nan=0.0), 0.0, 1.0)
    top_all = filled.max(axis=1)
    top_hour = np.where(np.isfinite(top_all), top_all, np.nan)
    return TenantShape(variability, peak, quiet, recent_peak, growth, top_hour)


def hourly(values: Any, block: int, known: Any = None) -> Any:
    """Block means from the first point, computed again (`known` is not trusted)."""
    t = values.shape[1]
    full = t // block
    parts = []
    if full:
        parts.append(_hour_blocks(values[:, : full * block], block)[1])
    if full * block < t:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            parts.append(np.nanmean(values[:, full * block :], axis=1)[:, None])
    out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    return np.asarray(out, dtype=np.float32)


def rows_above(values: Any, bound: Any, block: int, rows: Any) -> Any:
    t = values.shape[1]
    full = t // block
    picked = values[rows]
    bounds = bound[rows]
    with np.errstate(invalid="ignore"):
        above = np.zeros(len(rows), dtype=bool)
        if full:
            blocks = picked[:, : full * block].reshape(len(rows), full, block)
            above |= (blocks > bounds[:, :full, None]).reshape(len(rows), -1).any(axis=1)
        if full * block < t:
            above |= (picked[:, full * block :] > bounds[:, full:]).any(axis=1)
    return above


def rows_columns(self: Cleaned, rows: Any, cols: Any) -> Any:
    out = np.array(self.base[rows][:, cols], dtype=np.float32)
    if len(self.rows) and len(rows):
        pos = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        hit = self.rows[pos] == rows
        out[hit] = self.values[pos[hit]][:, cols]
    return out


def demand(state: Any, spec: Any, result: Any, usage: Any) -> tuple[Any, Any]:
    """Accepted + discarded over whole arrays (engine/throttling.py `demand`)."""
    from mimir_limit_optimizer.engine.results import Reason

    discards_full = state.obs.discards.get(spec.name)
    if discards_full is None:
        return usage, np.zeros(0, dtype=np.int64)
    d = np.fmax(np.asarray(state.take_window(discards_full), dtype=np.float32), np.float32(0))
    if "rate_limited" in spec.discard_reasons:
        bound = usage * np.float32(_RETRY_DEMAND_BOUND)
        with np.errstate(invalid="ignore"):
            over = d > bound
        np.copyto(d, bound, where=over)
        result.flags |= np.where(over.any(axis=1), int(Reason.RETRIES_BOUNDED), 0)
    gaps = np.isnan(usage)
    has_gaps = bool(gaps.any())
    if has_gaps:
        d[gaps] = 0
    total_d = d.sum(axis=1)
    recent = state.timestamps > state.now - _DISCARD_LOOKBACK
    result.extra["throttled_now"] = d[:, recent].sum(axis=1) > 0
    last_day = state.timestamps > state.now - _RECENT_LEVEL
    result.extra["throttled_recently"] = d[:, last_day].sum(axis=1) > 0
    total_demand = np.add(usage, d, out=d)
    total = total_demand.sum(axis=1, where=~gaps) if has_gaps else total_demand.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, total_d.astype(np.float64) / total, 0.0)
    result.discard_share = share
    result.flags |= np.where(share > 0, int(Reason.DISCARDS_ADDED), 0)
    return total_demand, np.flatnonzero(total_d > 0)


def _percentile(ordered: Any, counts: Any, q: float) -> Any:
    n = counts
    out = np.full(n.shape, np.nan)
    has = n > 0
    if not has.any():
        return out
    pos = (q / 100.0) * (np.maximum(n, 1) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    frac = pos - lo
    rows = np.arange(len(n))
    lo_v = ordered[rows, lo].astype(np.float64)
    hi_v = ordered[rows, hi].astype(np.float64)
    out[has] = (lo_v + (hi_v - lo_v) * frac)[has]
    return out


def percentiles(self: SortedRows, qs: Any) -> list[Any]:
    """SortedRows.percentiles one percentile and two reads of the sort at a time."""
    out = [_percentile(self.sorted, self.counts, q) for q in qs]
    if self._patch is not None:
        rows, replaced = self._patch
        for values, theirs in zip(out, percentiles(replaced, qs), strict=True):
            values[rows] = theirs
    return out


def sorted_with_hours(values: Any, qs: Any, per_hour: int, out: Any, **_: Any) -> Any:
    """hourly.sorted_with_hours as its two parts: the reference SortedRows (whole, patched in
    as `__init__`) and no hour stats worth trusting (the reference shape and spike filter
    compute theirs again): NaN means, NaN variability."""
    from mimir_limit_optimizer.engine.hourly import HourStats

    out[...] = np.nan
    return SortedRows(values), HourStats(out, np.full(len(values), np.nan))


def sorted_rows_init(
    self: SortedRows, values: Any, buffer: Any = None, *, only: Any = None
) -> None:
    """SortedRows with a whole new sorted array (no buffer, no sort by chunks)."""
    self.sorted = np.sort(np.asarray(values, dtype=np.float32), axis=1)
    self.counts = self.sorted.shape[1] - np.isnan(self.sorted).sum(axis=1)
    self._values = None
    self._patch = None
    self._owner = None
    self._cache = {}


def new_buffer(self: Any, name: str, shape: tuple[int, int]) -> Any:
    """Pass.buffer without reuse: a new array each time."""
    return np.empty(shape, dtype=np.float32)
