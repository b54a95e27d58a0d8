"""Strategies turn a tenant's cleaned demand into a raw value (before buffers and clamps).

(a) percentile: the seed's semantics — the p-th percentile of demand over the analysis window,
    optionally of its moving average, optionally at least the highest sustained peak.
(b) histogram: VPA-like decaying histogram — recent points weigh more (half-life), the target
    percentile of the weighted distribution, with confidence growing with history length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mimir_limit_optimizer.config.models import HistogramSettings, TrendAnalysis
from mimir_limit_optimizer.engine.stats import SortedRows, moving_average
from mimir_limit_optimizer.engine.usage import AnyFloatArray, FloatArray

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
# Rows per chunk: the 1 h means are float64 (N, T); chunks keep that temporary small.
_CHUNK_ROWS = 4096
# (p90 - p10) of a normal distribution is 2.563 standard deviations.
_P10_P90_SIGMAS = 2.563


# A day's level: its 70th percentile. Robust to what lasts less than 30% of a day (an incident,
# a rolled-back cardinality blast of a few hours), close to the daily peak of a daily cycle.
_DAY_LEVEL_PERCENTILE = 70.0


@dataclass(frozen=True)
class TenantShape:
    """Per tenant, over the analysis window, from days counted back from `now`:

    - `variability`: short-term coefficient of variation: the spread of raw demand around its
      trailing 1 h mean, (p90 - p10) of demand / that mean in standard deviations (robust: a
      one-off incident moves p90 little; bursts several times a day do);
    - `peak`: the remembered level: the highest day level (a day's 70th percentile of
      cleaned demand) in the window;
    - `quiet_for`: seconds since the end of the last day whose level reached
      `quiet_share` x `peak` (0 when the last day did);
    - `recent_peak`: the highest 1 h mean of cleaned demand within the last `recent` seconds;
    - `growth`: growth per day of the day level over the last 3 days, when each day grew
      (else 0)."""

    variability: FloatArray
    peak: FloatArray
    quiet_for: FloatArray
    recent_peak: FloatArray
    growth: FloatArray


def tenant_shape(
    raw: AnyFloatArray,
    cleaned: AnyFloatArray,
    *,
    timestamps: FloatArray,
    step: float,
    now: float,
    quiet_share: float,
    recent: float,
) -> TenantShape:
    n, t = cleaned.shape
    cv, recent_peak = np.full(n, np.nan), np.full(n, np.nan)
    if t == 0:
        return TenantShape(cv, cv.copy(), np.zeros(n), recent_peak, np.zeros(n))
    window = max(1, round(_HOUR / step))
    last = timestamps > now - recent
    for lo in range(0, n, _CHUNK_ROWS):
        rows = slice(lo, min(n, lo + _CHUNK_ROWS))
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.asarray(raw[rows], dtype=np.float64) / moving_average(raw[rows], window)
        ratio = np.where(np.isfinite(ratio), ratio, 1.0)  # gaps and zeros: neutral
        # One float32 sort (the engine's SortedRows) instead of a float64 partition: 2-4x faster.
        p10, p90 = SortedRows(ratio).percentiles([10.0, 90.0])
        cv[rows] = (p90 - p10) / _P10_P90_SIGMAS
        if last.any():
            level = moving_average(cleaned[rows][:, last], window)
            top = np.where(np.isfinite(level), level, -np.inf).max(axis=1)
            recent_peak[rows] = np.where(np.isfinite(top), top, np.nan)
    # Day levels, newest first: day k covers (now - (k+1) days, now - k days].
    days = int(min(np.ceil((now - float(timestamps[0]) + step) / _DAY), 64))
    levels = np.full((n, max(days, 1)), np.nan)
    for k in range(days):
        inside = (timestamps > now - (k + 1) * _DAY) & (timestamps <= now - k * _DAY)
        if np.count_nonzero(inside) * step >= _DAY / 2:  # half a day at least
            levels[:, k] = SortedRows(cleaned[:, inside]).percentile(_DAY_LEVEL_PERCENTILE)
    filled = np.where(np.isfinite(levels), levels, -np.inf)
    top = filled.max(axis=1)
    peak = np.where(np.isfinite(top), top, np.nan)
    with np.errstate(invalid="ignore"):
        reached = filled >= quiet_share * top[:, None]
    first = np.argmax(reached, axis=1)  # newest day that reached it
    quiet = np.where(np.isfinite(top) & reached.any(axis=1), first * _DAY, 0.0)
    growth = np.zeros(n)
    if days >= 3:
        d0, d1, d2 = filled[:, 0], filled[:, 1], filled[:, 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            grew = (d0 > d1) & (d1 > d2) & (d2 > 0)
            rate = np.sqrt(np.where(grew, d0 / np.where(grew, d2, 1.0), 1.0)) - 1.0
        growth = np.clip(np.nan_to_num(rate, nan=0.0), 0.0, 1.0)
    return TenantShape(cv, peak, quiet, recent_peak, growth)
