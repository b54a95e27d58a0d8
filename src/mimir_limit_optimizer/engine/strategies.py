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
