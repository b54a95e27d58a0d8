"""The rates cost is computed from, for ALL tenants at once: one range query per cost signal
(never one per tenant), or the synthetic cluster's truth.

Signals (see engine/cost/usage.py for units):
- samples: `rate(cortex_distributor_received_samples_total)`: samples accepted by the
  distributors (after rate limiting and HA dedupe; exemplars and metadata not included),
- series: the catalogue's usage query of `max_global_series_per_user` (in-memory series,
  deduplicated by the replication factor),
- queries: `rate(cortex_query_frontend_queries_total)` (query-frontend query stats),
- fetched_bytes: `rate(cortex_query_fetched_chunk_bytes_total)` (query stats).
The range queries run through `PrometheusSource` (step-aligned chunks, bounded concurrency,
retries, tenant-id checks): the same `step` and `rateInterval` as the usage queries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

import httpx
import numpy as np

from mimir_limit_optimizer.catalogue import Catalogue, LimitSpec, LimitType, SignalKind
from mimir_limit_optimizer.config.models import Config, PrometheusSettings, SyntheticSettings
from mimir_limit_optimizer.engine.cost.usage import SIGNALS, CostUsage
from mimir_limit_optimizer.engine.usage import FloatArray
from mimir_limit_optimizer.sources.prometheus import PrometheusSource
from mimir_limit_optimizer.sources.synthetic import SyntheticSource

__all__ = [
    "COST_QUERIES",
    "CostSource",
    "PrometheusCostSource",
    "SyntheticCostSource",
    "build_cost_source",
]

# Templates as in the catalogue: ${sel} extra matchers, ${rate} rate window. "series" comes
# from the catalogue (the usage query of max_global_series_per_user).
COST_QUERIES: Mapping[str, str] = MappingProxyType(
    {
        "samples": (
            "sum by (user) (rate(cortex_distributor_received_samples_total{${sel}}[${rate}]))"
        ),
        "queries": "sum by (user) (rate(cortex_query_frontend_queries_total{${sel}}[${rate}]))",
        "fetched_bytes": (
            "sum by (user) (rate(cortex_query_fetched_chunk_bytes_total{${sel}}[${rate}]))"
        ),
    }
)
_SERIES_LIMIT = "max_global_series_per_user"
_NO_QUERIES = "the synthetic cluster does not simulate queries (no query statistics)"


class CostSource(Protocol):
    def collect_cost(self, signals: Sequence[str], *, start: float, end: float) -> CostUsage:
        """Rates of `signals` for every tenant over [start, end] (unix seconds)."""
        ...

    def describe(self) -> str: ...


def _spec(signal: str, query: str) -> LimitSpec:
    """A pseudo limit carrying one cost query, so PrometheusSource can run it."""
    return LimitSpec(
        name=f"cost:{signal}",
        type=LimitType.RATE,
        default=0.0,
        unit="",
        signal=SignalKind.USAGE,
        category="cost",
        description=f"cost signal {signal}",
        checked_against="",
        usage_query=query,
    )


class PrometheusCostSource:
    """Cost signals from a Prometheus-compatible query API (one range query per signal)."""

    def __init__(
        self,
        settings: PrometheusSettings,
        catalogue: Catalogue,
        *,
        replication_factor: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._source = PrometheusSource(
            settings,
            replication_factor=replication_factor,
            transport=transport,
            env=env or {},
        )
        series = catalogue.limits[_SERIES_LIMIT].usage_query
        queries = dict(COST_QUERIES)
        if series:
            queries["series"] = series
        self._specs = {signal: _spec(signal, query) for signal, query in queries.items()}

    def describe(self) -> str:
        return self._source.describe()

    def collect_cost(self, signals: Sequence[str], *, start: float, end: float) -> CostUsage:
        specs = [self._specs[s] for s in signals if s in self._specs]
        observation = self._source.collect(specs, start=start, end=end)
        rates: dict[str, FloatArray] = {}
        unavailable: dict[str, str] = {
            s: f"no query for cost signal {s}" for s in signals if s not in self._specs
        }
        for signal in signals:
            spec = self._specs.get(signal)
            if spec is None:
                continue
            if spec.name in observation.unavailable:
                unavailable[signal] = observation.unavailable[spec.name]
                continue
            array = observation.usage[spec.name]
            if len(observation.timestamps) and not np.isfinite(array).any():
                unavailable[signal] = f"no series in the window for: {spec.usage_query}"
                continue
            rates[signal] = np.asarray(array, dtype=np.float64)  # sources may hand float32
        return CostUsage(
            observation.tenants, observation.timestamps, observation.step, rates, unavailable
        )


class SyntheticCostSource:
    """Cost signals of the built-in synthetic cluster (what the Prometheus queries above
    return over its OpenMetrics rendering). It simulates no queries."""

    def __init__(self, source: SyntheticSource) -> None:
        self._source = source

    @classmethod
    def from_settings(
        cls, settings: SyntheticSettings, *, now: float, replication_factor: int = 3
    ) -> SyntheticCostSource:
        end = math.floor(now / settings.step) * settings.step
        return cls(SyntheticSource(settings, end=end, replication_factor=replication_factor))

    def describe(self) -> str:
        return self._source.describe()

    def collect_cost(self, signals: Sequence[str], *, start: float, end: float) -> CostUsage:
        cluster = self._source.cluster.columns(self._source.window(start, end))
        truth = {"samples": lambda: cluster.samples_accepted, "series": lambda: cluster.series}
        rates: dict[str, FloatArray] = {}
        unavailable: dict[str, str] = {}
        for signal in signals:
            if signal in truth:
                rates[signal] = np.array(truth[signal](), dtype=np.float64)
            elif signal in SIGNALS:
                unavailable[signal] = _NO_QUERIES
        return CostUsage(cluster.tenants, cluster.timestamps, cluster.step, rates, unavailable)


def build_cost_source(
    config: Config, catalogue: Catalogue, *, now: float, env: Mapping[str, str]
) -> CostSource:
    """The cost source matching `source.kind`."""
    if config.source.kind == "prometheus":
        return PrometheusCostSource(
            config.source.prometheus,
            catalogue,
            replication_factor=config.mimir.replication_factor,
            env=env,
        )
    return SyntheticCostSource.from_settings(
        config.synthetic, now=now, replication_factor=config.mimir.replication_factor
    )
