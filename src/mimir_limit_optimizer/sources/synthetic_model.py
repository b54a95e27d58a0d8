"""A synthetic multi-tenant Mimir cluster: the TRUE per-tenant usage behind the demo and tests.

`synthetic_generate.generate_cluster` fills it, pure and deterministic: the same settings and
`end` always give the same arrays. Everything is vectorised over tenants x time, so 10,000
tenants x 2016 points take about a second.

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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

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


def readonly(array: _Array) -> _Array:
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
            first_index=readonly(np.maximum(self.first_index - lo, 0)),
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
        mask_absent(out, self.first_index)
        return out

    # --- derived signals (float64, computed on every access) ------------------------------
    @property
    def samples_accepted(self) -> FloatArray:
        """samples/s accepted: Mimir's limiter is charged samples + exemplars (+ metadata, not
        simulated) and rejects whole requests, so what passes keeps the exemplar share."""
        return readonly(self._accepted())

    def _accepted(self) -> FloatArray:
        """A new writable (N, T) array of accepted samples/s (derived signals reuse it in
        place: each new 46 MB array at 10,000 tenants costs its page faults)."""
        cap = self.limits["ingestion_rate"] / (1.0 + self.exemplar_share)
        return np.minimum(self.samples_demand, cap[:, None], dtype=np.float64)

    @property
    def series(self) -> FloatArray:
        """In-memory series: min(series_demand, max_global_series_per_user)."""
        cap = self.limits["max_global_series_per_user"]
        return readonly(np.minimum(self.series_demand, cap[:, None], dtype=np.float64))

    @property
    def requests(self) -> FloatArray:
        """Accepted write requests/s."""
        out = self._accepted()
        out /= self.batch[:, None]
        return readonly(out)

    @property
    def exemplars_received(self) -> FloatArray:
        """Accepted exemplars/s."""
        return readonly(self._exemplars_received())

    def _exemplars_received(self) -> FloatArray:
        out = self._accepted()
        out *= self.exemplar_share[:, None]
        return out

    @property
    def exemplars_stored(self) -> FloatArray:
        """Exemplars held in ingester storage: min(limit, received/s x retention)."""
        return readonly(self._exemplars_stored())

    def _exemplars_stored(self) -> FloatArray:
        out = self._exemplars_received()
        out *= EXEMPLAR_RETENTION
        np.minimum(out, self.limits["max_global_exemplars_per_user"][:, None], out=out)
        np.rint(out, out=out)
        return out

    @property
    def metadata(self) -> FloatArray:
        """Metric metadata entries in memory (they follow the trend, not the daily cycle)."""
        out = metadata_levels(self.timestamps, self.trend_end, self.growth, self.metadata_base)
        mask_absent(out, self.first_index)
        return readonly(out)

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
        return readonly(self.fresh(reason))

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
            mask_absent(out, c.first_index)
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


def metadata_levels(
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


def mask_absent(array: npt.NDArray[np.floating[Any]], first: IntArray) -> None:
    """NaN before each tenant's first index (only late starters have one above 0)."""
    for row in np.flatnonzero(first > 0).tolist():
        array[row, : first[row]] = np.nan
