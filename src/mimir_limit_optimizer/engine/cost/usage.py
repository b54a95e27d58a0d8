"""What cost is computed from: per-tenant RATES on a time grid (never raw counter values), and
their integral per UTC day.

Signals and units (a source computes rates from counters, e.g. `rate(x[5m])`):
- `samples`: samples/s accepted by the distributors,
- `series`: active (in-memory, deduplicated) series, a level,
- `queries`: queries/s received by the query-frontend,
- `fetched_bytes`: chunk bytes/s fetched by queries (query stats).

Time model (as the sources'): `timestamps[i]` closes the step `(timestamps[i] - step,
timestamps[i]]` and the value holds for that whole step, so a step contributes `value x step`:
samples, series-seconds, queries, bytes. A step belongs to the UTC day holding its midpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine.cost.periods import DAY, HOUR
from mimir_limit_optimizer.engine.usage import FloatArray, Observation

SIGNALS: tuple[str, ...] = ("samples", "series", "queries", "fetched_bytes")
RATE_UNITS: Mapping[str, str] = MappingProxyType(
    {"samples": "samples/s", "series": "series", "queries": "queries/s", "fetched_bytes": "bytes/s"}
)
# Unit of a signal's integral (what the ledger stores per tenant and day).
QUANTITY_UNITS: Mapping[str, str] = MappingProxyType(
    {"samples": "samples", "series": "series-hours", "queries": "queries", "fetched_bytes": "bytes"}
)
# Integral of one unit of rate over one second, in quantity units.
_PER_SECOND: Mapping[str, float] = MappingProxyType(
    {"samples": 1.0, "series": 1.0 / HOUR, "queries": 1.0, "fetched_bytes": 1.0}
)

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CostUsage:
    """Rates of N tenants over T grid points; NaN where a tenant had no data.

    `unavailable[signal]`: why a signal could not be collected (it then counts as missing,
    never as 0). A signal absent from both `rates` and `unavailable` was not asked for."""

    tenants: tuple[str, ...]
    timestamps: FloatArray  # (T,) unix seconds, ascending, spaced by `step`
    step: float
    rates: Mapping[str, FloatArray]  # signal -> (N, T)
    unavailable: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (len(self.tenants), len(self.timestamps))
        for name, array in self.rates.items():
            if name not in SIGNALS:
                raise ValueError(f"unknown cost signal {name!r}; known: {', '.join(SIGNALS)}")
            if array.shape != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {array.shape}")
        if self.step <= 0:
            raise ValueError(f"step must be > 0 seconds, got {self.step}")


def usage_from_observation(observation: Observation) -> CostUsage:
    """Cost signals from a recommendation cycle's Observation, when no cost source is at hand:
    samples from `ingestion_rate` usage (which also counts exemplars and metadata: an upper
    bound) and series from `max_global_series_per_user` usage. No query signal."""
    rates: dict[str, FloatArray] = {}
    unavailable: dict[str, str] = {}
    for signal, limit in (("samples", "ingestion_rate"), ("series", "max_global_series_per_user")):
        if limit in observation.usage:
            rates[signal] = np.asarray(observation.usage[limit], dtype=np.float64)
        else:
            unavailable[signal] = observation.unavailable.get(limit, f"{limit} is not collected")
    for signal in ("queries", "fetched_bytes"):
        unavailable[signal] = "a recommendation cycle's observation carries no query statistics"
    return CostUsage(
        tenants=observation.tenants,
        timestamps=np.asarray(observation.timestamps, dtype=np.float64),
        step=observation.step,
        rates=rates,
        unavailable=unavailable,
    )


@dataclass(frozen=True)
class DailyQuantities:
    """The integral of each collected signal per tenant and UTC day.

    `coverage[d]`: seconds of day d for which the source returned data (for any tenant and
    signal); a tenant without data in a covered step used nothing then."""

    tenants: tuple[str, ...]
    days: IntArray  # (D,) day numbers, ascending
    coverage: FloatArray  # (D,) seconds
    quantities: Mapping[str, FloatArray]  # signal -> (N, D), in QUANTITY_UNITS
    unavailable: Mapping[str, str] = field(default_factory=dict)


def integrate_daily(usage: CostUsage) -> DailyQuantities:
    """Sum `rate x step` per tenant and UTC day (vectorised over tenants)."""
    n = len(usage.tenants)
    if len(usage.timestamps) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return DailyQuantities(
            usage.tenants,
            empty,
            np.zeros(0),
            {s: np.zeros((n, 0)) for s in usage.rates},
            dict(usage.unavailable),
        )
    midpoints = usage.timestamps - usage.step / 2
    day_of_point = np.floor(midpoints / DAY).astype(np.int64)
    days, first = np.unique(day_of_point, return_index=True)
    present = np.zeros(len(usage.timestamps), dtype=bool)
    for array in usage.rates.values():
        present |= np.isfinite(array).any(axis=0)
    coverage = np.add.reduceat(present.astype(np.float64) * usage.step, first)
    quantities: dict[str, FloatArray] = {}
    for signal, array in usage.rates.items():
        per_step = np.nan_to_num(array, nan=0.0) * (usage.step * _PER_SECOND[signal])
        if n == 0:
            quantities[signal] = np.zeros((0, len(days)))
        else:
            quantities[signal] = np.add.reduceat(per_step, first, axis=1)
    return DailyQuantities(usage.tenants, days, coverage, quantities, dict(usage.unavailable))


def recent_rates(usage: CostUsage, *, window: float = HOUR) -> dict[str, FloatArray]:
    """Each signal's mean per tenant over the last `window` seconds of data (0 without data):
    the rates enforcement converts budgets into limits with."""
    if len(usage.timestamps) == 0:
        return {s: np.zeros(len(usage.tenants)) for s in usage.rates}
    recent = usage.timestamps > usage.timestamps[-1] - window
    out: dict[str, FloatArray] = {}
    for signal, array in usage.rates.items():
        part = array[:, recent]
        with np.errstate(invalid="ignore"):
            counts = np.isfinite(part).sum(axis=1)
            sums = np.nansum(part, axis=1)
        out[signal] = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return out
