"""Hour blocks of (tenants, time) arrays: each hour's mean and each tenant's variability
around its hour means, in one pass over the points, a chunk of rows at a time.

Why chunks: the point-level work (hour sums, the deviation of every point from its hour's
mean and its sum) is a handful of elementwise steps. On whole (N, T) arrays each step streams
80 MB (10,000 tenants x 2,016 points in float32) through memory and allocates a new (N, T)
temporary, whose page faults cost as much as the arithmetic; on chunks of ~128k points (512 kB)
the temporaries are reused and stay in a core's cache. Results do not depend on the chunk
size: every step works row by row.

Hour sums add the points in numpy's own pairwise order (`np.add.reduce`'s), on strided views
of the hour's points: `blocks.sum(axis=2)` makes one short reduction call per hour and costs
3x more, and a matrix product rounds differently. Same bits, one third of the time.

The compiled hour pass (`_point_passes.c`, engine/compiled.py) does the same steps in one
sweep over each row, with the same bits, in about a third of the time again (13-17 against
47-64 ms a limit at 10,000 tenants x 2,016 points); this numpy path is its fallback where no
compiler built it, and what it is tested against (tests/test_point_passes.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine import compiled as compiled_passes
from mimir_limit_optimizer.engine.stats import SortedRows
from mimir_limit_optimizer.engine.usage import AnyFloatArray, FloatArray

Float32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
# Points per chunk of rows: 512 kB of float32, a few such buffers fit a core's L2 cache (at
# 10,000 x 2,016: 55-60 ms for the hour variability against 59-62 with 1 MB chunks).
CHUNK_POINTS = 1 << 17
# Mean absolute deviation x sqrt(pi/2) = standard deviation for normal noise.
MAD_TO_SIGMA = 1.2533
# numpy's pairwise summation: 8 accumulators up to this many terms, halves above it.
_PAIRWISE_BLOCK = 128
_UNROLL = 8


def points_per_hour(step: float) -> int:
    """Points of an hour at `step` seconds (at least one): the engine's hour blocks."""
    return max(1, round(3600.0 / step))


def _pairwise(blocks: npt.NDArray[Any], lo: int, n: int) -> npt.NDArray[Any]:
    """Sum of blocks[..., lo:lo+n] over the last axis, added in the order numpy's pairwise
    summation adds a contiguous run (numpy/_core/src/umath/loops_utils.h.src), so the result
    has the same bits as `blocks.sum(axis=-1)`."""
    if n < _UNROLL:
        total: npt.NDArray[Any] = blocks[..., lo] + blocks.dtype.type(0)  # numpy starts at 0
        for i in range(lo + 1, lo + n):
            total += blocks[..., i]
        return total
    if n <= _PAIRWISE_BLOCK:
        acc = [blocks[..., lo + j] for j in range(_UNROLL)]
        whole = n - n % _UNROLL
        for i in range(_UNROLL, whole, _UNROLL):
            acc = [acc[j] + blocks[..., lo + i + j] for j in range(_UNROLL)]
        pairs = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        total = pairs
        for i in range(lo + whole, lo + n):
            total += blocks[..., i]
        return total
    half = n // 2
    half -= half % _UNROLL
    total = _pairwise(blocks, lo, half)
    total += _pairwise(blocks, lo + half, n - half)
    return total


def hour_means(blocks: Float32Array) -> Float32Array:
    """(rows, hours, per_hour) points -> (rows, hours) means ignoring NaN (NaN: an empty
    hour). Hours with a gap are summed again without it; no warning for empty hours."""
    per_hour = blocks.shape[2]
    means = _pairwise(blocks, 0, per_hour)
    means /= np.float32(per_hour)
    gappy = np.flatnonzero(np.isnan(means).any(axis=1))
    if len(gappy):
        rows = blocks[gappy]
        gaps = np.isnan(rows)
        total = _pairwise(np.where(gaps, np.float32(0), rows), 0, per_hour)
        count = per_hour - np.count_nonzero(gaps, axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):  # an empty hour: 0/0 = NaN
            means[gappy] = total / count
    return means


def _blocks(values: AnyFloatArray, lo: int, hi: int, hours: int, per_hour: int) -> Float32Array:
    """Rows lo:hi, whole hours counted back from the last point, as float32 (rows, H, P)."""
    t = values.shape[1]
    part = np.asarray(values[lo:hi, t - hours * per_hour :], dtype=np.float32)
    return part.reshape(hi - lo, hours, per_hour)


def means_of(values: AnyFloatArray, per_hour: int) -> Float32Array:
    """(N, H) hour means over whole hours counted back from the last point."""
    n, t = values.shape
    hours = t // per_hour
    out = np.empty((n, hours), dtype=np.float32)
    rows = max(1, CHUNK_POINTS // max(hours * per_hour, 1))
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        out[lo:hi] = hour_means(_blocks(values, lo, hi, hours, per_hour))
    return out


@dataclass(frozen=True)
class HourStats:
    means: Float32Array  # (N, H) hour means, oldest first; NaN: an empty hour
    variability: FloatArray  # (N,) see `means_and_variability`


def means_and_variability(
    values: AnyFloatArray,
    per_hour: int,
    out: Float32Array | None = None,
    *,
    compiled: bool = True,
) -> HourStats:
    """Hour means, and each row's mean absolute deviation of its points from their hour's
    mean, relative to that mean and capped at 1 (100%), as a standard deviation
    (x MAD_TO_SIGMA). Points that are NaN, or whose hour's mean is 0 or NaN, do not count;
    a row with no point that counts has NaN.

    Chunks are done as if they had no gap; a row with one (or with an hour whose mean is 0)
    comes out with a NaN sum and is done again at the end, with the rows like it, in one
    batch: most rows have none, and a check per chunk costs more than the few rows.

    `out`: a float32 (N, H) array to write the hour means into (the engine's reused buffer:
    a new 67 MB grid per limit at 100,000 tenants costs its page faults each time).

    `compiled`: use the compiled hour pass when it is there and the arrays are float32 with
    contiguous rows (False: the numpy path, which gives the same bits)."""
    n, t = values.shape
    hours = t // per_hour
    points = hours * per_hour
    means = out if out is not None else np.empty((n, hours), dtype=np.float32)
    total = np.empty(n, dtype=np.float32)
    kernel = compiled_passes.point_passes() if compiled else None
    if kernel is not None and points and compiled_passes.fits(values, means):
        kernel.hour_pass(values[:, t - points :], per_hour, means, total)
    else:
        rows = max(1, CHUNK_POINTS // max(points, 1))
        deviation = np.empty((min(rows, n), hours, per_hour), dtype=np.float32)
        _numpy_pass(values, per_hour, means, total, deviation)
    return with_gaps_counted(values, per_hour, means, total)


def sorted_with_hours(
    values: AnyFloatArray,
    qs: list[float],
    per_hour: int,
    out: Float32Array,
    *,
    compiled: bool = True,
) -> tuple[SortedRows, HourStats]:
    """`SortedRows(values, only=qs)` and `means_and_variability(values, per_hour, out)`, for
    values of whole hours, in one sweep where the compiled passes are there: each row is read
    from memory once for its sort and its hour pass (6 ms a limit less at 10,000 tenants).
    The same results as the two calls, which are the fallback."""
    n, t = values.shape
    wanted = list(dict.fromkeys(qs))
    kernel = compiled_passes.point_passes() if compiled else None
    sort_pass = getattr(kernel, "sorted_percentiles", None)  # see stats._sorted_chunks
    if (
        sort_pass is None
        or not n
        or not t
        or t % per_hour
        or out.shape != (n, t // per_hour)
        or not compiled_passes.fits(values, out)
        or not all(0 <= q <= 100 for q in wanted)
    ):
        rows = SortedRows(values, only=wanted, compiled=compiled)
        return rows, means_and_variability(values, per_hour, out, compiled=compiled)
    counts: IntArray = np.empty(n, dtype=np.int64)
    flat = np.empty(len(wanted) * n)
    total = np.empty(n, dtype=np.float32)
    qs_array = np.asarray(wanted, dtype=np.float64)
    sort_pass(values, qs_array, counts, flat, per_hour, out, total)
    found = [flat[k * n : (k + 1) * n] for k in range(len(wanted))]
    rows = SortedRows.from_percentiles(values, counts, dict(zip(wanted, found, strict=True)))
    return rows, with_gaps_counted(values, per_hour, out, total)


def with_gaps_counted(
    values: AnyFloatArray, per_hour: int, means: Float32Array, total: Float32Array
) -> HourStats:
    """The hour stats from the hour pass's means and sums of deviations, done as if no row
    had a gap: rows whose sum is NaN (a gap, or an hour whose mean is 0: 0/0) are done again
    counting only what is there."""
    n, t = values.shape
    hours = t // per_hour
    points = hours * per_hour
    count = np.full(n, points, dtype=np.int64)
    redo = np.flatnonzero(np.isnan(total))
    rows = max(1, CHUNK_POINTS // max(points, 1))
    if len(redo):
        deviation = np.empty((min(rows, len(redo)), hours, per_hour), dtype=np.float32)
    for lo in range(0, len(redo), rows):
        chosen = redo[lo : lo + rows]
        blocks = np.asarray(values[chosen, t - points :], dtype=np.float32).reshape(
            len(chosen), hours, per_hour
        )
        chunk_means = hour_means(blocks)
        means[chosen] = chunk_means
        flat = _deviation(blocks, chunk_means, deviation[: len(chosen)]).reshape(
            len(chosen), points
        )
        missing = np.isnan(flat)
        count[chosen] = points - np.count_nonzero(missing, axis=1)
        total[chosen] = np.where(missing, np.float32(0), flat).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        variability: FloatArray = np.where(
            count > 0, MAD_TO_SIGMA * total.astype(np.float64) / count, np.nan
        )
    return HourStats(means, variability)


def _numpy_pass(
    values: AnyFloatArray,
    per_hour: int,
    means: Float32Array,
    total: Float32Array,
    deviation: Float32Array,
) -> None:
    """Hour means into `means` and each row's sum of deviations into `total` (NaN for a row
    with a gap), a chunk of `len(deviation)` rows at a time."""
    n = values.shape[0]
    rows, hours = max(1, deviation.shape[0]), deviation.shape[1]  # no rows: no chunk
    points = hours * per_hour
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        blocks = _blocks(values, lo, hi, hours, per_hour)
        chunk_means = _pairwise(blocks, 0, per_hour)
        chunk_means /= np.float32(per_hour)
        means[lo:hi] = chunk_means
        dev = deviation[: hi - lo]
        _deviation(blocks, chunk_means, dev)
        dev.reshape(hi - lo, points).sum(axis=1, out=total[lo:hi])


def _deviation(blocks: Float32Array, means: Float32Array, out: Float32Array) -> Float32Array:
    """|point / its hour's mean - 1|, capped at 1, into `out`: clip then abs is the same
    value as abs then minimum (NaN stays NaN), and numpy's clip loop is the faster one."""
    # Broadcast over the hour's points: the means repeated first for a contiguous divide
    # measured 46 against 42 ms a limit at 10,000 tenants.
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(blocks, means[:, :, None], out=out)
    out -= np.float32(1)
    np.clip(out, np.float32(-1), np.float32(1), out=out)
    np.abs(out, out=out)
    return out
