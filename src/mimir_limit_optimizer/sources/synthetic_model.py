"""A synthetic multi-tenant Mimir cluster: the TRUE per-tenant usage behind the demo and tests.

`generate_cluster` is pure and deterministic: the same settings and `end` always give the same
arrays (one numpy Generator seeded from `settings.seed`; no clock reads). Everything is
vectorised over tenants x time, so 10,000 tenants x 2016 points take about a second.

Time model: `timestamps[i]` closes the step `(timestamps[i-1], timestamps[i]]`, and every
signal is constant within a step (rates are per second, counts are levels). That is what makes
`rate(x[step])` over the OpenMetrics rendering (see `synthetic_openmetrics`) reproduce the
truth exactly at every timestamp.

Tenants: the archetypes come first (`throttled-*`, `blast-*`, `new-*`, `bursty-*`,
`labels-*`; one of each as far as the tenant count allows, more in big clusters), then plain
`tenant-NNN`. Every tenant has a daily and a weekly cycle and noise; some grow, some decline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.config.models import SyntheticSettings

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

HOUR = 3600.0
DAY = 86400.0

# Archetype -> share of the tenants in big clusters (at least one each, while tenants last).
ARCHETYPES: tuple[tuple[str, float], ...] = (
    ("throttled", 0.05),  # ingestion demand above its ingestion_rate: rate_limited discards
    ("blast", 0.02),  # series jump late in the window: per_user_series_limit discards
    ("new", 0.04),  # exists only for the last few hours (NaN before)
    ("bursty", 0.05),  # noisy, with short bursts that the limit partly clips
    ("labels", 0.01),  # label_value_too_long discards in a few episodes
)

# The global `limits` block of the synthetic cluster: Mimir's defaults, except that the
# operator enabled exemplars cluster-wide (Mimir's default of 0 disables them).
CLUSTER_DEFAULTS: Mapping[str, float] = MappingProxyType(
    {
        "ingestion_rate": 10_000.0,
        "ingestion_burst_size": 200_000.0,
        "max_global_series_per_user": 150_000.0,
        "max_global_exemplars_per_user": 100_000.0,
        "max_global_metadata_per_user": 0.0,  # 0 = unlimited
        "request_rate": 0.0,  # 0 = unlimited
        "request_burst_size": 0.0,
        "max_label_names_per_series": 30.0,
        "max_label_name_length": 1024.0,
        "max_label_value_length": 2048.0,
    }
)
# Limits written as floats in an overrides file; the others are integers.
FLOAT_LIMITS = frozenset({"ingestion_rate", "request_rate"})

# Discard reasons the cluster simulates (Mimir's `reason` label values).
DISCARD_REASONS = (
    "rate_limited",
    "per_user_series_limit",
    "max_label_names_per_series",
    "label_name_too_long",
    "label_value_too_long",
)
# Counted by every ingester replica (so RF times in cortex_discarded_samples_total); the
# others are counted once, by the distributor.
INGESTER_REASONS = frozenset({"per_user_series_limit"})

# Exemplars stay in the ingester's circular buffer for about this long before the limit
# (the buffer size) evicts them: stored = min(limit, received/s x this).
EXEMPLAR_RETENTION = HOUR


_Array = TypeVar("_Array", bound="np.ndarray[Any, Any]")


def _readonly(array: _Array) -> _Array:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class SyntheticCluster:
    """The truth of one synthetic scenario. Arrays are read-only; (N, T) arrays are NaN where
    a tenant does not exist yet (`new-*` before `first_index`). Rates are per second; series,
    exemplars and metadata are deduplicated counts (one replica)."""

    tenants: tuple[str, ...]
    timestamps: FloatArray  # (T,) unix seconds, ascending, spaced by `step`
    step: float
    replication_factor: int
    seed: int
    archetypes: Mapping[str, tuple[str, ...]]  # archetype -> its tenants
    first_index: IntArray  # (N,) first timestamp index where the tenant exists
    samples_demand: FloatArray  # samples/s the tenant sends
    # samples/s accepted: the limiter caps samples + exemplars at ingestion_rate
    samples_accepted: FloatArray
    series_demand: FloatArray  # series the tenant would have without a series limit
    series: FloatArray  # in-memory series: min(series_demand, max_global_series_per_user)
    requests: FloatArray  # accepted write requests/s
    exemplars_received: FloatArray  # accepted exemplars/s
    exemplars_stored: FloatArray  # exemplars held in ingester storage
    metadata: FloatArray  # metric metadata entries in memory
    discards: Mapping[str, FloatArray]  # reason -> discarded samples/s (true, not x RF)
    limits: Mapping[str, FloatArray]  # limit -> (N,) value in force (override or default)
    defaults: Mapping[str, float]  # limit -> the cluster's global default
    overridden: Mapping[str, BoolArray]  # limit -> (N,) set explicitly in the overrides file
    series_churn: FloatArray  # (N,) share of series replaced per hour
    metadata_churn: FloatArray  # (N,) share of metadata replaced per hour
    exemplars_per_series: FloatArray  # (N,) exemplars kept per series with exemplars
    exemplar_share: FloatArray  # (N,) exemplars sent per sample

    @property
    def overridden_tenants(self) -> frozenset[str]:
        """Tenants with an entry in the overrides file."""
        any_override = np.zeros(len(self.tenants), dtype=bool)
        for mask in self.overridden.values():
            any_override |= mask
        return frozenset(t for t, flag in zip(self.tenants, any_override, strict=True) if flag)

    def index(self, tenant: str) -> int:
        return self.tenants.index(tenant)

    def exists(self) -> BoolArray:
        """(N, T) True where the tenant exists."""
        return np.arange(len(self.timestamps))[None, :] >= self.first_index[:, None]

    def blank(self) -> FloatArray:
        """(N, T) zeros where the tenant exists, NaN before (no discards, say)."""
        return np.where(self.exists(), 0.0, np.nan)

    def exemplars_rate_limited(self) -> FloatArray:
        """(N, T) exemplars/s rejected with reason rate_limited (they travel with the samples)."""
        rejected: FloatArray = self.discards["rate_limited"] * self.exemplar_share[:, None]
        return rejected

    def exemplar_series(self) -> FloatArray:
        """(N, T) series with at least one exemplar in storage (what Mimir exposes per tenant:
        `cortex_ingester_tsdb_exemplar_series_with_exemplars_in_storage`)."""
        return np.ceil(self.exemplars_stored / self.exemplars_per_series[:, None])

    def overrides_document(self) -> dict[str, dict[str, dict[str, int | float]]]:
        """The operator's runtime overrides file, `{"overrides": {tenant: {limit: value}}}`."""
        doc: dict[str, dict[str, int | float]] = {}
        for name, mask in self.overridden.items():
            for row in np.flatnonzero(mask):
                value = float(self.limits[name][row])
                entry = doc.setdefault(self.tenants[row], {})
                entry[name] = value if name in FLOAT_LIMITS else int(value)
        return {"overrides": {tenant: doc[tenant] for tenant in self.tenants if tenant in doc}}


def _nice_up(values: FloatArray) -> FloatArray:
    """Round up to two significant digits (12,345 -> 13,000), as an operator would write."""
    safe = np.maximum(values, 1.0)
    exponent = np.floor(np.log10(safe)) - 1
    # Divide by an exact power of ten below 1 so that 6.3 stays 6.3 (not 6.300000000000001).
    big = np.ceil(safe / 10.0**exponent) * 10.0**exponent
    small = np.ceil(safe * 10.0**-exponent) / 10.0**-exponent
    rounded: FloatArray = np.where(exponent >= 0, big, small)
    return rounded


def _tenant_names(count: int) -> tuple[list[str], list[int]]:
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


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], window: int) -> FloatArray:
    """Unit-variance noise correlated over `window` steps (moving sum of white noise)."""
    n, t = shape
    summed = rng.standard_normal((n, t + window), dtype=np.float32)
    np.cumsum(summed, axis=1, out=summed)
    out = np.empty((n, t))
    np.subtract(summed[:, window:], summed[:, :-window], out=out)
    out *= 1.0 / math.sqrt(window)
    return out


def _runs(mask: BoolArray) -> list[tuple[int, int]]:
    """[first, last) index ranges where `mask` is True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _mask_absent(array: FloatArray, rows: IntArray, first: IntArray) -> None:
    for row in rows:
        array[row, : first[row]] = np.nan


def _row_peaks(array: FloatArray, rows: IntArray) -> FloatArray:
    """Per-row maximum; NaN-aware only on `rows` (the tenants that start late)."""
    peaks: FloatArray = array.max(axis=1) if array.shape[1] else np.zeros(array.shape[0])
    for row in rows:
        present = array[row][~np.isnan(array[row])]
        peaks[row] = present.max() if present.size else 0.0
    return peaks


def generate_cluster(
    settings: SyntheticSettings, *, end: float, replication_factor: int = 3
) -> SyntheticCluster:
    """Build the scenario over `[end - settings.history, end]` at `settings.step`.

    `end` is unix seconds (pass whole seconds: the OpenMetrics rendering keeps milliseconds).
    """
    if replication_factor < 1:
        raise ValueError(f"replication_factor must be >= 1, got {replication_factor}")
    rng = np.random.default_rng(settings.seed)
    step = float(settings.step)
    steps = math.floor(settings.history / step + 1e-9)
    t_count = steps + 1
    timestamps = float(end) - step * np.arange(steps, -1, -1, dtype=np.float64)
    names, kind_list = _tenant_names(settings.tenant_count)
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
    angle = 2 * np.pi * (timestamps % DAY) / DAY
    phase = 2 * np.pi * peak_hour / 24.0
    ones = np.ones(n)
    base = np.column_stack([amplitude * np.cos(phase), amplitude * np.sin(phase), ones]) @ (
        np.vstack([np.cos(angle), np.sin(angle), np.ones(t_count)])
    )
    days_to_end = (timestamps - end) / DAY
    trend = np.column_stack([growth, ones]) @ np.vstack([days_to_end, np.ones(t_count)])
    np.maximum(trend, 0.2, out=trend)
    weekday = ((timestamps // DAY).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    for first, last in _runs(weekday >= 5):
        base[:, first:last] *= (1.0 - weekend_dip)[:, None]
    base *= trend

    # Series follow the cycle at half amplitude and without noise; samples/s follow the
    # series (one sample per series per scrape interval) with noise.
    samples_demand = _smooth_noise(rng, (n, t_count), window=6)
    samples_demand *= sigma[:, None]
    samples_demand += 1.0
    np.maximum(samples_demand, 0.3, out=samples_demand)
    samples_demand *= base
    samples_demand *= (series_level / interval)[:, None]
    series_demand = base  # reuse the memory: `base` is not needed any more
    series_demand += trend
    series_demand *= (0.5 * series_level)[:, None]
    del base

    # Blasts: the pre-blast peak sits at 40-60% of the (default) series limit, then the
    # series jump 3-6x for the last few hours.
    series_limit_default = CLUSTER_DEFAULTS["max_global_series_per_user"]
    for row in rows_of["blast"]:
        start = int(np.clip(t_count - round(blast_hours[row] * HOUR / step), 1, t_count - 1))
        before = series_demand[row, :start].max() if start else series_demand[row].max()
        scale = blast_height[row] * series_limit_default / before
        series_demand[row] *= scale
        samples_demand[row] *= scale
        series_demand[row, start:] *= blast_factor[row]
        samples_demand[row, start:] *= blast_factor[row]
    np.rint(series_demand, out=series_demand)
    _mask_absent(samples_demand, new_rows, first_index)
    _mask_absent(series_demand, new_rows, first_index)

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
    median = np.median(samples_demand[throttled], axis=1) if throttled.any() else np.zeros(0)
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
        samples_demand[row] *= 1.0 + spans * rng.uniform(1.0, 3.0, size=t_count)

    # Mimir's limiter is charged samples + exemplars (+ metadata, not simulated) and rejects
    # whole requests: what passes keeps the tenant's exemplar share.
    per_sample = 1.0 + exemplar_share
    samples_accepted = np.minimum(samples_demand, (limits["ingestion_rate"] / per_sample)[:, None])
    rate_limited = samples_demand - samples_accepted
    series = np.minimum(series_demand, limits["max_global_series_per_user"][:, None])
    # Ingesters reject the accepted samples of the series over the limit (each series sends
    # samples_accepted / series_demand samples/s).
    per_user_series_limit = series_demand - series
    per_user_series_limit *= samples_accepted
    np.divide(
        per_user_series_limit, series_demand, out=per_user_series_limit, where=series_demand > 0
    )

    requests = samples_accepted / batch[:, None]
    exemplars_received = samples_accepted * exemplar_share[:, None]
    peak_exemplars = _row_peaks(exemplars_received, new_rows) * EXEMPLAR_RETENTION
    exemplar_default = CLUSTER_DEFAULTS["max_global_exemplars_per_user"]
    exemplar_mask = (peak_exemplars > 0.8 * exemplar_default) & (
        dice["max_global_exemplars_per_user"] < 0.7
    )
    set_limit("max_global_exemplars_per_user", exemplar_mask, _nice_up(peak_exemplars * headroom))
    exemplars_stored = exemplars_received * EXEMPLAR_RETENTION
    np.minimum(
        exemplars_stored, limits["max_global_exemplars_per_user"][:, None], out=exemplars_stored
    )
    np.rint(exemplars_stored, out=exemplars_stored)
    metadata = trend
    metadata += 1.0
    metadata *= (0.5 * metadata_base)[:, None]
    np.rint(metadata, out=metadata)
    _mask_absent(metadata, new_rows, first_index)

    peak_requests = _row_peaks(requests, new_rows)
    set_limit(
        "request_rate",
        (dice["request_rate"] < 0.1) & ~is_kind["new"],
        _nice_up(peak_requests * (headroom + 1.0)),
    )
    set_limit(
        "request_burst_size", overridden["request_rate"], _nice_up(10.0 * limits["request_rate"])
    )
    set_limit(
        "max_global_metadata_per_user",
        (dice["max_global_metadata_per_user"] < 0.1) & ~is_kind["new"],
        _nice_up(_row_peaks(metadata, new_rows) * (headroom + 1.0)),
    )
    set_limit(
        "max_label_names_per_series",
        dice["max_label_names_per_series"] < 0.08,
        np.where(dice["max_label_names_per_series"] < 0.04, 40.0, 50.0),
    )
    set_limit("max_label_name_length", dice["max_label_name_length"] < 0.05, np.full(n, 2048.0))
    set_limit("max_label_value_length", np.zeros(n, dtype=bool), np.zeros(n))

    discards = {
        "rate_limited": rate_limited,
        "per_user_series_limit": per_user_series_limit,
        "max_label_names_per_series": np.zeros((n, t_count)),
        "label_name_too_long": np.zeros((n, t_count)),
        "label_value_too_long": np.zeros((n, t_count)),
    }
    # Episodes of too-long label values (a deploy that puts a stack trace in a label): one in
    # the middle of the window, and one to three more at random.
    for row in rows_of["labels"]:
        centres = [t_count // 2, *rng.integers(0, t_count, size=int(rng.integers(1, 4)))]
        for centre in centres:
            length = max(1, round(rng.uniform(1.0, 4.0) * HOUR / step))
            discards["label_value_too_long"][row, centre : centre + length] = rng.uniform(0.5, 20)
    for reason in DISCARD_REASONS[2:]:
        _mask_absent(discards[reason], new_rows, first_index)

    groups = {kind: tuple(names[row] for row in rows_of[kind]) for kind, _ in ARCHETYPES}
    return SyntheticCluster(
        tenants=tuple(names),
        timestamps=_readonly(timestamps),
        step=step,
        replication_factor=replication_factor,
        seed=settings.seed,
        archetypes=MappingProxyType(groups),
        first_index=_readonly(first_index),
        samples_demand=_readonly(samples_demand),
        samples_accepted=_readonly(samples_accepted),
        series_demand=_readonly(series_demand),
        series=_readonly(series),
        requests=_readonly(requests),
        exemplars_received=_readonly(exemplars_received),
        exemplars_stored=_readonly(exemplars_stored),
        metadata=_readonly(metadata),
        discards=MappingProxyType({k: _readonly(v) for k, v in discards.items()}),
        limits=MappingProxyType({k: _readonly(limits[k]) for k in CLUSTER_DEFAULTS}),
        defaults=CLUSTER_DEFAULTS,
        overridden=MappingProxyType({k: _readonly(overridden[k]) for k in CLUSTER_DEFAULTS}),
        series_churn=_readonly(series_churn),
        metadata_churn=_readonly(metadata_churn),
        exemplars_per_series=_readonly(exemplars_per_series),
        exemplar_share=_readonly(exemplar_share),
    )
