"""NaN-aware statistics over (tenants, time) arrays, vectorised over tenants.

Percentiles sort a float32 copy: sorting is the hot spot of the engine and float32 sorts ~5x
faster; 7 significant digits are far finer than the 2-digit rounding applied to limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine.usage import AnyFloatArray, FloatArray

IntArray = npt.NDArray[np.int64]
F = TypeVar("F", np.float32, np.float64)


class SortedRows:
    """Rows sorted ascending with NaN last, and the count of finite values per row."""

    def __init__(self, values: AnyFloatArray) -> None:
        # Sources hand over NaN for missing points (never inf); NaN sorts last.
        self.sorted = np.sort(np.asarray(values, dtype=np.float32), axis=1)
        self.counts: IntArray = (self.sorted.shape[1] - np.isnan(self.sorted).sum(axis=1)).astype(
            np.int64
        )

    def percentile(self, q: float) -> FloatArray:
        """Linear-interpolated q-th percentile (0-100) per row; NaN for empty rows."""
        n = self.counts
        out = np.full(n.shape, np.nan)
        has = n > 0
        if not has.any():
            return out
        pos = (q / 100.0) * (np.maximum(n, 1) - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        frac = pos - lo
        rows = np.arange(len(n))
        lo_v = self.sorted[rows, lo].astype(np.float64)
        hi_v = self.sorted[rows, hi].astype(np.float64)
        out[has] = (lo_v + (hi_v - lo_v) * frac)[has]
        return out

    def percentiles(self, qs: Sequence[float]) -> list[FloatArray]:
        return [self.percentile(q) for q in qs]

    def maximum(self) -> FloatArray:
        return self.percentile(100.0)


def moving_average(values: AnyFloatArray, window: int) -> FloatArray:
    """Trailing NaN-aware moving average over `window` points (a point's own and earlier ones).

    NaN where the window holds no finite value."""
    if window <= 1:
        same: FloatArray = np.asarray(values, dtype=np.float64)
        return same
    finite = np.isfinite(values)
    filled = np.where(finite, values, 0.0)
    csum = np.cumsum(filled, axis=1)
    ccount = np.cumsum(finite, axis=1)
    csum[:, window:] = csum[:, window:] - csum[:, :-window].copy()
    ccount[:, window:] = ccount[:, window:] - ccount[:, :-window].copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.asarray(csum / ccount, dtype=np.float64)
    out[ccount == 0] = np.nan
    return out


def history_seconds(values: AnyFloatArray, timestamps: FloatArray) -> FloatArray:
    """Span between the first and the last finite point per row, plus one step; 0 when empty."""
    if values.shape[1] == 0:
        return np.zeros(values.shape[0])
    finite = np.isfinite(values)
    any_finite = finite.any(axis=1)
    first = np.argmax(finite, axis=1)
    last = values.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
    step = float(timestamps[1] - timestamps[0]) if len(timestamps) > 1 else 0.0
    span = timestamps[last] - timestamps[first] + step
    return np.where(any_finite, span, 0.0)


def nanmean_rows(values: FloatArray) -> FloatArray:
    finite = np.isfinite(values)
    count = finite.sum(axis=1)
    total = np.where(finite, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def block_means(values: FloatArray, block: int) -> FloatArray:
    """Means of consecutive blocks of `block` points per row (last partial block included)."""
    n, t = values.shape
    nblocks = -(-t // block)
    padded = np.full((n, nblocks * block), np.nan)
    padded[:, :t] = values
    shaped = padded.reshape(n, nblocks, block)
    finite = np.isfinite(shaped)
    count = finite.sum(axis=2)
    total = np.where(finite, shaped, 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def centred_nanmean(values: npt.NDArray[F], window: int) -> npt.NDArray[F]:
    """Centred rolling mean over `window` (odd) columns ignoring NaN; NaN where the window
    holds no value. Keeps the float dtype (sums accumulate in float64)."""
    n, t = values.shape
    half = window // 2
    finite = ~np.isnan(values)
    csum = np.zeros((n, t + 1))
    ccount = np.zeros((n, t + 1))
    np.cumsum(np.where(finite, values, 0), axis=1, out=csum[:, 1:])
    np.cumsum(finite, axis=1, out=ccount[:, 1:])

    # Edge-pad the cumulative sums so both window ends are plain slices (no gathers):
    # window j covers [max(j-half, 0), min(j+half+1, t)).
    def padded(c: FloatArray) -> FloatArray:
        return np.pad(c, ((0, 0), (half, half)), mode="edge")

    cs, cc = padded(csum), padded(ccount)
    total = cs[:, 2 * half + 1 : 2 * half + 1 + t] - cs[:, :t]
    count = cc[:, 2 * half + 1 : 2 * half + 1 + t] - cc[:, :t]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    out: npt.NDArray[F] = mean.astype(values.dtype)
    return out
