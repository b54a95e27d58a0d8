"""Transient spikes: found, reported, and kept out of the baseline.

A point is a spike when it exceeds `threshold` x a robust baseline: the centred rolling median
of hourly means. A run of spike points longer than `max_duration` is a new level (a real change
of demand), not a spike, and stays in. A spike never raises a limit by itself: the strategies see
the cleaned series, where spike points are replaced by the baseline.

Works in hourly blocks so the baseline is never expanded to the full (N, T) grid, compares
point by point only the rows whose maximum could be a spike, and returns the cleaned demand as
a patch of the rows that had spikes (no (N, T) copy); float32 halves the memory traffic (values
are rounded to 2 digits later).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine import compiled as compiled_passes
from mimir_limit_optimizer.engine.hourly import means_of, points_per_hour
from mimir_limit_optimizer.engine.stats import centred_nanmean

BoolArray = npt.NDArray[np.bool_]
Float32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
# Points compared per batch in the row scan: 256k points = 1 MB of float32, in a core's cache;
# large enough to amortise numpy calls.
_BATCH_POINTS = 1 << 18
# Points per chunk of rows of the whole scan (hourly grid, baseline, bound, comparisons): 1M
# points, 520 rows of a week at 5 minutes; its hourly grids are ~350 kB and stay in a core's
# cache (measured at 10,000 tenants: 35 ms a limit against 46 with 4M-point chunks).
_SCAN_POINTS = 1 << 20


def as_slice(mask: BoolArray) -> BoolArray | slice:
    """A mask that selects one run of columns as a slice: copying a column range is several
    times faster than boolean column indexing (the last day is such a run)."""
    (where,) = np.nonzero(mask)
    if len(where) and where[-1] - where[0] + 1 == len(where):
        return slice(int(where[0]), int(where[-1]) + 1)
    return mask


@dataclass(frozen=True)
class Cleaned:
    """Demand with spike points replaced by the baseline, kept as a patch: `base` everywhere
    except `rows`, whose cleaned values are `values`. Spikes touch few tenants, so the engine
    never copies the whole (N, T) array to clean them."""

    base: Float32Array  # (N, T) demand
    rows: IntArray  # tenants with spike points, ascending
    values: Float32Array  # (len(rows), T) their cleaned demand

    def columns(self, cols: BoolArray | slice, out: Float32Array | None = None) -> Float32Array:
        """Cleaned demand at these time columns (a new array, or written into `out` when it
        is a float32 array of the right shape)."""
        if not isinstance(cols, slice):
            cols = as_slice(cols)
        picked = self.base[:, cols]
        if out is not None and out.shape == picked.shape and out.dtype == np.float32:
            np.copyto(out, picked)
        else:
            out = np.array(picked, dtype=np.float32)
        if len(self.rows):
            out[self.rows] = self.values[:, cols]
        return out

    def rows_columns(self, rows: IntArray, cols: BoolArray) -> Float32Array:
        """Cleaned demand of these tenants (ascending indices) at these time columns, read
        only: a view of `base` when the rows are one run without cleaned rows among them
        (throttled tenants are often most of them: no copy of the whole array), else a
        gather of only those points."""
        span = as_slice(cols)
        if len(rows) == 0:
            return np.zeros((0, self.base[:, span].shape[1]), dtype=np.float32)
        run = rows[-1] - rows[0] == len(rows) - 1
        first, last = int(rows[0]), int(rows[-1])
        patched = np.searchsorted(self.rows, [first, last + 1])
        if run and isinstance(span, slice) and patched[0] == patched[1]:
            view = np.asarray(self.base[first : last + 1, span], dtype=np.float32)
            view.flags.writeable = False
            return view
        picked = self.base[rows, span] if isinstance(span, slice) else self.base[np.ix_(rows, span)]
        out = np.asarray(picked, dtype=np.float32)
        if len(self.rows):
            pos = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
            hit = self.rows[pos] == rows
            out[hit] = self.values[pos[hit]][:, span]
        out.flags.writeable = False
        return out

    def full(self) -> Float32Array:
        """The whole cleaned (N, T) array: `base` itself when there were no spikes."""
        if not len(self.rows):
            return self.base
        return self.columns(slice(None))


@dataclass(frozen=True)
class SpikeReport:
    cleaned: Cleaned  # the input with spike points replaced by the baseline
    count: npt.NDArray[np.int64]  # (N,) spikes (runs of spike points) per tenant
    max_ratio: npt.NDArray[np.float64]  # (N,) highest value / baseline among spikes (NaN: none)


def _runs_longer_than(mask: BoolArray, max_len: int) -> BoolArray:
    """Points of `mask` that belong to runs longer than `max_len` (per row)."""
    n, t = mask.shape
    padded = np.zeros((n, t + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)  # +1 at run start, -1 just after run end
    starts = np.flatnonzero(edges.ravel() == 1)
    ends = np.flatnonzero(edges.ravel() == -1)  # row-major order keeps starts/ends paired
    long_runs = (ends - starts) > max_len
    delta = np.zeros(n * (t + 1) + 1, dtype=np.int64)
    np.add.at(delta, starts[long_runs], 1)
    np.add.at(delta, ends[long_runs], -1)
    inside = np.cumsum(delta[:-1]).reshape(n, t + 1)[:, :t]
    return inside > 0


def _robust_level(
    hourly: Float32Array, window: int, threshold: float, *, compiled: bool = True
) -> Float32Array:
    """Centred rolling mean of hourly means, made robust: blocks above threshold x the
    current level are replaced by the level and the mean recomputed. Three rounds pull a
    spike's influence on its own baseline down to a few percent, at the cost of a few
    cumulative sums on the (tenants, hours) grid (a rolling median costs 10x more here).
    Only the rows that still have an outlier are recomputed in each round. `compiled`: as
    `centred_nanmean`'s."""
    level = centred_nanmean(hourly, window, compiled=compiled)
    rows = np.arange(hourly.shape[0])
    for round_ in range(3):
        with np.errstate(invalid="ignore"):  # every row in the first round: no gathers
            outlier = (
                hourly > level * np.float32(threshold)
                if round_ == 0
                else hourly[rows] > level[rows] * np.float32(threshold)
            )
        flagged = np.flatnonzero(outlier.any(axis=1))
        if not len(flagged):  # the common case: nothing (more) to pull down
            break
        rows, outlier = rows[flagged], outlier[flagged]
        level[rows] = centred_nanmean(
            np.where(outlier, level[rows], hourly[rows]), window, compiled=compiled
        )
    return level


def _nanmean_rows(values: Float32Array) -> Float32Array:
    """Mean of each row ignoring NaN, NaN for a row without a value: numpy's nanmean (the
    same sum and count, so the same bits) without its "Mean of empty slice" warning, which
    could only be silenced through the process-wide warnings filters (not thread-safe; the
    service runs its fast loop on its own thread)."""
    gaps = np.isnan(values)
    total = np.where(gaps, np.float32(0), values).sum(axis=1)
    count = values.shape[1] - np.count_nonzero(gaps, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # no value: 0/0 = NaN
        mean: Float32Array = (total / count).astype(np.float32)
    return mean


def _hourly(values: Float32Array, block: int, known: Float32Array | None = None) -> Float32Array:
    """(N, ceil(T / block)) means of consecutive blocks from the first point, ignoring NaN
    (NaN: no point). `known`: the whole blocks' means (hourly.means_of), when T is a
    multiple of `block` and the caller has them (the engine's hour grid of the same demand:
    one pass over the points less)."""
    n, t = values.shape
    full = t // block
    if known is not None:
        if known.shape != (n, full) or full * block != t:
            raise ValueError(f"spikes: hour means of shape {known.shape} for {values.shape}")
        return known
    means = means_of(values[:, : full * block], block)
    if full * block < t:
        tail = _nanmean_rows(values[:, full * block :])[:, None]  # all-NaN: NaN
        means = np.concatenate([means, tail], axis=1)
    return means


def _block_max(blocks: Float32Array) -> Float32Array:
    """(rows, B, block) -> (rows, B) highest point per block ignoring NaN (NaN: none), by
    `block` elementwise steps over strided views: a reduction over a short last axis makes
    one call per block and costs several times more."""
    top = blocks[..., 0].copy()
    for j in range(1, blocks.shape[-1]):
        np.fmax(top, blocks[..., j], out=top)
    return top


def _rows_above(values: Float32Array, bound: Float32Array, block: int, rows: IntArray) -> BoolArray:
    """Which of `rows` have a point above their block's bound: the highest point of each
    block against the (rows, blocks) bound (no (N, T) bound is ever built), a batch of rows
    at a time so temporaries stay small (and in cache) at 100,000 tenants."""
    t = values.shape[1]
    full = t // block
    above = np.zeros(len(rows), dtype=bool)
    batch = max(1, _BATCH_POINTS // max(t, 1))
    for lo in range(0, len(rows), batch):
        chosen = rows[lo : lo + batch]
        contiguous = len(chosen) and chosen[-1] - chosen[0] == len(chosen) - 1
        picked = values[chosen[0] : chosen[-1] + 1] if contiguous else values[chosen]
        bounds = bound[chosen]
        with np.errstate(invalid="ignore"):
            if full:
                top = _block_max(picked[:, : full * block].reshape(len(chosen), full, block))
                above[lo : lo + batch] |= (top > bounds[:, :full]).any(axis=1)
            if full * block < t:
                above[lo : lo + batch] |= (picked[:, full * block :] > bounds[:, full:]).any(axis=1)
    return above


# Below this share of (row, block) pairs whose bound is under the row's maximum, those blocks
# are read one by one (a gather of their points); above it, whole rows (_rows_above).
_SPARSE_SHARE = 0.25


def _suspects_above(
    values: Float32Array,
    bound: Float32Array,
    block: int,
    rows: IntArray,
    row_max: npt.NDArray[np.float64],
    *,
    compiled: bool = True,
) -> BoolArray:
    """_rows_above, reading only the blocks whose bound is under the row's maximum: a point
    above its block's bound is at most the row's maximum, so no other block can hold one.
    A daily cycle puts the lowest bounds at night, when the points are low too: few blocks
    (about 6% in the scale benchmark) are read instead of every point of the rows.

    `rows`: ascending, each once. `row_max`: each of those rows' maximum, at least every
    point of the row (the sort's; the caller leaves out rows whose maximum is NaN): both the
    block-by-block and the whole-row reads give the same answer only then.

    `compiled`: the whole blocks are read by the compiled pass (engine/compiled.py), when it
    is there and the arrays are float32 with contiguous rows: the same answer, without the
    (rows x blocks) grids and gathers that cost numpy about twice the reading itself."""
    t = values.shape[1]
    full = t // block
    kernel = compiled_passes.point_passes() if compiled else None
    if (
        kernel is not None
        and full
        and len(rows)
        and bound.shape[0] == values.shape[0]
        and bound.shape[1] >= full
        and compiled_passes.fits(values, bound)
    ):
        above = np.empty(len(rows), dtype=np.bool_)
        kernel.rows_above(
            values,
            block,
            bound,
            # contiguous and aligned copies where they are not (int32 on 32-bit builds)
            np.require(rows, np.int64, ["C", "A"]),
            np.require(row_max, np.float64, ["C", "A"]),
            above,
        )
        if full * block < t:  # the trailing partial block, where it is suspect
            at = np.flatnonzero(bound[rows, full] < row_max)
            with np.errstate(invalid="ignore"):
                tail = values[rows[at], full * block :] > bound[rows[at], full:]
            above[at[tail.any(axis=1)]] = True
        return above
    suspect = bound[rows] < row_max[:, None]  # (rows, blocks); the bound is never NaN
    local, blocks = np.nonzero(suspect)
    if len(local) > _SPARSE_SHARE * suspect.size:
        return _rows_above(values, bound, block, rows)
    above = np.zeros(len(rows), dtype=bool)
    whole = blocks < full
    if whole.any():
        at, cols = local[whole], blocks[whole]
        # Whole blocks as the unit of the gather: 12 points copied at a time, not one by one.
        # (A strided view: a reshape would copy the rows when t is no multiple of block.)
        step_row, step_point = values.strides
        grid = np.lib.stride_tricks.as_strided(
            values,
            shape=(values.shape[0], full, block),
            strides=(step_row, block * step_point, step_point),
            writeable=False,
        )
        top = _block_max(grid[rows[at], cols][:, None, :])[:, 0]
        with np.errstate(invalid="ignore"):
            above[at[top > bound[rows[at], cols]]] = True
    if full * block < t:  # the trailing partial block, for the rows where it is suspect
        at = local[~whole]
        with np.errstate(invalid="ignore"):
            tail = values[rows[at], full * block :] > bound[rows[at], full:]
        above[at[tail.any(axis=1)]] = True
    return above


def detect_spikes(
    values: Float32Array,
    *,
    step: float,
    threshold: float,
    baseline_window: float,
    max_duration: float,
    row_max: npt.NDArray[np.float64] | None = None,
    hour_means: Float32Array | None = None,
    compiled: bool = True,
) -> SpikeReport:
    """Find spikes in (N, T) `values` (float32, NaN = no data) sampled every `step` seconds.

    `row_max` (each row's maximum, e.g. from the shared sort) lets rows whose maximum stays
    under threshold x their lowest baseline skip the point-by-point comparison.
    `hour_means` (the (N, T // block) whole-block means, hourly.means_of, when T is a
    multiple of the hour) saves computing them again. `compiled`: the centred baseline and the
    suspect blocks by the compiled passes when they are there (False: numpy's paths; the same
    answer).

    Every step is row by row, so rows are taken _SCAN_POINTS points at a time: the hourly
    grids, baselines and bounds of a chunk stay a few MB. Whole (N, hours) grids are 67 MB
    each at 100,000 tenants, above the size glibc keeps for reuse, so each one was new memory
    and its page faults cost more than its arithmetic."""
    n, t = values.shape
    count = np.zeros(n, dtype=np.int64)
    max_ratio = np.full(n, np.nan)
    found: list[IntArray] = []
    cleaned: list[Float32Array] = []
    if t and n:
        rows = max(1, _SCAN_POINTS // t)
        for lo in range(0, n, rows):
            hi = min(n, lo + rows)
            part = _detect_rows(
                values[lo:hi],
                step=step,
                threshold=threshold,
                baseline_window=baseline_window,
                max_duration=max_duration,
                row_max=None if row_max is None else row_max[lo:hi],
                hour_means=None if hour_means is None else hour_means[lo:hi],
                compiled=compiled,
            )
            if part is not None:
                local, part_cleaned, part_count, part_ratio = part
                found.append(local + lo)
                cleaned.append(part_cleaned)
                count[lo:hi] = part_count
                max_ratio[lo:hi] = part_ratio
    if not found:
        return SpikeReport(
            Cleaned(values, np.zeros(0, dtype=np.int64), np.zeros((0, t), dtype=np.float32)),
            count,
            max_ratio,
        )
    patch = Cleaned(values, np.concatenate(found), np.concatenate(cleaned))
    return SpikeReport(patch, count, max_ratio)


def _detect_rows(
    values: Float32Array,
    *,
    step: float,
    threshold: float,
    baseline_window: float,
    max_duration: float,
    row_max: npt.NDArray[np.float64] | None,
    hour_means: Float32Array | None,
    compiled: bool,
) -> tuple[IntArray, Float32Array, IntArray, npt.NDArray[np.float64]] | None:
    """detect_spikes on a chunk of rows: (rows with spikes, their cleaned values, spikes per
    row, highest ratio per row), or None when no row has one."""
    n, t = values.shape
    block = points_per_hour(step)  # baseline resolution: hourly means
    hourly = _hourly(values, block, hour_means)
    window_blocks = max(3, round(baseline_window / (block * step)) | 1)  # odd, centred
    baseline = _robust_level(hourly, window_blocks, threshold, compiled=compiled)
    bound = baseline * np.float32(threshold)
    with np.errstate(invalid="ignore"):
        np.copyto(bound, np.float32(np.inf), where=~(baseline > 0))
    if row_max is None:  # fmax ignores NaN (an all-NaN row: NaN), without nanmax's warning
        row_max = np.fmax.reduce(values, axis=1).astype(np.float64)
    with np.errstate(invalid="ignore"):
        candidates = np.flatnonzero(row_max > bound.min(axis=1, initial=np.inf))
    if not len(candidates):
        return None
    hit = candidates[
        _suspects_above(values, bound, block, candidates, row_max[candidates], compiled=compiled)
    ]
    if not len(hit):
        return None
    subset = values[hit]
    per_point = np.repeat(bound[hit], block, axis=1)[:, :t]
    with np.errstate(invalid="ignore"):
        spike = subset > per_point
    del per_point
    spike &= ~_runs_longer_than(spike, max(1, int(max_duration // step)))
    hit_local = np.flatnonzero(spike.any(axis=1))
    if not len(hit_local):
        return None
    rows = hit[hit_local]
    spike, subset = spike[hit_local], subset[hit_local]
    local, cols = np.nonzero(spike)
    base_at = baseline[rows[local], cols // block]
    ratio = subset[local, cols].astype(np.float64) / base_at
    cleaned = subset  # our own copy (fancy indexing): cleaned in place
    cleaned[local, cols] = base_at
    max_ratio = np.full(n, -np.inf)
    np.maximum.at(max_ratio, rows[local], ratio)
    max_ratio[~np.isfinite(max_ratio)] = np.nan
    starts = spike.copy()
    starts[:, 1:] &= ~spike[:, :-1]
    count = np.zeros(n, dtype=np.int64)
    count[rows] = starts.sum(axis=1)
    return rows, cleaned, count, max_ratio
