"""A synthetic fast source: a steady cluster (from the synthetic model, or hand-made) into which
blasts (a tenant's series, ingestion or queries jumping) and pressure episodes (ingester
memory, CPU, ... at given percentages, components down, reload failures) are injected at
given times. `write_fast_openmetrics` (fast_synthetic_openmetrics.py) renders the same
scenario as the raw Mimir, cAdvisor and kube-state-metrics series, so a real Prometheus can
hold it (promtool backfill) and `PrometheusFastSource` reads what `SyntheticFastSource`
returns.

The synthetic source applies `limits_in_force` (what the optimizer wrote) to its traffic, the
way Mimir would: accepted samples are capped by ingestion_rate, in-memory series by
max_global_series_per_user, the rest is rejected (discards). So a clamp visibly works in a
closed loop. It returns the values at `now`; Prometheus' rate() averages them over the rate
window, so right after a step change the two differ for one window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from mimir_limit_optimizer.engine.protection.model import (
    BASELINES,
    RES_INGESTER_SERIES,
    RES_INGESTION,
    RESOURCES,
    SIG_INGESTION,
    SIG_INGESTION_DISCARDED,
    SIG_NEW_SERIES,
    SIG_QUERIES,
    SIG_SERIES,
    SIG_SERIES_DISCARDED,
    BoolArray,
    FastObservation,
    Kind,
)
from mimir_limit_optimizer.engine.usage import FloatArray
from mimir_limit_optimizer.sources.synthetic_model import SyntheticCluster

__all__ = [
    "Blast",
    "FastScenario",
    "PressureEpisode",
    "SyntheticFastSource",
    "scenario_from_cluster",
]

HOUR = 3600.0
RATE = "ingestion_rate"
BURST = "ingestion_burst_size"
SERIES = "max_global_series_per_user"
PARALLELISM = "max_query_parallelism"
# Mimir's defaults of the protected limits the synthetic cluster does not model.
DEFAULT_LIMITS: Mapping[str, float] = MappingProxyType(
    {RATE: 10_000.0, BURST: 200_000.0, SERIES: 150_000.0, PARALLELISM: 14.0}
)
DEFAULT_PRESSURE: Mapping[str, float] = MappingProxyType(dict.fromkeys(RESOURCES, 40.0))


@dataclass(frozen=True)
class Blast:
    """From `start` to `end`, `tenant`'s demand is multiplied by the factors, reached
    linearly over `ramp` seconds."""

    tenant: str
    start: float
    end: float = math.inf
    series_factor: float = 1.0
    ingestion_factor: float = 1.0
    query_factor: float = 1.0
    ramp: float = 60.0

    def progress(self, t: float) -> float:
        if not self.start <= t < self.end:
            return 0.0
        return 1.0 if self.ramp <= 0 else min(1.0, (t - self.start) / self.ramp)


@dataclass(frozen=True)
class PressureEpisode:
    """From `start` to `end`: resources at least at these percentages, these Mimir jobs with
    that many instances down, and (optionally) the runtime config failing to reload."""

    start: float
    end: float
    pressure: Mapping[str, float] = field(default_factory=dict)
    components_down: Mapping[str, int] = field(default_factory=dict)
    reload_failed: bool = False

    def active(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class FastTruth:
    """The cluster at one instant (per tenant arrays aligned to the scenario's tenants)."""

    accepted: FloatArray
    rate_limited: FloatArray
    series: FloatArray
    series_rejected: FloatArray  # series over the limit
    rejected_samples: FloatArray  # their samples/s (what ingesters count as discarded)
    new_series: FloatArray
    queries: FloatArray
    limits: Mapping[str, FloatArray]
    pressure: Mapping[str, float]
    components_down: Mapping[str, int]
    reload_ok: bool


@dataclass(frozen=True)
class FastScenario:
    """A steady cluster plus injected events. Per-tenant arrays are (N,): baseline demand
    (samples/s, series, queries/s; NaN = the tenant does not exist), series churn (share
    replaced per hour) and the limits in force (Mimir's defaults where `overridden` is
    False). `base_pressure` is each resource's steady percentage; ingester series and
    ingestion pressure also follow the tenants' totals (a blast raises them)."""

    tenants: tuple[str, ...]
    ingestion: FloatArray
    series: FloatArray
    queries: FloatArray
    churn: FloatArray
    limits: Mapping[str, FloatArray]
    overridden: Mapping[str, BoolArray]
    blasts: tuple[Blast, ...] = ()
    episodes: tuple[PressureEpisode, ...] = ()
    base_pressure: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PRESSURE))
    replication_factor: int = 3
    defaults: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_LIMITS))

    def _factors(self, t: float) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        n = len(self.tenants)
        ing, ser, qry, growth = np.ones(n), np.ones(n), np.ones(n), np.zeros(n)
        index = {tenant: i for i, tenant in enumerate(self.tenants)}
        for blast in self.blasts:
            i = index.get(blast.tenant)
            if i is None:
                continue
            p = blast.progress(t)
            ing[i] *= 1 + (blast.ingestion_factor - 1) * p
            ser[i] *= 1 + (blast.series_factor - 1) * p
            qry[i] *= 1 + (blast.query_factor - 1) * p
            if 0 < p < 1 and blast.ramp > 0:  # series/s created while ramping up
                growth[i] += (blast.series_factor - 1) * self.series[i] / blast.ramp
        return ing, ser, qry, growth

    def limits_at(
        self, in_force: Mapping[str, Mapping[str, float]] | None
    ) -> dict[str, FloatArray]:
        limits = {name: values.copy() for name, values in self.limits.items()}
        for tenant_index, tenant in enumerate(self.tenants):
            for name, value in (in_force or {}).get(tenant, {}).items():
                if name in limits:
                    limits[name][tenant_index] = value
        return limits

    def truth(
        self, t: float, limits_in_force: Mapping[str, Mapping[str, float]] | None = None
    ) -> FastTruth:
        ing, ser, qry, growth = self._factors(t)
        limits = self.limits_at(limits_in_force)
        demand = self.ingestion * ing
        rate = np.where(limits[RATE] > 0, limits[RATE], np.inf)
        accepted = np.minimum(demand, rate)
        wanted = self.series * ser
        cap = np.where(limits[SERIES] > 0, limits[SERIES], np.inf)
        series = np.minimum(wanted, cap)
        rejected = wanted - series
        rejected_samples = np.zeros_like(accepted)
        np.divide(accepted * rejected, wanted, out=rejected_samples, where=wanted > 0)
        new = self.churn * series / HOUR + np.where(wanted < cap, growth, 0.0)
        pressure = dict(self.base_pressure)
        totals = float(np.nansum(series)), float(np.nansum(self.series))
        if totals[1] > 0:
            pressure[RES_INGESTER_SERIES] = (
                self.base_pressure[RES_INGESTER_SERIES] * totals[0] / totals[1]
            )
        accepted_base = float(np.nansum(np.minimum(self.ingestion, rate)))
        if accepted_base > 0:
            pressure[RES_INGESTION] = (
                self.base_pressure[RES_INGESTION] * float(np.nansum(accepted)) / accepted_base
            )
        down: dict[str, int] = {}
        reload_ok = True
        for episode in self.episodes:
            if not episode.active(t):
                continue
            for resource, value in episode.pressure.items():
                pressure[resource] = max(pressure.get(resource, 0.0), value)
            for job, count in episode.components_down.items():
                down[job] = max(down.get(job, 0), count)
            reload_ok = reload_ok and not episode.reload_failed
        return FastTruth(
            accepted=accepted,
            rate_limited=demand - accepted,
            series=series,
            series_rejected=rejected,
            rejected_samples=rejected_samples,
            new_series=new,
            queries=self.queries * qry,
            limits=limits,
            pressure=pressure,
            components_down=down,
            reload_ok=reload_ok,
        )


def scenario_from_cluster(
    cluster: SyntheticCluster,
    *,
    blasts: Iterable[Blast] = (),
    episodes: Iterable[PressureEpisode] = (),
    base_pressure: Mapping[str, float] = DEFAULT_PRESSURE,
) -> FastScenario:
    """A steady scenario at the cluster's last timestamp (its demand, series, churn and
    limits); queries are not in the model: one query/s per 20,000 series, at least 0.1."""
    last = -1
    ingestion = cluster.samples_demand[:, last] * (1.0 + cluster.exemplar_share)
    series = np.asarray(cluster.series_demand[:, last], dtype=np.float64)
    n = len(cluster.tenants)
    limits = {
        RATE: np.array(cluster.limits[RATE], dtype=np.float64),
        BURST: np.array(cluster.limits[BURST], dtype=np.float64),
        SERIES: np.array(cluster.limits[SERIES], dtype=np.float64),
        PARALLELISM: np.full(n, DEFAULT_LIMITS[PARALLELISM]),
    }
    overridden = {
        RATE: np.array(cluster.overridden[RATE]),
        BURST: np.array(cluster.overridden[BURST]),
        SERIES: np.array(cluster.overridden[SERIES]),
        PARALLELISM: np.zeros(n, dtype=bool),
    }
    return FastScenario(
        tenants=cluster.tenants,
        ingestion=ingestion,
        series=series,
        queries=np.maximum(0.1, np.nan_to_num(series) / 20_000.0),
        churn=np.array(cluster.series_churn, dtype=np.float64),
        limits=limits,
        overridden=overridden,
        blasts=tuple(blasts),
        episodes=tuple(episodes),
        base_pressure=base_pressure,
        replication_factor=cluster.replication_factor,
        defaults={**DEFAULT_LIMITS, **{k: cluster.defaults[k] for k in (RATE, BURST, SERIES)}},
    )


class SyntheticFastSource:
    """A FastSource over a FastScenario (deterministic: the same time, the same answer)."""

    def __init__(self, scenario: FastScenario) -> None:
        self.scenario = scenario
        self.reads = 0

    def describe(self) -> str:
        s = self.scenario
        return (
            f"synthetic fast signals ({len(s.tenants)} tenants, {len(s.blasts)} blasts, "
            f"{len(s.episodes)} pressure episodes)"
        )

    def read(
        self,
        now: float,
        *,
        warmup: float = 0.0,
        percentile: float = 95.0,
        limits_in_force: Mapping[str, Mapping[str, float]] | None = None,
    ) -> FastObservation:
        self.reads += 1
        truth = self.scenario.truth(now, limits_in_force)
        signals = {
            SIG_INGESTION: truth.accepted,
            SIG_INGESTION_DISCARDED: truth.rate_limited,
            SIG_SERIES: truth.series,
            SIG_SERIES_DISCARDED: truth.series_rejected,
            SIG_NEW_SERIES: truth.new_series,
            SIG_QUERIES: truth.queries,
        }
        warm: dict[str, FloatArray] = {}
        if warmup > 0:
            times = np.arange(now - warmup, now + 1e-9, 60.0)
            samples: dict[str, list[FloatArray]] = {name: [] for name in BASELINES}
            for t in times.tolist():
                past = self.scenario.truth(t, limits_in_force)
                samples[Kind.INGESTION.value].append(past.accepted + past.rate_limited)
                samples[Kind.SERIES.value].append(past.series + past.series_rejected)
                samples[Kind.QUERY.value].append(past.queries)
                samples[SIG_NEW_SERIES].append(past.new_series)
            warm = {
                name: np.nanpercentile(np.vstack(batch), percentile, axis=0)
                for name, batch in samples.items()
            }
        return FastObservation(
            at=now,
            tenants=self.scenario.tenants,
            signals=signals,
            limits={name: values.copy() for name, values in self.scenario.limits.items()},
            pressure=dict(truth.pressure),
            components_down={k: v for k, v in truth.components_down.items() if v > 0},
            reload_ok=truth.reload_ok,
            warmup=warm,
        )
