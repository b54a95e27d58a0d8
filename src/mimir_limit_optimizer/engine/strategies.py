"""Strategies turn a tenant's cleaned demand into a raw value (before buffers and clamps).

(a) percentile: the Go optimizer's semantics — the p-th percentile of demand over the analysis
    window, optionally of its moving average, optionally at least the highest sustained peak.
(b) histogram: VPA-like decaying histogram — recent points weigh more (half-life), the target
    percentile of the weighted distribution, with confidence growing with history length.
Then `tenant_shape`: what a tenant's own history says beyond one percentile (variability,
remembered level, quiet time, growth), for engine/adaptive.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.config.recommendation import HistogramSettings, TrendAnalysis
from mimir_limit_optimizer.engine import hourly
from mimir_limit_optimizer.engine.spikes import Cleaned, as_slice
from mimir_limit_optimizer.engine.stats import SortedRows, moving_average
from mimir_limit_optimizer.engine.usage import AnyFloatArray, FloatArray

Float32Array = npt.NDArray[np.float32]

# Histogram buckets grow by 5% (VPA uses the same ratio): values within a bucket differ by
# less than the deadband, and 1e-3..1e13 fits in ~740 buckets.
_BUCKET_RATIO = 1.05
_MIN_VALUE = 1e-3


@dataclass(frozen=True)
class StrategyResult:
    value: FloatArray  # (N,) raw demand estimate in base units; NaN when no data
    confidence: FloatArray  # (N,) 0..1
    lower: FloatArray | None = None  # (N,) histogram lower bound (lower percentile)
    upper: FloatArray | None = None  # (N,) histogram upper bound, widened by low confidence


def percentile_strategy(
    cleaned: AnyFloatArray,
    *,
    step: float,
    history: FloatArray,
    settings: TrendAnalysis,
    presorted: SortedRows | None = None,
) -> StrategyResult:
    """`presorted`: `cleaned` already sorted (saves the engine's most expensive step)."""
    window = max(1, round(settings.moving_average_window / step))
    if settings.use_moving_average:
        rows = SortedRows(moving_average(cleaned, window))
    else:
        rows = presorted if presorted is not None else SortedRows(cleaned)
    value = rows.percentile(settings.percentile)
    if settings.include_peaks:
        sustained = moving_average(cleaned, window)
        peaks = SortedRows(sustained).maximum()
        value = np.fmax(value, peaks)
    points = max(cleaned.shape[1], 1)
    finite = presorted.counts if presorted is not None else None
    if finite is None:
        finite = np.count_nonzero(np.isfinite(cleaned), axis=1)
    coverage = finite / points
    confidence = np.clip(history / settings.analysis_window, 0.0, 1.0) * coverage
    return StrategyResult(value, confidence)


def _bucket_values(count: int) -> FloatArray:
    """Upper edge of each bucket; bucket 0 holds zeros (and values below _MIN_VALUE)."""
    edges = _MIN_VALUE * _BUCKET_RATIO ** (np.arange(count, dtype=np.float64) - 1.0)
    edges[0] = 0.0
    return edges


def histogram_strategy(
    cleaned: AnyFloatArray,
    *,
    timestamps: FloatArray,
    now: float,
    history: FloatArray,
    settings: HistogramSettings,
) -> StrategyResult:
    n, t = cleaned.shape
    if t == 0:
        empty = np.full(n, np.nan)
        return StrategyResult(empty, np.zeros(n), empty, empty)
    finite = np.isfinite(cleaned)
    safe = np.where(finite, np.maximum(cleaned, 0.0), 0.0)
    with np.errstate(divide="ignore"):
        index = np.where(
            safe >= _MIN_VALUE,
            np.ceil(np.log(safe / _MIN_VALUE) / math.log(_BUCKET_RATIO)).astype(np.int64) + 1,
            0,
        )
    buckets = int(index.max()) + 2
    # Weight halves every half_life going back from `now`.
    weights = np.exp2((timestamps - now) / settings.half_life)
    weight_grid = np.where(finite, weights[None, :], 0.0)
    flat = (np.arange(n)[:, None] * buckets + index).ravel()
    hist = np.bincount(flat, weights=weight_grid.ravel(), minlength=n * buckets)
    cumulative = np.cumsum(hist.reshape(n, buckets), axis=1)
    total = cumulative[:, -1]
    values = _bucket_values(buckets + 1)

    def percentile(q: float) -> FloatArray:
        wanted = total * (q / 100.0)
        position = (cumulative < wanted[:, None] - 1e-12).sum(axis=1)
        position = np.minimum(position, buckets - 1)
        out: FloatArray = np.where(total > 0, values[position], np.nan)
        return out

    confidence = np.clip(history / settings.full_confidence_after, 0.0, 1.0)
    target = percentile(settings.target_percentile)
    lower = percentile(settings.lower_percentile)
    # VPA widens the upper bound by (1 + 1/confidence) when history is short.
    with np.errstate(divide="ignore"):
        widen = 1.0 + 1.0 / np.maximum(confidence * 7.0, 1e-3)
    upper = percentile(settings.upper_percentile) * np.where(confidence >= 1.0, 1.0, widen)
    return StrategyResult(target, confidence, lower, upper)


# --- what a tenant's own history says beyond one percentile (AdaptiveSettings) -------------
_HOUR = 3600.0
_DAY = 86400.0
# A day's level: the 70th percentile of its hourly means. Robust to what lasts less than 30% of
# a day (an incident, a rolled-back cardinality blast of a few hours), close to the daily peak
# of a daily cycle.
_DAY_LEVEL_PERCENTILE = 70.0
# Points per chunk of rows of tenant_shape: 1M (520 tenants of a week at 5 minutes; its hour
# grids stay in a core's cache).
_SHAPE_POINTS = 1 << 20


@dataclass(frozen=True)
class TenantShape:
    """Per tenant, over the analysis window, from hours and days counted back from `now`:

    - `variability`: short-term coefficient of variation of raw demand: its mean absolute
      deviation from the mean of its hour (each deviation capped at 100% of that mean, so a
      single burst counts as much as a strong one), as a standard deviation. Hour means
      follow level shifts: an incident of an hour or two barely counts, bursts of minutes
      several times a day do;
    - `peak`: the remembered level: the highest day level (70th percentile of a day's hourly
      means of cleaned demand) in the window;
    - `quiet_for`: seconds since the end of the last day whose level reached
      `quiet_share` x `peak` (0 when the last day did);
    - `recent_peak`: the highest hourly mean of cleaned demand within the last `recent`
      seconds;
    - `growth`: growth per day of the day level over the last 3 days, when each day grew
      (else 0);
    - `top_hour`: the highest hourly mean of cleaned demand in the window (the level a
      tenant that comes back returns to at its daily peak)."""

    variability: FloatArray
    peak: FloatArray
    quiet_for: FloatArray
    recent_peak: FloatArray
    growth: FloatArray
    top_hour: FloatArray


def _cleaned_means(
    raw: AnyFloatArray, cleaned: AnyFloatArray | Cleaned, raw_means: Float32Array, per_hour: int
) -> Float32Array:
    """Hour means of the cleaned demand: the raw demand's, except in the rows spikes were
    cleaned from (a `Cleaned` patch says which; an array is averaged whole)."""
    if cleaned is raw:
        return raw_means
    if isinstance(cleaned, Cleaned) and cleaned.base is raw:
        if not len(cleaned.rows):
            return raw_means
        means = raw_means.copy()
        # The patch's rows hold the whole window: hours counted back from its last point.
        means[cleaned.rows] = hourly.means_of(cleaned.values, per_hour)
        return means
    whole = cleaned.full() if isinstance(cleaned, Cleaned) else cleaned
    return hourly.means_of(whole, per_hour)


def tenant_shape(
    raw: AnyFloatArray,
    cleaned: AnyFloatArray | Cleaned,
    *,
    timestamps: FloatArray,
    step: float,
    now: float,
    quiet_share: float,
    recent: float,
    raw_stats: hourly.HourStats | None = None,
) -> TenantShape:
    """`cleaned`: the spike-cleaned demand, as an array or as the `Cleaned` patch of `raw`
    (then only the patched rows are averaged again). `raw_stats`: hourly.means_and_variability
    of `raw`, when the caller has it (the engine computes it once for the spike filter too);
    its hour means may be sorted in place here.

    Every field is row by row, so rows are taken _SHAPE_POINTS points at a time: the hour
    grids of a chunk are a few MB, where whole (N, hours) grids are 67 MB at 100,000 tenants
    (new memory for every limit, whose page faults cost more than its arithmetic)."""
    n, t = raw.shape
    per_hour = hourly.points_per_hour(step)
    if t // per_hour == 0 or n == 0:
        nan = np.full(n, np.nan)
        return TenantShape(nan, nan.copy(), np.zeros(n), nan.copy(), np.zeros(n), nan.copy())
    if isinstance(cleaned, Cleaned) and cleaned.base is not raw:
        cleaned = cleaned.full()  # a patch of another array: made whole (not the engine's)
    rows = max(1, _SHAPE_POINTS // t)
    parts: list[TenantShape] = []
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        part = raw[lo:hi]
        if cleaned is raw:
            clean: AnyFloatArray | Cleaned = part
        elif isinstance(cleaned, Cleaned):
            inside = (cleaned.rows >= lo) & (cleaned.rows < hi)
            clean = Cleaned(part, cleaned.rows[inside] - lo, cleaned.values[inside])
        else:
            clean = cleaned[lo:hi]
        parts.append(
            _shape_rows(
                part,
                clean,
                timestamps=timestamps,
                per_hour=per_hour,
                now=now,
                quiet_share=quiet_share,
                recent=recent,
                stats=None
                if raw_stats is None
                else hourly.HourStats(raw_stats.means[lo:hi], raw_stats.variability[lo:hi]),
            )
        )
    if len(parts) == 1:
        return parts[0]
    return TenantShape(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(TenantShape))
    )


def _finite_max(grid: Float32Array) -> Float32Array:
    """Each row's highest finite value (-inf, NaN or +inf where it has none: read as "none").

    fmax skips NaN without a masked copy of the grid; the rows it cannot answer as the
    masked maximum would (+inf ignored there; a zero, whose sign the two reductions may
    pick differently) are taken again the masked way."""
    top: Float32Array = np.fmax.reduce(grid, axis=1)
    redo = np.flatnonzero((top == np.inf) | (top == 0))
    if len(redo):
        part = grid[redo]
        top[redo] = np.where(np.isfinite(part), part, -np.inf).max(axis=1)
    return top


def _shape_rows(
    raw: AnyFloatArray,
    cleaned: AnyFloatArray | Cleaned,
    *,
    timestamps: FloatArray,
    per_hour: int,
    now: float,
    quiet_share: float,
    recent: float,
    stats: hourly.HourStats | None,
) -> TenantShape:
    """tenant_shape of a chunk of rows (at least one whole hour)."""
    n, t = raw.shape
    hours = t // per_hour
    # Variability of raw demand around its hour means (float32: a ratio, 2 digits matter).
    if stats is None:
        stats = hourly.means_and_variability(raw, per_hour)
    variability = stats.variability
    # Levels of cleaned demand: hours, then days (24 hours, newest first).
    means = _cleaned_means(raw, cleaned, stats.means, per_hour)
    # The highest hour of the window (read before the day levels sort `means` in place).
    top_all = _finite_max(means)
    ends = float(timestamps[-1]) - _HOUR * np.arange(hours)[::-1]  # end of each hour
    last = as_slice(ends > now - recent)  # the last hours: a view, not a copy
    if isinstance(last, slice) or last.any():
        part = means[:, last]
        recent_top = _finite_max(part)
    else:
        recent_top = np.full(n, -np.inf)
    recent_peak = np.where(np.isfinite(recent_top), recent_top, np.nan)
    days = hours // 24
    levels = np.full((n, max(days, 1)), -np.inf)
    if days:
        # Every day's hours as one row each (n x days rows of 24), sorted in one call, in
        # place: `means` is ours and read no more. Reversed so that column 0 is the last
        # day. An empty day: NaN, then -inf.
        daily = np.ascontiguousarray(means[:, hours - days * 24 :]).reshape(n * days, 24)
        rows = SortedRows(daily, daily)
        level = rows.percentile(_DAY_LEVEL_PERCENTILE).reshape(n, days)[:, ::-1]
        levels[:, :days] = np.where(np.isfinite(level), level, -np.inf)
    top = levels.max(axis=1)
    peak = np.where(np.isfinite(top), top, np.nan)
    with np.errstate(invalid="ignore"):
        reached = levels >= quiet_share * top[:, None]
    first = np.argmax(reached, axis=1)  # newest day that reached it
    quiet = np.where(np.isfinite(top) & reached.any(axis=1), first * _DAY, 0.0)
    growth = np.zeros(n)
    if days >= 3:
        d0, d1, d2 = levels[:, 0], levels[:, 1], levels[:, 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            grew = (d0 > d1) & (d1 > d2) & (d2 > 0)
            rate = np.sqrt(np.where(grew, d0 / np.where(grew, d2, 1.0), 1.0)) - 1.0
        # NaN: no growth (0); +-inf are clipped as nan_to_num's huge finite values would be.
        growth = np.clip(np.where(np.isnan(rate), 0.0, rate), 0.0, 1.0)
    top_hour = np.where(np.isfinite(top_all), top_all, np.nan)
    return TenantShape(variability, peak, quiet, recent_peak, growth, top_hour)
