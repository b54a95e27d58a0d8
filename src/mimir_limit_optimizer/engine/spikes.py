"""Transient spikes: found, reported, and kept out of the baseline.

A point is a spike when it exceeds `threshold` x a robust baseline: the centred rolling median
of hourly means. A run of spike points longer than `max_duration` is a new level (a real change
of demand), not a spike, and stays in. A spike never raises a limit by itself: the strategies see
the cleaned series, where spike points are replaced by the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine.stats import block_means, rolling_nanmedian
from mimir_limit_optimizer.engine.usage import FloatArray

BoolArray = npt.NDArray[np.bool_]
_BLOCK_SECONDS = 3600.0  # baseline resolution: hourly means


@dataclass(frozen=True)
class SpikeReport:
    cleaned: FloatArray  # (N, T) input with spike points replaced by the baseline
    count: npt.NDArray[np.int64]  # (N,) spikes (runs of spike points) per tenant
    max_ratio: FloatArray  # (N,) highest value / baseline among spike points (NaN if none)


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


def _run_starts(mask: BoolArray) -> npt.NDArray[np.int64]:
    starts = mask.copy()
    starts[:, 1:] &= ~mask[:, :-1]
    return starts.sum(axis=1).astype(np.int64)


def detect_spikes(
    values: FloatArray,
    *,
    step: float,
    threshold: float,
    baseline_window: float,
    max_duration: float,
) -> SpikeReport:
    """Find spikes in (N, T) `values` sampled every `step` seconds."""
    n, t = values.shape
    if t == 0:
        return SpikeReport(values, np.zeros(n, dtype=np.int64), np.full(n, np.nan))
    block = max(1, round(_BLOCK_SECONDS / step))
    window_blocks = max(3, round(baseline_window / (block * step)) | 1)  # odd, centred
    hourly = block_means(values, block)
    baseline_blocks = rolling_nanmedian(hourly, window_blocks)
    baseline = np.repeat(baseline_blocks, block, axis=1)[:, :t]
    with np.errstate(invalid="ignore"):
        spike = (values > threshold * baseline) & (baseline > 0)
    max_points = max(1, int(max_duration // step))
    spike &= ~_runs_longer_than(spike, max_points)
    cleaned = np.where(spike, baseline, values)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(spike, values / baseline, np.nan)
    any_spike = spike.any(axis=1)
    max_ratio = np.full(n, np.nan)
    if any_spike.any():
        max_ratio[any_spike] = np.nanmax(ratio[any_spike], axis=1)
    return SpikeReport(cleaned, _run_starts(spike), max_ratio)
