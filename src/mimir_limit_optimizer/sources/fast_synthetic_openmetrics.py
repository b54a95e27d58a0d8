"""The synthetic fast scenario (fast_synthetic.py) as OpenMetrics: the raw Mimir, cAdvisor
and kube-state-metrics series a real cluster would expose, so a real Prometheus can hold it
(`promtool tsdb create-blocks-from openmetrics`) and `PrometheusFastSource` reads what
`SyntheticFastSource` returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TextIO

import numpy as np

from mimir_limit_optimizer.engine.protection.model import (
    RES_DISTRIBUTOR_CPU,
    RES_DISTRIBUTOR_MEMORY,
    RES_INGESTER_CPU,
    RES_INGESTER_MEMORY,
    RES_INGESTER_SERIES,
    RES_INGESTION,
    RESOURCES,
)
from mimir_limit_optimizer.engine.usage import FloatArray
from mimir_limit_optimizer.sources.fast_synthetic import HOUR, FastScenario

__all__ = ["write_fast_openmetrics"]

INGESTER_JOB = "mimir/ingester"
DISTRIBUTOR_JOB = "mimir/distributor"
NAMESPACE = "mimir"
# Capacities behind the container gauges (any value works: only the ratio matters).
MEMORY_LIMIT_BYTES = 8 * 2**30
CPU_LIMIT_CORES = 4.0


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
