"""What protection works on: its vocabulary (breaker kinds and states, emergency levels, the
signal and resource names), the fast signals of one tick and the events one step produces.
What it remembers between ticks is state.py's `ProtectionState`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine.usage import FloatArray

BoolArray = npt.NDArray[np.bool_]


class BreakerState(IntEnum):
    """Values of `circuit_breaker_state{user}`: 0 closed, 1 open, 2 half-open."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class Level(IntEnum):
    NORMAL = 0
    WARNING = 1
    EMERGENCY = 2
    PANIC = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Kind(StrEnum):
    """What a per-tenant breaker watches, and so which limits it clamps."""

    INGESTION = "ingestion"
    SERIES = "series"
    QUERY = "query"


KINDS: tuple[Kind, ...] = (Kind.INGESTION, Kind.SERIES, Kind.QUERY)
# The limits each breaker kind tightens (the first is the one its threshold refers to).
KIND_LIMITS: Mapping[Kind, tuple[str, ...]] = MappingProxyType(
    {
        Kind.INGESTION: ("ingestion_rate", "ingestion_burst_size"),
        Kind.SERIES: ("max_global_series_per_user",),
        Kind.QUERY: ("max_query_parallelism",),
    }
)
BURST_LIMIT = "ingestion_burst_size"

# Per-tenant signal names of a FastObservation (all per second except `series`).
# The ingestion and series signals are the catalogue's usage and discard queries of
# ingestion_rate and max_global_series_per_user (same units: demand = usage + discards).
SIG_INGESTION = "ingestion"  # samples (+ exemplars, metadata)/s accepted by distributors
SIG_INGESTION_DISCARDED = "ingestion_discarded"  # the same, rejected as rate_limited
SIG_SERIES = "series"  # in-memory series, deduplicated (one replica)
SIG_SERIES_DISCARDED = "series_discarded"  # estimated series rejected by the series limit
SIG_NEW_SERIES = "new_series"  # series created per second, deduplicated
SIG_QUERIES = "queries"  # queries/s at the query-frontend
SIGNALS = (
    SIG_INGESTION,
    SIG_INGESTION_DISCARDED,
    SIG_SERIES,
    SIG_SERIES_DISCARDED,
    SIG_NEW_SERIES,
    SIG_QUERIES,
)
# Baselines kept per tenant: the demand of each kind, and the new-series rate (for the
# cluster-wide series explosion detector).
BASELINES = (Kind.INGESTION.value, Kind.SERIES.value, Kind.QUERY.value, SIG_NEW_SERIES)

# Cluster pressure signals, percent of a capacity.
RES_INGESTER_SERIES = "ingester_series"  # cortex_ingester_memory_series / max_series
RES_INGESTER_MEMORY = "ingester_memory"  # container working set / memory limit
RES_INGESTER_CPU = "ingester_cpu"
RES_DISTRIBUTOR_MEMORY = "distributor_memory"
RES_DISTRIBUTOR_CPU = "distributor_cpu"
RES_INGESTION = "ingestion"  # distributor ingestion rate / max_ingestion_rate
RESOURCES = (
    RES_INGESTER_SERIES,
    RES_INGESTER_MEMORY,
    RES_INGESTER_CPU,
    RES_DISTRIBUTOR_MEMORY,
    RES_DISTRIBUTOR_CPU,
    RES_INGESTION,
)


@dataclass(frozen=True)
class FastObservation:
    """One instant read of the fast signals for all tenants.

    - `signals[name]`: (N,) per tenant (SIG_*), NaN where the tenant had no sample.
    - `limits[limit]`: (N,) the limit in force as the source sees it (Mimir's overrides
      exporter, or the synthetic cluster); NaN when unknown (the controller fills in the
      overrides file, the configured default and the catalogue default).
    - `pressure[resource]`: percent (RES_*); absent or NaN when not measurable.
    - `components_down[job]`: instances of that Mimir job with `up == 0`.
    - `reload_ok`: Mimir's runtime config reload state (None: unknown).
    - `warmup[baseline]`: (N,) a percentile of the recent past, when asked for (start-up).
    """

    at: float
    tenants: tuple[str, ...]
    signals: Mapping[str, FloatArray]
    limits: Mapping[str, FloatArray] = field(default_factory=dict)
    pressure: Mapping[str, float] = field(default_factory=dict)
    components_down: Mapping[str, int] = field(default_factory=dict)
    reload_ok: bool | None = None
    unavailable: Mapping[str, str] = field(default_factory=dict)
    warmup: Mapping[str, FloatArray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.tenants)
        for name, array in (*self.signals.items(), *self.limits.items(), *self.warmup.items()):
            if array.shape != (n,):
                raise ValueError(f"{name}: expected shape {(n,)}, got {array.shape}")

    def signal(self, name: str) -> FloatArray:
        """(N,) values of `name`; all NaN when the source did not provide it."""
        values = self.signals.get(name)
        return values if values is not None else np.full(len(self.tenants), np.nan)


@dataclass(frozen=True)
class Event:
    """Something a step did or found. `action` names it (`circuit_breaker_open`,
    `emergency_level_changed`, ...); details carry old/new values, thresholds and reasons."""

    action: str
    tenant: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    level: str = "info"  # info | warning | error (the audit levels)
