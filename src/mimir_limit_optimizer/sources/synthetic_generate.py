"""Generating the synthetic cluster (`generate_cluster`): pure and deterministic, the same
settings and `end` always give the same arrays (one numpy Generator seeded from
`settings.seed`; no clock reads). The model it fills is `synthetic_model.SyntheticCluster`."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.config.models import SyntheticSettings
from mimir_limit_optimizer.sources.synthetic_model import (
    ARCHETYPES,
    CLUSTER_DEFAULTS,
    DAY,
    EXEMPLAR_RETENTION,
    HOUR,
    BoolArray,
    Float32Array,
    FloatArray,
    IntArray,
    SyntheticCluster,
    mask_absent,
    metadata_levels,
    readonly,
)


def _nice_up(values: FloatArray) -> FloatArray:
    """Round up to two significant digits (12,345 -> 13,000), as an operator would write."""
    safe = np.maximum(values, 1.0)
    exponent = np.floor(np.log10(safe)) - 1
    # Divide by an exact power of ten below 1 so that 6.3 stays 6.3 (not 6.300000000000001).
    big = np.ceil(safe / 10.0**exponent) * 10.0**exponent
    small = np.ceil(safe * 10.0**-exponent) / 10.0**-exponent
    rounded: FloatArray = np.where(exponent >= 0, big, small)
    return rounded


def tenant_names(count: int) -> tuple[list[str], list[int]]:
    """Archetypes first (one of each while tenants last), then `tenant-NNN`."""
    wanted = [max(1, int(count * share)) for _, share in ARCHETYPES]
    if sum(wanted) > count:
        wanted = [1 if i < count else 0 for i in range(len(ARCHETYPES))]
    names: list[str] = []
    kinds: list[int] = []
    for kind_index, ((kind, _), how_many) in enumerate(zip(ARCHETYPES, wanted, strict=True)):
        width = max(3, len(str(how_many)))
        names += [f"{kind}-{j:0{width}d}" for j in range(1, how_many + 1)]
        kinds += [kind_index + 1] * how_many
    plain = count - len(names)
    width = max(3, len(str(plain)))
    names += [f"tenant-{j:0{width}d}" for j in range(1, plain + 1)]
    kinds += [0] * plain
    return names, kinds


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], window: int) -> Float32Array:
    """Unit-variance noise correlated over `window` steps (moving sum of white noise)."""
    n, t = shape
    summed = rng.standard_normal((n, t + window), dtype=np.float32)
    np.cumsum(summed, axis=1, out=summed)
    out = np.empty((n, t), dtype=np.float32)
    np.subtract(summed[:, window:], summed[:, :-window], out=out)
    out *= np.float32(1.0 / math.sqrt(window))
    return out


def _runs(mask: BoolArray) -> list[tuple[int, int]]:
    """[first, last) index ranges where `mask` is True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _row_peaks(array: npt.NDArray[np.floating[Any]], rows: IntArray) -> FloatArray:
    """Per-row maximum (float64); NaN-aware only on `rows` (the tenants that start late)."""
    peaks: FloatArray = (
        array.max(axis=1).astype(np.float64) if array.shape[1] else np.zeros(array.shape[0])
    )
    for row in rows:
        present = array[row][~np.isnan(array[row])]
        peaks[row] = float(present.max()) if present.size else 0.0
    return peaks


def generate_cluster(
    settings: SyntheticSettings, *, end: float, replication_factor: int = 3
) -> SyntheticCluster:
    """Build the scenario over `[end - settings.history, end]` at `settings.step`.

    `end` is unix seconds (pass whole seconds: the OpenMetrics rendering keeps milliseconds).
    The (N, T) work is float32 (the demands are stored so); per-tenant values are float64.
    """
    if replication_factor < 1:
        raise ValueError(f"replication_factor must be >= 1, got {replication_factor}")
    rng = np.random.default_rng(settings.seed)
    step = float(settings.step)
    steps = math.floor(settings.history / step + 1e-9)
    t_count = steps + 1
    timestamps = float(end) - step * np.arange(steps, -1, -1, dtype=np.float64)
    names, kind_list = tenant_names(settings.tenant_count)
    n = len(names)
    kinds = np.asarray(kind_list)
    is_kind = {kind: kinds == i + 1 for i, (kind, _) in enumerate(ARCHETYPES)}
    rows_of = {kind: np.flatnonzero(mask) for kind, mask in is_kind.items()}

    # Per-tenant parameters, all drawn up front in a fixed order (determinism).
    interval = rng.choice(np.array([15.0, 30.0, 60.0]), p=[0.3, 0.5, 0.2], size=n)
    series_level = np.exp(rng.uniform(math.log(2e3), math.log(3e5), size=n))
    amplitude = rng.uniform(0.1, 0.4, size=n)
    peak_hour = rng.choice(np.array([9.0, 14.0, 20.0]), p=[0.3, 0.5, 0.2], size=n)
    peak_hour = peak_hour + rng.normal(0.0, 1.5, size=n)
    weekend_dip = rng.uniform(0.0, 0.25, size=n)
    trend_pick = rng.random(n)
    growth = np.where(
        trend_pick < 0.45,
        rng.uniform(0.01, 0.08, size=n),
        np.where(trend_pick < 0.7, rng.uniform(-0.05, -0.01, size=n), rng.normal(0, 0.005, n)),
    )  # relative change per day
    sigma = rng.uniform(0.02, 0.06, size=n)
    batch = rng.uniform(500.0, 4000.0, size=n)  # samples per write request
    exemplar_share = np.where(
        rng.random(n) < 0.6, np.exp(rng.uniform(math.log(1e-4), math.log(3e-3), size=n)), 0.0
    )
    exemplars_per_series = rng.uniform(1.0, 4.0, size=n)
    metadata_base = np.rint(np.sqrt(series_level) * rng.uniform(1.0, 4.0, size=n))
    series_churn = rng.uniform(0.002, 0.05, size=n)
    metadata_churn = rng.uniform(0.0, 0.01, size=n)
    dice = {name: rng.random(n) for name in CLUSTER_DEFAULTS}
    headroom = rng.uniform(1.3, 2.5, size=n)
    throttle_ratio = rng.uniform(0.75, 0.9, size=n)
    blast_height = rng.uniform(0.4, 0.6, size=n)  # pre-blast peak / series limit
    blast_factor = rng.uniform(3.0, 6.0, size=n)
    blast_hours = rng.uniform(4.0, 8.0, size=n)
    new_hours = rng.uniform(3.0, 6.0, size=n)

    # Late starters and small new tenants.
    first_index = np.zeros(n, dtype=np.int64)
    new_rows = rows_of["new"]
    new_steps = np.rint(new_hours[new_rows] * HOUR / step).astype(np.int64)
    first_index[new_rows] = np.clip(t_count - 1 - new_steps, min(1, t_count - 1), t_count - 1)
    series_level[new_rows] = np.exp(rng.uniform(math.log(1e3), math.log(2e4), size=len(new_rows)))
    sigma[rows_of["bursty"]] = 0.15
    # Throttling matters for mid-size tenants (a tiny throttled tenant is a rounding error).
    throttled_rows = rows_of["throttled"]
    series_level[throttled_rows] = np.exp(
        rng.uniform(math.log(3e4), math.log(3e5), size=len(throttled_rows))
    )

    # Shape per tenant: (1 + daily) x (1 - weekend dip) x trend. The daily term and the
    # trend are rank-2/3 products, computed as one matrix product each (no (N, T) trig).
    f32 = np.float32
    angle = 2 * np.pi * (timestamps % DAY) / DAY
    phase = 2 * np.pi * peak_hour / 24.0
    ones = np.ones(n)
    base = np.column_stack([amplitude * np.cos(phase), amplitude * np.sin(phase), ones]).astype(
        f32
    ) @ np.vstack([np.cos(angle), np.sin(angle), np.ones(t_count)]).astype(f32)
    days_to_end = (timestamps - end) / DAY
    trend = np.column_stack([growth, ones]).astype(f32) @ np.vstack(
        [days_to_end, np.ones(t_count)]
    ).astype(f32)
    np.maximum(trend, f32(0.2), out=trend)
    weekday = ((timestamps // DAY).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    for first, last in _runs(weekday >= 5):
        base[:, first:last] *= (1.0 - weekend_dip).astype(f32)[:, None]
    base *= trend

    # Series follow the cycle at half amplitude and without noise; samples/s follow the
    # series (one sample per series per scrape interval) with noise.
    samples_demand = _smooth_noise(rng, (n, t_count), window=6)
    samples_demand *= sigma.astype(f32)[:, None]
    samples_demand += f32(1.0)
    np.maximum(samples_demand, f32(0.3), out=samples_demand)
    samples_demand *= base
    samples_demand *= (series_level / interval).astype(f32)[:, None]
    series_demand = base  # reuse the memory: `base` is not needed any more
    series_demand += trend
    series_demand *= (0.5 * series_level).astype(f32)[:, None]
    del base, trend

    # Blasts: the pre-blast peak sits at 40-60% of the (default) series limit, then the
    # series jump 3-6x for the last few hours.
    series_limit_default = CLUSTER_DEFAULTS["max_global_series_per_user"]
    for row in rows_of["blast"]:
        start = int(np.clip(t_count - round(blast_hours[row] * HOUR / step), 1, t_count - 1))
        before = series_demand[row, :start].max() if start else series_demand[row].max()
        scale = f32(blast_height[row] * series_limit_default / before)
        series_demand[row] *= scale
        samples_demand[row] *= scale
        series_demand[row, start:] *= f32(blast_factor[row])
        samples_demand[row, start:] *= f32(blast_factor[row])
    np.rint(series_demand, out=series_demand)
    mask_absent(samples_demand, first_index)
    mask_absent(series_demand, first_index)

    # The operator's limits: big tenants need overrides; some small ones have them too.
    limits: dict[str, FloatArray] = {}
    overridden: dict[str, BoolArray] = {}

    def set_limit(name: str, mask: BoolArray, value: FloatArray) -> None:
        limits[name] = np.where(mask, value, CLUSTER_DEFAULTS[name])
        overridden[name] = mask

    peak_samples = _row_peaks(samples_demand, new_rows) * (1.0 + exemplar_share)
    rate_default = CLUSTER_DEFAULTS["ingestion_rate"]
    rate_mask = (peak_samples * 1.2 > rate_default) | (dice["ingestion_rate"] < 0.25)
    rate_value = _nice_up(np.maximum(peak_samples, 0.5 * rate_default) * headroom)
    throttled = is_kind["throttled"]
    median = (
        np.median(samples_demand[throttled], axis=1).astype(np.float64)
        if throttled.any()
        else np.zeros(0)
    )
    rate_value[throttled] = _nice_up(median * throttle_ratio[throttled])
    bursty = is_kind["bursty"]  # sized for its usual peak: bursts get clipped
    rate_value[bursty] = _nice_up(peak_samples[bursty] * (throttle_ratio[bursty] + 0.5))
    rate_mask = (rate_mask | throttled | bursty) & ~is_kind["new"]
    set_limit("ingestion_rate", rate_mask, rate_value)
    burst_mask = overridden["ingestion_rate"] & (dice["ingestion_burst_size"] < 0.7)
    set_limit("ingestion_burst_size", burst_mask, _nice_up(20.0 * limits["ingestion_rate"]))

    peak_series = _row_peaks(series_demand, new_rows)
    series_mask = (peak_series * 1.1 > series_limit_default) | (
        dice["max_global_series_per_user"] < 0.2
    )
    series_mask &= ~is_kind["blast"] & ~is_kind["new"]
    series_value = _nice_up(np.maximum(peak_series, 0.5 * series_limit_default) * headroom)
    set_limit("max_global_series_per_user", series_mask, series_value)

    # Bursts happen on top of the demand the limits were sized for.
    for row in rows_of["bursty"]:
        starts = rng.random(t_count) < 0.03
        spans = starts.copy()
        spans[1:] |= starts[:-1]
        spans[2:] |= starts[:-2] & (rng.random(max(t_count - 2, 0)) < 0.5)
        samples_demand[row] *= (1.0 + spans * rng.uniform(1.0, 3.0, size=t_count)).astype(f32)

    # Peaks of what the limiter lets through: max over time of min(demand, cap) is
    # min(max demand, cap), so no (N, T) array of accepted samples is needed here.
    per_sample = 1.0 + exemplar_share
    peak_accepted = np.minimum(
        _row_peaks(samples_demand, new_rows), limits["ingestion_rate"] / per_sample
    )
    peak_exemplars = peak_accepted * exemplar_share * EXEMPLAR_RETENTION
    exemplar_default = CLUSTER_DEFAULTS["max_global_exemplars_per_user"]
    exemplar_mask = (peak_exemplars > 0.8 * exemplar_default) & (
        dice["max_global_exemplars_per_user"] < 0.7
    )
    set_limit("max_global_exemplars_per_user", exemplar_mask, _nice_up(peak_exemplars * headroom))

    set_limit(
        "request_rate",
        (dice["request_rate"] < 0.1) & ~is_kind["new"],
        _nice_up(peak_accepted / batch * (headroom + 1.0)),
    )
    set_limit(
        "request_burst_size", overridden["request_rate"], _nice_up(10.0 * limits["request_rate"])
    )
    # The metadata follows the trend only, which is monotone in time: its peak is at one end
    # of the span where the tenant exists.
    present_from = timestamps[np.minimum(first_index, t_count - 1)]
    at_ends = np.stack([present_from, np.full(n, timestamps[-1])], axis=1)  # (N, 2)
    peak_metadata = metadata_levels(at_ends, end, growth, metadata_base).max(axis=1)
    set_limit(
        "max_global_metadata_per_user",
        (dice["max_global_metadata_per_user"] < 0.1) & ~is_kind["new"],
        _nice_up(peak_metadata * (headroom + 1.0)),
    )
    set_limit(
        "max_label_names_per_series",
        dice["max_label_names_per_series"] < 0.08,
        np.where(dice["max_label_names_per_series"] < 0.04, 40.0, 50.0),
    )
    set_limit("max_label_name_length", dice["max_label_name_length"] < 0.05, np.full(n, 2048.0))
    set_limit("max_label_value_length", np.zeros(n, dtype=bool), np.zeros(n))

    # Episodes of too-long label values (a deploy that puts a stack trace in a label): one in
    # the middle of the window, and one to three more at random.
    episodes: list[tuple[int, int, int, float]] = []
    for row in rows_of["labels"]:
        centres = [t_count // 2, *rng.integers(0, t_count, size=int(rng.integers(1, 4)))]
        for centre in centres:
            length = max(1, round(rng.uniform(1.0, 4.0) * HOUR / step))
            value = float(rng.uniform(0.5, 20))
            episodes.append((int(row), int(centre), min(int(centre) + length, t_count), value))

    groups = {kind: tuple(names[row] for row in rows_of[kind]) for kind, _ in ARCHETYPES}
    return SyntheticCluster(
        tenants=tuple(names),
        timestamps=readonly(timestamps),
        step=step,
        replication_factor=replication_factor,
        seed=settings.seed,
        archetypes=MappingProxyType(groups),
        first_index=readonly(first_index),
        samples_demand=readonly(samples_demand),
        series_demand=readonly(series_demand),
        limits=MappingProxyType({k: readonly(limits[k]) for k in CLUSTER_DEFAULTS}),
        defaults=CLUSTER_DEFAULTS,
        overridden=MappingProxyType({k: readonly(overridden[k]) for k in CLUSTER_DEFAULTS}),
        series_churn=readonly(series_churn),
        metadata_churn=readonly(metadata_churn),
        exemplars_per_series=readonly(exemplars_per_series),
        exemplar_share=readonly(exemplar_share),
        batch=readonly(batch),
        growth=readonly(growth),
        metadata_base=readonly(metadata_base),
        trend_end=float(end),
        label_episodes=tuple(episodes),
    )
