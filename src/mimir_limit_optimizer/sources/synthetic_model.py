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

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.config.models import SyntheticSettings

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
Float32Array = npt.NDArray[np.float32]

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
    exemplars and metadata are deduplicated counts (one replica).

    Only the two demands are stored, in float32 (8 bytes per tenant and step in all); every
    other (N, T) signal is derived from them on access, in float64, and not kept: what is
    accepted, discarded and stored follows from the demand and the limits pointwise in time.
    So a 10,000-tenant cluster holds ~50 MB per two days at 5m instead of ~600 MB, and
    `columns` gives a window of it without copying."""

    tenants: tuple[str, ...]
    timestamps: FloatArray  # (T,) unix seconds, ascending, spaced by `step`
    step: float
    replication_factor: int
    seed: int
    archetypes: Mapping[str, tuple[str, ...]]  # archetype -> its tenants
    first_index: IntArray  # (N,) first timestamp index where the tenant exists
    samples_demand: Float32Array  # samples/s the tenant sends
    series_demand: Float32Array  # series the tenant would have without a series limit
    limits: Mapping[str, FloatArray]  # limit -> (N,) value in force (override or default)
    defaults: Mapping[str, float]  # limit -> the cluster's global default
    overridden: Mapping[str, BoolArray]  # limit -> (N,) set explicitly in the overrides file
    series_churn: FloatArray  # (N,) share of series replaced per hour
    metadata_churn: FloatArray  # (N,) share of metadata replaced per hour
    exemplars_per_series: FloatArray  # (N,) exemplars kept per series with exemplars
    exemplar_share: FloatArray  # (N,) exemplars sent per sample
    batch: FloatArray  # (N,) samples per write request
    growth: FloatArray  # (N,) relative change per day (the metadata follows it)
    metadata_base: FloatArray  # (N,) metadata entries at the trend's level 1
    trend_end: float  # unix seconds where the trend is 1 (the generation's `end`)
    # Too-long label value episodes: (row, first column, end column, discarded samples/s).
    label_episodes: tuple[tuple[int, int, int, float], ...] = ()

    @property
    def overridden_tenants(self) -> frozenset[str]:
        """Tenants with an entry in the overrides file."""
        any_override = np.zeros(len(self.tenants), dtype=bool)
        for mask in self.overridden.values():
            any_override |= mask
        return frozenset(t for t, flag in zip(self.tenants, any_override, strict=True) if flag)

    def index(self, tenant: str) -> int:
        return self.tenants.index(tenant)

    def columns(self, window: slice) -> SyntheticCluster:
        """The cluster over `timestamps[window]` (a step-1 slice), sharing the demand arrays:
        every derived signal of the result equals the same columns of this one's."""
        lo, hi, _ = window.indices(len(self.timestamps))
        hi = max(lo, hi)
        episodes = tuple(
            (row, max(a - lo, 0), min(b, hi) - lo, value)
            for row, a, b, value in self.label_episodes
            if b > lo and a < hi
        )
        return dataclasses.replace(
            self,
            timestamps=self.timestamps[lo:hi],
            samples_demand=self.samples_demand[:, lo:hi],
            series_demand=self.series_demand[:, lo:hi],
            first_index=_readonly(np.maximum(self.first_index - lo, 0)),
            label_episodes=episodes,
        )

    def rows(self, rows: IntArray) -> SyntheticCluster:
        """The cluster of these tenants only (a copy of their rows; label episodes dropped)."""
        return dataclasses.replace(
            self,
            tenants=tuple(self.tenants[i] for i in rows.tolist()),
            first_index=self.first_index[rows],
            samples_demand=self.samples_demand[rows],
            series_demand=self.series_demand[rows],
            limits=MappingProxyType({k: v[rows] for k, v in self.limits.items()}),
            overridden=MappingProxyType({k: v[rows] for k, v in self.overridden.items()}),
            series_churn=self.series_churn[rows],
            metadata_churn=self.metadata_churn[rows],
            exemplars_per_series=self.exemplars_per_series[rows],
            exemplar_share=self.exemplar_share[rows],
            batch=self.batch[rows],
            growth=self.growth[rows],
            metadata_base=self.metadata_base[rows],
            label_episodes=(),
            archetypes=MappingProxyType({}),
        )

    def exists(self) -> BoolArray:
        """(N, T) True where the tenant exists."""
        return np.arange(len(self.timestamps))[None, :] >= self.first_index[:, None]

    def blank(self) -> FloatArray:
        """(N, T) zeros where the tenant exists, NaN before (no discards, say)."""
        out = np.zeros((len(self.tenants), len(self.timestamps)))
        _mask_absent(out, self.first_index)
        return out

    # --- derived signals (float64, computed on every access) ------------------------------
    @property
    def samples_accepted(self) -> FloatArray:
        """samples/s accepted: Mimir's limiter is charged samples + exemplars (+ metadata, not
        simulated) and rejects whole requests, so what passes keeps the exemplar share."""
        return _readonly(self._accepted())

    def _accepted(self) -> FloatArray:
        """A new writable (N, T) array of accepted samples/s (derived signals reuse it in
        place: each new 46 MB array at 10,000 tenants costs its page faults)."""
        cap = self.limits["ingestion_rate"] / (1.0 + self.exemplar_share)
        return np.minimum(self.samples_demand, cap[:, None], dtype=np.float64)

    @property
    def series(self) -> FloatArray:
        """In-memory series: min(series_demand, max_global_series_per_user)."""
        cap = self.limits["max_global_series_per_user"]
        return _readonly(np.minimum(self.series_demand, cap[:, None], dtype=np.float64))

    @property
    def requests(self) -> FloatArray:
        """Accepted write requests/s."""
        out = self._accepted()
        out /= self.batch[:, None]
        return _readonly(out)

    @property
    def exemplars_received(self) -> FloatArray:
        """Accepted exemplars/s."""
        return _readonly(self._exemplars_received())

    def _exemplars_received(self) -> FloatArray:
        out = self._accepted()
        out *= self.exemplar_share[:, None]
        return out

    @property
    def exemplars_stored(self) -> FloatArray:
        """Exemplars held in ingester storage: min(limit, received/s x retention)."""
        return _readonly(self._exemplars_stored())

    def _exemplars_stored(self) -> FloatArray:
        out = self._exemplars_received()
        out *= EXEMPLAR_RETENTION
        np.minimum(out, self.limits["max_global_exemplars_per_user"][:, None], out=out)
        np.rint(out, out=out)
        return out

    @property
    def metadata(self) -> FloatArray:
        """Metric metadata entries in memory (they follow the trend, not the daily cycle)."""
        out = _metadata(self.timestamps, self.trend_end, self.growth, self.metadata_base)
        _mask_absent(out, self.first_index)
        return _readonly(out)

    @property
    def discards(self) -> _Discards:
        """reason -> discarded samples/s (true, not x RF), each computed when read."""
        return _Discards(self)

    def exemplars_rate_limited(self) -> FloatArray:
        """(N, T) exemplars/s rejected with reason rate_limited (they travel with the samples)."""
        rejected: FloatArray = self.discards["rate_limited"] * self.exemplar_share[:, None]
        return rejected

    def exemplar_series(self) -> FloatArray:
        """(N, T) series with at least one exemplar in storage (what Mimir exposes per tenant:
        `cortex_ingester_tsdb_exemplar_series_with_exemplars_in_storage`)."""
        out = self._exemplars_stored()
        out /= self.exemplars_per_series[:, None]
        return np.ceil(out, out=out)

    def overrides_document(self) -> dict[str, dict[str, dict[str, int | float]]]:
        """The operator's runtime overrides file, `{"overrides": {tenant: {limit: value}}}`."""
        doc: dict[str, dict[str, int | float]] = {}
        for name, mask in self.overridden.items():
            for row in np.flatnonzero(mask):
                value = float(self.limits[name][row])
                entry = doc.setdefault(self.tenants[row], {})
                entry[name] = value if name in FLOAT_LIMITS else int(value)
        return {"overrides": {tenant: doc[tenant] for tenant in self.tenants if tenant in doc}}


class _Discards(Mapping[str, FloatArray]):
    """The cluster's discards by reason, each (N, T) array computed when read (not kept)."""

    def __init__(self, cluster: SyntheticCluster) -> None:
        self._cluster = cluster

    def __getitem__(self, reason: str) -> FloatArray:
        return _readonly(self.fresh(reason))

    def fresh(self, reason: str) -> FloatArray:
        """A new writable array of `reason`'s discards (callers may reuse it in place)."""
        if reason not in DISCARD_REASONS:
            raise KeyError(reason)
        c = self._cluster
        out = c.blank()
        if reason == "rate_limited":
            # Only tenants whose demand ever exceeds what the limiter lets through discard.
            cap = c.limits["ingestion_rate"] / (1.0 + c.exemplar_share)
            for row in _rows_over(c.samples_demand, cap):
                demand = np.asarray(c.samples_demand[row], dtype=np.float64)
                out[row] = demand - np.minimum(demand, cap[row])
        elif reason == "per_user_series_limit":
            # Ingesters reject the accepted samples of the series over the limit (each series
            # sends samples_accepted / series_demand samples/s).
            cap = c.limits["max_global_series_per_user"]
            rate = c.limits["ingestion_rate"] / (1.0 + c.exemplar_share)
            for row in _rows_over(c.series_demand, cap):
                demand = np.asarray(c.series_demand[row], dtype=np.float64)
                rejected = demand - np.minimum(demand, cap[row])
                rejected *= np.minimum(c.samples_demand[row], rate[row], dtype=np.float64)
                np.divide(rejected, demand, out=rejected, where=demand > 0)
                out[row] = rejected
        elif reason == "label_value_too_long":
            for row, first, end, value in c.label_episodes:
                out[row, first:end] = value
            _mask_absent(out, c.first_index)
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(DISCARD_REASONS)

    def __len__(self) -> int:
        return len(DISCARD_REASONS)


def _rows_over(demand: Float32Array, cap: FloatArray) -> list[int]:
    """Rows whose demand exceeds `cap` somewhere (NaN never does)."""
    with np.errstate(invalid="ignore"):
        peaks = np.fmax.reduce(demand, axis=1) if demand.shape[1] else np.zeros(len(cap))
    return np.flatnonzero(peaks > cap).tolist()


def _metadata(
    timestamps: FloatArray, end: float, growth: FloatArray, base: FloatArray
) -> FloatArray:
    """(N, T) metadata entries at `timestamps` ((T,), or (N, 1) one per tenant):
    (trend + 1) / 2 x base, the trend (1 at `end`, `growth` per day) floored at 0.2."""
    days_to_end = (timestamps - end) / DAY
    out = growth[:, None] * (days_to_end[None, :] if days_to_end.ndim == 1 else days_to_end)
    out += 1.0
    np.maximum(out, 0.2, out=out)
    out += 1.0
    out *= (0.5 * base)[:, None]
    np.rint(out, out=out)
    return out


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


def _mask_absent(array: npt.NDArray[np.floating[Any]], first: IntArray) -> None:
    """NaN before each tenant's first index (only late starters have one above 0)."""
    for row in np.flatnonzero(first > 0).tolist():
        array[row, : first[row]] = np.nan


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
    _mask_absent(samples_demand, first_index)
    _mask_absent(series_demand, first_index)

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
    peak_metadata = _metadata(at_ends, end, growth, metadata_base).max(axis=1)
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
        timestamps=_readonly(timestamps),
        step=step,
        replication_factor=replication_factor,
        seed=settings.seed,
        archetypes=MappingProxyType(groups),
        first_index=_readonly(first_index),
        samples_demand=_readonly(samples_demand),
        series_demand=_readonly(series_demand),
        limits=MappingProxyType({k: _readonly(limits[k]) for k in CLUSTER_DEFAULTS}),
        defaults=CLUSTER_DEFAULTS,
        overridden=MappingProxyType({k: _readonly(overridden[k]) for k in CLUSTER_DEFAULTS}),
        series_churn=_readonly(series_churn),
        metadata_churn=_readonly(metadata_churn),
        exemplars_per_series=_readonly(exemplars_per_series),
        exemplar_share=_readonly(exemplar_share),
        batch=_readonly(batch),
        growth=_readonly(growth),
        metadata_base=_readonly(metadata_base),
        trend_end=float(end),
        label_episodes=tuple(episodes),
    )
