"""NaN-aware statistics over (tenants, time) arrays, vectorised over tenants.

Percentiles sort a float32 copy: sorting is the hot spot of the engine and float32 sorts ~5x
faster; 7 significant digits are far finer than the 2-digit rounding applied to limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine import compiled as compiled_passes
from mimir_limit_optimizer.engine.usage import AnyFloatArray, FloatArray

IntArray = npt.NDArray[np.int64]
F = TypeVar("F", np.float32, np.float64)


class SortedRows:
    """Rows sorted ascending with NaN last, and the count of finite values per row (made with
    `only`: the named percentiles read from the sort chunk by chunk, the sort not kept).

    The sort is the engine's most expensive step (one per usage-driven limit), so it is shared:
    `patched` answers for an array that differs from this one in a few rows (usage vs. demand
    where discards were added, demand vs. spike-cleaned demand) by sorting only those rows."""

    def __init__(
        self,
        values: AnyFloatArray,
        buffer: npt.NDArray[np.float32] | None = None,
        *,
        only: Sequence[float] | None = None,
        compiled: bool = True,
    ) -> None:
        """`buffer`: a float32 array of the same shape to sort in (it becomes `sorted`; it may
        be `values` itself when the caller no longer needs them).

        `only`: the percentiles that will be asked for. The rows are then sorted a chunk at a
        time in a small buffer that stays in cache, those percentiles and the counts read
        from it, and no sorted (N, T) array is kept: at 100,000 tenants that is 800 MB less,
        and no new memory to touch (whose first touch cost seconds). A percentile asked for
        later still gets an answer: `values` are then sorted whole (unless `release`d).

        `compiled`: False takes the numpy path of `only` (the same bits)."""
        self._values: AnyFloatArray | None = None
        self._patch: tuple[IntArray, SortedRows] | None = None
        # Whose sort and cache a patch shares; None: its own (never `self`: a reference cycle
        # would keep the sort, and the engine's reused buffer, alive until the next GC).
        self._owner: SortedRows | None = None
        self._cache: dict[float, FloatArray] = {}
        if only is not None and values.ndim == 2 and values.size:
            wanted = list(dict.fromkeys(only))
            counts, found = _sorted_chunks(values, wanted, compiled=compiled)
            self._read(values, counts, dict(zip(wanted, found, strict=True)))
            return
        if buffer is not None and buffer.shape == values.shape and buffer.dtype == np.float32:
            if buffer is not values:  # `values` itself: sorted in place
                np.copyto(buffer, values)
            buffer.sort(axis=1)
            self.sorted = buffer
        else:
            self.sorted = np.sort(np.asarray(values, dtype=np.float32), axis=1)
        self.counts = _counts(self.sorted)

    @classmethod
    def from_percentiles(
        cls, values: AnyFloatArray, counts: IntArray, found: dict[float, FloatArray]
    ) -> SortedRows:
        """What `SortedRows(values, only=list(found))` is, from its counts and percentiles
        read elsewhere (engine/hourly.py, `sorted_with_hours`: in the same sweep as the hour
        pass)."""
        out = cls.__new__(cls)
        out._patch, out._owner, out._cache = None, None, {}
        out._read(values, counts, found)
        return out

    def _read(
        self, values: AnyFloatArray, counts: IntArray, found: dict[float, FloatArray]
    ) -> None:
        self.sorted = np.zeros((0, 0), dtype=np.float32)  # not kept
        self.counts = counts
        self._cache.update(found)
        self._values = values

    def release(self) -> None:
        """Let go of the values kept for percentiles not asked for in advance (`only`)."""
        self._values = None

    def patched(self, rows: IntArray, values: AnyFloatArray) -> SortedRows:
        """These rows, except `rows`, whose values are `values` (len(rows), T): shares this
        sort and sorts only the replaced rows. Patches do not stack (one per sort)."""
        if len(rows) == 0:
            return self
        if self._patch is not None:
            raise ValueError("SortedRows.patched: this object is already a patch")
        out = SortedRows.__new__(SortedRows)
        out.sorted = self.sorted
        replaced = SortedRows(values)
        out.counts = self.counts.copy()
        out.counts[rows] = replaced.counts
        out._patch = (np.asarray(rows, dtype=np.int64), replaced)
        out._owner = self
        out._cache = {}
        return out

    def percentile(self, q: float) -> FloatArray:
        """Linear-interpolated q-th percentile (0-100) per row; NaN for empty rows."""
        return self.percentiles([q])[0]

    def percentiles(self, qs: Sequence[float]) -> list[FloatArray]:
        """Several percentiles, read from the sorted rows in one gather (a row's values are
        read together: at 100,000 rows of 8 kB each, every separate read of a column is a
        page-table walk per row) and remembered by the sort's owner, so that the statistics,
        the strategy and the spike filter reading the same sort read it once. New arrays."""
        owner = self._owner or self
        missing = [q for q in dict.fromkeys(qs) if q not in owner._cache]
        if missing:
            if owner._values is not None:  # sorted in chunks: now whole, for these
                owner.sorted = np.sort(np.asarray(owner._values, dtype=np.float32), axis=1)
                owner._values = None
            elif owner.sorted.shape != (len(owner.counts), owner.sorted.shape[1]):
                raise ValueError(f"SortedRows: percentiles {missing} were not asked for")
            found = _percentiles(owner.sorted, owner.counts, missing)
            owner._cache.update(zip(missing, found, strict=True))
        out = [owner._cache[q].copy() for q in qs]
        if self._patch is not None:  # the owner's counts do not hold for these rows
            rows, replaced = self._patch
            for values, theirs in zip(out, replaced.percentiles(qs), strict=True):
                values[rows] = theirs
        return out

    def maximum(self) -> FloatArray:
        return self.percentile(100.0)


# Points per chunk of `SortedRows(..., only=...)`: 2M (8 MB of float32, 1,040 rows of a week
# at 5 minutes). A row's sort stays within its 8 kB; larger chunks only save calls (at
# 20,000 rows: 106 ms with 2M-point chunks, 111 with 1M, 118 with 512k).
_SORT_POINTS = 1 << 21


def _counts(ordered: npt.NDArray[np.float32]) -> IntArray:
    """Finite values per sorted row. Sources hand over NaN for missing points (never inf);
    NaN sorts last, so only rows whose last element is NaN need counting (most have none)."""
    n, t = ordered.shape
    counts: IntArray = np.full(n, t, dtype=np.int64)
    if t:
        gappy = np.flatnonzero(np.isnan(ordered[:, -1]))
        if len(gappy):
            counts[gappy] = t - np.isnan(ordered[gappy]).sum(axis=1)
    return counts


def _sorted_chunks(
    values: AnyFloatArray, qs: list[float], *, compiled: bool = True
) -> tuple[IntArray, list[FloatArray]]:
    """Counts and percentiles `qs` of every row, sorting a chunk of rows at a time.

    `compiled`: the compiled sort pass when it is there (each row sorted on its own in L1
    with numpy's sort, no chunk copies: 40 against 52 ms a limit at 10,000 tenants) and the
    values are float32 with contiguous rows; False: the numpy path, which gives the same
    bits."""
    n, t = values.shape
    kernel = compiled_passes.point_passes() if compiled else None
    # Absent from a module built without numpy 2's headers (setup.py).
    sort_pass = getattr(kernel, "sorted_percentiles", None)
    if sort_pass is not None and compiled_passes.fits(values) and all(0 <= q <= 100 for q in qs):
        counts: IntArray = np.empty(n, dtype=np.int64)
        flat = np.empty(len(qs) * n)
        sort_pass(values, np.asarray(qs, dtype=np.float64), counts, flat)
        return counts, [flat[k * n : (k + 1) * n] for k in range(len(qs))]
    rows = max(1, _SORT_POINTS // t)
    scratch = np.empty((min(rows, n), t), dtype=np.float32)
    counts = np.empty(n, dtype=np.int64)
    found = [np.empty(n) for _ in qs]
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        part = scratch[: hi - lo]
        np.copyto(part, values[lo:hi])
        part.sort(axis=1)
        counts[lo:hi] = _counts(part)
        for out, value in zip(found, _percentiles(part, counts[lo:hi], qs), strict=True):
            out[lo:hi] = value
    return counts, found


def _percentiles(
    ordered: npt.NDArray[np.float32], counts: IntArray, qs: Sequence[float]
) -> list[FloatArray]:
    n = counts
    outs = [np.full(n.shape, np.nan) for _ in qs]
    has = n > 0
    if not has.any() or not len(qs):
        return outs
    below = np.maximum(n, 1) - 1
    last = np.maximum(n - 1, 0)
    columns, fractions = [], []
    for q in qs:
        # -0.0 as 0.0: its frac would be -0.0, and `lo + (hi - lo) x -0.0` of two zeros would
        # keep the sign of whichever zero the sort put first.
        pos = ((q + 0.0) / 100.0) * below
        lo = np.floor(pos).astype(np.int64)
        columns += [lo, np.minimum(lo + 1, last)]
        fractions.append(pos - lo)
    picked = _gather(ordered, counts, columns)
    for k, (out, frac) in enumerate(zip(outs, fractions, strict=True)):
        lo_v, hi_v = picked[:, 2 * k], picked[:, 2 * k + 1]
        out[has] = (lo_v + (hi_v - lo_v) * frac)[has]
    return outs


def _gather(
    ordered: npt.NDArray[np.float32], counts: IntArray, columns: list[IntArray]
) -> FloatArray:
    """(N, len(columns)) float64: row i's values at columns[k][i]. Rows without a gap (most)
    read the same columns: one column gather for them, a per-row gather only for the rest."""
    t = ordered.shape[1]
    full = counts == t
    if not full.any():
        return np.take_along_axis(ordered, np.stack(columns, axis=1), axis=1).astype(np.float64)
    first = int(np.argmax(full))  # a row without a gap: its columns are everyone's
    picked: FloatArray = ordered[:, [int(c[first]) for c in columns]].astype(np.float64)
    partial = np.flatnonzero(~full)
    if len(partial):
        index = np.stack([c[partial] for c in columns], axis=1)
        picked[partial] = ordered[partial[:, None], index]
    return picked


def moving_average(values: AnyFloatArray, window: int) -> FloatArray:
    """Trailing NaN-aware moving average over `window` points (a point's own and earlier ones).

    NaN where the window holds no finite value. Sums `window` shifted slices in the input's
    float type (no (N, T) cumulative sums, whose row-wise passes cost several times more);
    rows without gaps divide by a count that depends only on the distance to the start."""
    if window <= 1:
        same: FloatArray = np.asarray(values, dtype=np.float64)
        return same
    finite = np.isfinite(values)
    filled = np.where(finite, values, 0).astype(values.dtype, copy=False)
    total = filled.copy()
    for k in range(1, min(window, filled.shape[1])):
        total[:, k:] += filled[:, :-k]
    edge = np.minimum(np.arange(filled.shape[1]) + 1, window)
    out: FloatArray = np.asarray(total / edge, dtype=np.float64)
    gappy = np.flatnonzero(~finite.all(axis=1))
    if len(gappy):
        ones = finite[gappy].astype(np.int32)
        count = ones.copy()
        for k in range(1, min(window, ones.shape[1])):
            count[:, k:] += ones[:, :-k]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[gappy] = np.where(count > 0, total[gappy] / count, np.nan)
    return out


def history_seconds(
    values: AnyFloatArray, timestamps: FloatArray, counts: IntArray | None = None
) -> FloatArray:
    """Span between the first and the last finite point per row, plus one step; 0 when empty.

    `counts` (finite points per row, e.g. SortedRows.counts) lets full rows skip the scan."""
    n, t = values.shape
    if t == 0:
        return np.zeros(n)
    step = float(timestamps[1] - timestamps[0]) if t > 1 else 0.0
    if counts is not None:
        out = np.full(n, float(timestamps[-1] - timestamps[0]) + step)
        partial = np.flatnonzero(counts < t)
        if len(partial):
            out[partial] = history_seconds(values[partial], timestamps)
        return out
    finite = np.isfinite(values)
    any_finite = finite.any(axis=1)
    first = np.argmax(finite, axis=1)
    last = t - 1 - np.argmax(finite[:, ::-1], axis=1)
    span = timestamps[last] - timestamps[first] + step
    result: FloatArray = np.where(any_finite, span, 0.0)
    return result


def centred_nanmean(
    values: npt.NDArray[F], window: int, *, compiled: bool = True
) -> npt.NDArray[F]:
    """Centred rolling mean over `window` (odd) columns ignoring NaN; NaN where the window
    holds no value. Keeps the float dtype. Sums `window` shifted slices: for the small
    windows used here (hours of a baseline) that beats cumulative sums and needs no gathers.
    Rows without NaN (nearly all) divide by a count that depends only on the distance to
    the edges; only rows with gaps count their points.

    `compiled`: the compiled pass when it is there and the values are float32 with
    contiguous rows (each row in L1 throughout); False: this numpy path, which gives the
    same bits."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"centred_nanmean: an odd window of at least 1 is needed, not {window}")
    # Wider than 2 x T + 1 adds only zeros of the padding and covers the whole row from every
    # column: the same sums and counts (a window from a huge setting would pad without end).
    window = min(window, 2 * values.shape[1] + 1)
    kernel = compiled_passes.point_passes() if compiled else None
    if kernel is not None and compiled_passes.fits(values):
        means = np.empty(values.shape, dtype=values.dtype)
        kernel.centred_means(values, window, means)
        return means
    n, t = values.shape
    half = window // 2
    finite = ~np.isnan(values)
    gappy = np.flatnonzero(~finite.all(axis=1))
    filled = np.empty((n, t + 2 * half), dtype=values.dtype)
    filled[:, :half] = 0
    filled[:, half + t :] = 0
    # A plain copy, then zeros in the few rows with gaps (a masked copy of every row costs
    # several times more).
    np.copyto(filled[:, half : half + t], values)
    if len(gappy):
        inner = filled[gappy, half : half + t]
        inner[~finite[gappy]] = 0
        filled[gappy, half : half + t] = inner
    total = filled[:, :t].copy()
    for k in range(1, window):
        total += filled[:, k : k + t]
    columns = np.arange(t)
    edge = np.minimum(columns + half, t - 1) - np.maximum(columns - half, 0) + 1
    mean = total
    mean /= edge.astype(values.dtype)
    if len(gappy):
        counts = np.zeros((len(gappy), t + 2 * half), dtype=values.dtype)
        counts[:, half : half + t] = finite[gappy]
        count = counts[:, :t].copy()
        for k in range(1, window):
            count += counts[:, k : k + t]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean[gappy] = np.where(count > 0, total[gappy] * edge / np.maximum(count, 1), np.nan)
    out: npt.NDArray[F] = mean.astype(values.dtype, copy=False)
    return out
