"""Transient spikes: found, reported, and kept out of the baseline.

A point is a spike when it exceeds `threshold` x a robust baseline: the centred rolling median
of hourly means. A run of spike points longer than `max_duration` is a new level (a real change
of demand), not a spike, and stays in. A spike never raises a limit by itself: the strategies see
the cleaned series, where spike points are replaced by the baseline.

Works in hourly blocks (N, blocks, points-per-block) so the baseline is never expanded to the
full (N, T) grid; float32 halves the memory traffic (values are rounded to 2 digits later).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine.stats import centred_nanmean

BoolArray = npt.NDArray[np.bool_]
Float32Array = npt.NDArray[np.float32]
_BLOCK_SECONDS = 3600.0  # baseline resolution: hourly means


@dataclass(frozen=True)
class SpikeReport:
    cleaned: Float32Array  # (N, T) input with spike points replaced by the baseline
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


def _robust_level(hourly: Float32Array, window: int, threshold: float) -> Float32Array:
    """Centred rolling mean of hourly means, made robust: blocks above threshold x the
    current level are replaced by the level and the mean recomputed. Three rounds pull a
    spike's influence on its own baseline down to a few percent, at the cost of a few
    cumulative sums on the (tenants, hours) grid (a rolling median costs 10x more here)."""
    level = centred_nanmean(hourly, window)
    for _ in range(3):
        with np.errstate(invalid="ignore"):
            outlier = hourly > level * np.float32(threshold)
        if not outlier.any():  # the common case: nothing to pull down
            break
        level = centred_nanmean(np.where(outlier, level, hourly), window)
    return level


def detect_spikes(
    values: Float32Array,
    *,
    step: float,
    threshold: float,
    baseline_window: float,
    max_duration: float,
) -> SpikeReport:
    """Find spikes in (N, T) `values` (float32, NaN = no data) sampled every `step` seconds."""
    n, t = values.shape
    none = SpikeReport(values, np.zeros(n, dtype=np.int64), np.full(n, np.nan))
    if t == 0:
        return none
    block = max(1, round(_BLOCK_SECONDS / step))
    nblocks = -(-t // block)
    if nblocks * block != t:
        padded = np.full((n, nblocks * block), np.nan, dtype=np.float32)
        padded[:, :t] = values
    else:
        padded = values
    blocks = padded.reshape(n, nblocks, block)
    hourly = blocks.mean(axis=2)
    gaps = np.isnan(hourly)  # blocks with a missing point: redo just those, ignoring NaN
    if gaps.any():
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
            hourly[gaps] = np.nanmean(blocks[gaps], axis=1)
    window_blocks = max(3, round(baseline_window / (block * step)) | 1)  # odd, centred
    baseline = _robust_level(hourly, window_blocks, threshold)
    bound = np.where(baseline > 0, baseline * np.float32(threshold), np.float32(np.inf))
    with np.errstate(invalid="ignore"):
        spike_blocks = blocks > bound[:, :, None]
    if not spike_blocks.any():
        return none
    spike = spike_blocks.reshape(n, nblocks * block)[:, :t]
    spike &= ~_runs_longer_than(spike, max(1, int(max_duration // step)))
    rows, cols = np.nonzero(spike)
    if len(rows) == 0:
        return none
    base_at = baseline[rows, cols // block]
    cleaned = values.copy()
    cleaned[rows, cols] = base_at
    ratio = values[rows, cols].astype(np.float64) / base_at
    max_ratio = np.full(n, -np.inf)
    np.maximum.at(max_ratio, rows, ratio)
    max_ratio[~np.isfinite(max_ratio)] = np.nan
    starts = spike.copy()
    starts[:, 1:] &= ~spike[:, :-1]
    return SpikeReport(cleaned, starts.sum(axis=1).astype(np.int64), max_ratio)
