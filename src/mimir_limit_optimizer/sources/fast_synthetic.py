"""A synthetic fast source: a steady cluster (from the synthetic model, or hand-made) into which
blasts (a tenant's series, ingestion or queries jumping) and pressure episodes (ingester
memory, CPU, ... at given percentages, components down, reload failures) are injected at
given times. `write_fast_openmetrics` renders the same scenario as the raw Mimir, cAdvisor and
kube-state-metrics series, so a real Prometheus can hold it (promtool backfill) and
`PrometheusFastSource` reads what `SyntheticFastSource` returns.

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
from typing import TextIO

import numpy as np

from mimir_limit_optimizer.engine.protection.model import (
    BASELINES,
    RES_DISTRIBUTOR_CPU,
    RES_DISTRIBUTOR_MEMORY,
    RES_INGESTER_CPU,
    RES_INGESTER_MEMORY,
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
    "write_fast_openmetrics",
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
INGESTER_JOB = "mimir/ingester"
DISTRIBUTOR_JOB = "mimir/distributor"
NAMESPACE = "mimir"
# Capacities behind the container gauges (any value works: only the ratio matters).
MEMORY_LIMIT_BYTES = 8 * 2**30
CPU_LIMIT_CORES = 4.0


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


# --- OpenMetrics ---------------------------------------------------------------------------
def _time(seconds: float) -> str:
    millis = round(seconds * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis / 1000:.3f}"


def _labels(labels: Mapping[str, str]) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return f"{{{inner}}}" if inner else ""


class _Family:
    """One metric family: its HELP/TYPE header is written at once, then its series."""

    def __init__(self, out: TextIO, name: str, kind: str, help_text: str) -> None:
        self.out = out
        self.sample = f"{name}_total" if kind == "counter" else name
        out.write(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")

    def series(self, labels: Mapping[str, str], values: Iterable[float], times: list[str]) -> None:
        prefix = f"{self.sample}{_labels(labels)} "
        self.out.write(
            "".join(
                f"{prefix}{value!r} {t}\n"
                for value, t in zip(values, times, strict=True)
                if math.isfinite(value)
            )
        )


_family = _Family


def _cumulative(rates: FloatArray, interval: float) -> FloatArray:
    """(K, ...) per-scrape rates -> counter values at each scrape (0 at the first)."""
    increments = np.nan_to_num(rates) * interval
    increments[0] = 0.0
    return np.cumsum(increments, axis=0)


def write_fast_openmetrics(
    scenario: FastScenario,
    out: TextIO,
    *,
    start: float,
    end: float,
    scrape_interval: float = 15.0,
) -> None:
    """Write the scenario (with its own limits: no closed loop) scraped every
    `scrape_interval` seconds over [start, end], as OpenMetrics for `promtool tsdb
    create-blocks-from openmetrics`. The value of each rate between two scrapes is the truth
    at the later one, so `rate(x[w])` over whole scrapes is the mean truth of the window."""
    if scrape_interval <= 0 or end <= start:
        raise ValueError("need scrape_interval > 0 and end > start")
    first = math.ceil(start / scrape_interval)
    last = math.floor(end / scrape_interval)
    stamps = [k * scrape_interval for k in range(first, last + 1)]
    times = [_time(t) for t in stamps]
    truths = [scenario.truth(t) for t in stamps]
    n = len(scenario.tenants)
    rf = scenario.replication_factor
    ingesters = [f"ingester-{i}" for i in range(rf)]

    def stack(attr: str) -> FloatArray:
        return np.vstack([getattr(t, attr) for t in truths])

    accepted, limited = stack("accepted"), stack("rate_limited")
    series, rejected_samples = stack("series"), stack("rejected_samples")
    new_series, queries = stack("new_series"), stack("queries")

    rf_family = _family(out, "cortex_distributor_replication_factor", "gauge", "RF.")
    rf_family.series({}, [float(rf)] * len(stamps), times)

    family = _family(out, "cortex_distributor_received_samples", "counter", "Received samples.")
    counts = _cumulative(accepted, scrape_interval)
    for i, tenant in enumerate(scenario.tenants):
        family.series({"user": tenant}, counts[:, i].tolist(), times)

    family = _family(out, "cortex_discarded_samples", "counter", "Discarded samples.")
    counts = _cumulative(limited, scrape_interval)
    for i, tenant in enumerate(scenario.tenants):
        if (limited[:, i] > 0).any():
            family.series({"user": tenant, "reason": "rate_limited"}, counts[:, i].tolist(), times)
    counts = _cumulative(rejected_samples, scrape_interval)
    for i, tenant in enumerate(scenario.tenants):
        if (rejected_samples[:, i] > 0).any():
            for instance in ingesters:  # counted once per replica
                labels = {"user": tenant, "reason": "per_user_series_limit", "instance": instance}
                family.series(labels, counts[:, i].tolist(), times)

    # In-memory series: created - removed; removed grows with churn and every drop.
    present = np.nan_to_num(series)
    drops = np.maximum(-np.diff(present, axis=0, prepend=present[:1]), 0.0)
    churned = np.nan_to_num(series) * np.nan_to_num(np.vstack([scenario.churn] * len(stamps)))
    removed = np.cumsum(churned / HOUR * scrape_interval + drops, axis=0)
    removed[0] = 0.0
    removed = np.maximum.accumulate(removed, axis=0)
    created = removed + present
    for kind, values in (("created", created), ("removed", removed)):
        family = _family(
            out, f"cortex_ingester_memory_series_{kind}", "counter", f"Series {kind} per user."
        )
        for i, tenant in enumerate(scenario.tenants):
            if np.isnan(series[:, i]).all():
                continue
            for instance in ingesters:
                family.series({"user": tenant, "instance": instance}, values[:, i].tolist(), times)
    del new_series  # implied by the created counter

    family = _family(out, "cortex_query_frontend_queries", "counter", "Total queries per tenant.")
    counts = _cumulative(queries, scrape_interval)
    for i, tenant in enumerate(scenario.tenants):
        family.series({"user": tenant, "op": "query"}, counts[:, i].tolist(), times)

    family = _family(out, "cortex_limits_defaults", "gauge", "Limit defaults.")
    for name, value in scenario.defaults.items():
        family.series({"limit_name": name}, [value] * len(stamps), times)
    family = _family(out, "cortex_limits_overrides", "gauge", "Limit overrides.")
    for name, values in scenario.limits.items():
        mask = scenario.overridden.get(name, np.zeros(n, dtype=bool))
        for row in np.flatnonzero(mask).tolist():
            family.series(
                {"limit_name": name, "user": scenario.tenants[row]},
                [float(values[row])] * len(stamps),
                times,
            )

    pressure = {r: [t.pressure.get(r, math.nan) for t in truths] for r in RESOURCES}
    _gauge_pair(
        out, ("cortex_ingester_memory_series", "cortex_ingester_instance_limits", "max_series"),
        instances=ingesters, percent=pressure[RES_INGESTER_SERIES], times=times,
    )  # fmt: skip
    _gauge_pair(
        out,
        (
            "cortex_distributor_ingestion_rate_samples_per_second",
            "cortex_distributor_instance_limits",
            "max_ingestion_rate",
        ),
        instances=["distributor-0"], percent=pressure[RES_INGESTION], times=times,
    )  # fmt: skip
    pods = {"ingester": ingesters, "distributor": ["distributor-0"]}
    memory = {"ingester": RES_INGESTER_MEMORY, "distributor": RES_DISTRIBUTOR_MEMORY}
    cpu = {"ingester": RES_INGESTER_CPU, "distributor": RES_DISTRIBUTOR_CPU}
    family = _family(out, "container_memory_working_set_bytes", "gauge", "Working set.")
    for container, names in pods.items():
        levels = [p / 100 * MEMORY_LIMIT_BYTES for p in pressure[memory[container]]]
        for pod in names:
            family.series(
                {"namespace": NAMESPACE, "pod": pod, "container": container}, levels, times
            )
    family = _family(out, "container_cpu_usage_seconds", "counter", "CPU seconds.")
    for container, names in pods.items():
        rates = np.array([p / 100 * CPU_LIMIT_CORES for p in pressure[cpu[container]]])
        seconds = _cumulative(rates, scrape_interval).tolist()
        for pod in names:
            family.series(
                {"namespace": NAMESPACE, "pod": pod, "container": container}, seconds, times
            )
    family = _family(out, "kube_pod_container_resource_limits", "gauge", "Container limits.")
    for container, names in pods.items():
        for pod in names:
            for resource, unit, value in (
                ("memory", "byte", float(MEMORY_LIMIT_BYTES)),
                ("cpu", "core", CPU_LIMIT_CORES),
            ):
                labels = {
                    "namespace": NAMESPACE, "pod": pod, "container": container,
                    "resource": resource, "unit": unit,
                }  # fmt: skip
                family.series(labels, [value] * len(stamps), times)

    family = _family(out, "up", "gauge", "Scrape target up.")
    for job, names in ((INGESTER_JOB, ingesters), (DISTRIBUTOR_JOB, ["distributor-0"])):
        for k, instance in enumerate(names):
            ups = [0.0 if t.components_down.get(job, 0) > k else 1.0 for t in truths]
            family.series({"job": job, "instance": instance}, ups, times)
    family = _family(
        out, "cortex_runtime_config_last_reload_successful", "gauge", "Last reload ok."
    )
    for instance in ingesters:
        family.series({"instance": instance}, [1.0 if t.reload_ok else 0.0 for t in truths], times)
    out.write("# EOF\n")


def _gauge_pair(
    out: TextIO,
    names: tuple[str, str, str],
    *,
    instances: list[str],
    percent: list[float],
    times: list[str],
    capacity: float = 1_000_000.0,
) -> None:
    """A per-instance usage gauge at `percent` of a per-instance limit gauge; `names` are
    (usage metric, limit metric, value of the limit's `limit` label)."""
    usage_name, limit_name, limit_label = names
    usage = _family(out, usage_name, "gauge", "Usage.")
    for instance in instances:
        usage.series({"instance": instance}, [p / 100 * capacity for p in percent], times)
    limit = _family(out, limit_name, "gauge", "Instance limits.")
    for instance in instances:
        limit.series({"instance": instance, "limit": limit_label}, [capacity] * len(times), times)
