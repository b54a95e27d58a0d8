"""Render a `SyntheticCluster` as the raw metrics Mimir would expose, in OpenMetrics text for
`promtool tsdb create-blocks-from openmetrics` (families contiguous, each series' samples in
time order, timestamps in seconds, `# EOF` last).

Scrapes happen every `scrape_interval` seconds from one step before the first timestamp, so
`rate(x[step])` and instant selectors evaluated at the cluster's timestamps reproduce the
truth exactly:
- counters of rates (samples, requests, exemplars, discards) grow linearly within each step
  at that step's true rate, and have a sample at the step's start and end;
- levels (series, metadata, exemplars in storage, limits) hold the value of the step they
  fall in, and have a sample exactly at every timestamp.
A tenant that starts late (`first_index = a`) has its counters from timestamp a-1 (value 0)
and its levels from the first scrape after it, so queries see it from timestamp a on.

Ingester-side metrics appear on `replication_factor` instances, each holding every series of
every tenant (the sum over instances is RF x the truth, as the catalogue's `/ ${rf}` expects).
In-memory series and metadata per tenant are `*_created_total - *_removed_total` (Mimir has
no per-tenant gauge for them); both counters churn, their difference is the truth.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

import numpy as np

from mimir_limit_optimizer.sources.synthetic_model import (
    DAY,
    HOUR,
    INGESTER_REASONS,
    FloatArray,
    SyntheticCluster,
)

# Every metric name (as PromQL sees it) that `write_openmetrics` emits.
EMITTED_METRICS = frozenset(
    {
        "cortex_distributor_replication_factor",
        "cortex_distributor_received_samples_total",
        "cortex_distributor_received_requests_total",
        "cortex_distributor_received_exemplars_total",
        "cortex_discarded_samples_total",
        "cortex_discarded_exemplars_total",
        "cortex_ingester_memory_series_created_total",
        "cortex_ingester_memory_series_removed_total",
        "cortex_ingester_memory_series",
        "cortex_ingester_memory_metadata_created_total",
        "cortex_ingester_memory_metadata_removed_total",
        "cortex_ingester_memory_metadata",
        "cortex_ingester_tsdb_exemplar_series_with_exemplars_in_storage",
        "cortex_ingester_tsdb_exemplar_exemplars_in_storage",
        "cortex_limits_defaults",
        "cortex_limits_overrides",
    }
)


class TextOut(Protocol):
    """Where the text goes: a file, or anything with a file's `write`."""

    def write(self, text: str, /) -> int: ...


class _Writer:
    """Scrape grid of one cluster and the formatting of its samples."""

    def __init__(self, cluster: SyntheticCluster, out: TextOut, scrape_interval: float) -> None:
        per_step = cluster.step / scrape_interval if scrape_interval > 0 else 0.0
        if per_step < 2 or abs(per_step - round(per_step)) > 1e-9:
            raise ValueError(
                f"scrape_interval must divide the step ({cluster.step:g}s) at least twice, "
                f"e.g. {cluster.step / 2:g} or 60; got {scrape_interval:g}"
            )
        self.cluster = cluster
        self.out = out
        self.scrape = scrape_interval
        self.per_step = round(per_step)
        count = len(cluster.timestamps) * self.per_step + 1
        k = np.arange(count)
        # Scrape k (k >= 1) falls in the step that ends at timestamps[step_of[k]].
        self.step_of = np.maximum(k - 1, 0) // self.per_step
        start = cluster.timestamps[0] - cluster.step if len(cluster.timestamps) else 0.0
        times = start + k * scrape_interval
        self.times = [_format_time(t) for t in times.tolist()]
        # First scrape index of a tenant's counters; its levels start one scrape later.
        self.first_scrape = cluster.first_index * self.per_step

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.out.write(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")

    def series(self, name: str, labels: dict[str, str], values: FloatArray, first: int) -> None:
        rendered = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
        prefix = f"{name}{{{rendered}}} " if rendered else f"{name} "
        self.out.write(
            "".join(
                f"{prefix}{value!r} {time}\n"
                for value, time in zip(values[first:].tolist(), self.times[first:], strict=True)
            )
        )

    def counter(self, rate: FloatArray, base: float) -> FloatArray:
        """Cumulative counter at every scrape of a per-step rate (NaN = nothing counted).
        Summed scrape by scrape so that rounding can never make it decrease (a reset)."""
        increments = np.nan_to_num(rate)[self.step_of] * self.scrape
        increments[0] = base
        values: FloatArray = np.cumsum(increments)
        return values

    def level(self, values: FloatArray) -> FloatArray:
        """A level at every scrape: the value of the step the scrape falls in."""
        out: FloatArray = values[self.step_of]
        return out


def _format_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis / 1000:.3f}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _churned(
    levels: FloatArray, churn_per_hour: float, step: float, base: float
) -> tuple[FloatArray, FloatArray]:
    """(created, removed) cumulative counts per step whose difference is `levels`: removed
    grows by the churn and by every drop of the level, so created never decreases."""
    present = np.nan_to_num(levels)
    drops = np.maximum(np.diff(present, prepend=0.0) * -1.0, 0.0)
    removed = base + np.cumsum(np.rint(present * churn_per_hour * step / HOUR) + drops)
    return present + removed, removed


def write_openmetrics(
    cluster: SyntheticCluster, out: TextOut, *, scrape_interval: float = 60.0
) -> None:
    """Write the cluster's raw metrics, scraped every `scrape_interval` seconds (which must
    divide the cluster's step at least twice). Deterministic for a given cluster."""
    w = _Writer(cluster, out, scrape_interval)
    rng = np.random.default_rng([cluster.seed, 0x0E7])
    n = len(cluster.tenants)
    rf = cluster.replication_factor
    instances = [f"ingester-{i}" for i in range(rf)]
    levels_from = w.first_scrape + 1
    # Counters run since their process started: a random head start (0 for new tenants).
    head_start = rng.uniform(1.0, 30.0, size=(n, 4 + 2 * rf)) * (cluster.first_index == 0)[:, None]

    w.family("cortex_distributor_replication_factor", "gauge", "The configured replication factor.")
    w.series("cortex_distributor_replication_factor", {}, np.full(len(w.times), float(rf)), 1)

    counters = (
        ("cortex_distributor_received_samples", cluster.samples_accepted, "samples"),
        ("cortex_distributor_received_requests", cluster.requests, "requests"),
        ("cortex_distributor_received_exemplars", cluster.exemplars_received, "exemplars"),
    )
    for column, (family, rates, what) in enumerate(counters):
        w.family(family, "counter", f"The total number of received {what}, excluding rejected.")
        for row, tenant in enumerate(cluster.tenants):
            base = math.floor(head_start[row, column] * DAY * _mean(rates[row]))
            values = w.counter(rates[row], float(base))
            w.series(f"{family}_total", {"user": tenant}, values, int(w.first_scrape[row]))

    w.family("cortex_discarded_samples", "counter", "The total number of samples discarded.")
    for reason, rates in cluster.discards.items():
        copies = instances if reason in INGESTER_REASONS else [""]
        for row in _rows_with_discards(rates):
            for instance in copies:
                labels = {"user": cluster.tenants[row], "reason": reason}
                if instance:
                    labels["instance"] = instance
                values = w.counter(rates[row], 0.0)
                w.series("cortex_discarded_samples_total", labels, values, int(w.first_scrape[row]))
    w.family("cortex_discarded_exemplars", "counter", "The total number of exemplars discarded.")
    rejected = cluster.exemplars_rate_limited()
    for row in _rows_with_discards(rejected):
        labels = {"user": cluster.tenants[row], "reason": "rate_limited"}
        values = w.counter(rejected[row], 0.0)
        w.series("cortex_discarded_exemplars_total", labels, values, int(w.first_scrape[row]))

    for column, (what, truth, churn) in enumerate(
        (
            ("series", cluster.series, cluster.series_churn),
            ("metadata", cluster.metadata, cluster.metadata_churn),
        )
    ):
        created: list[list[FloatArray]] = []
        removed: list[list[FloatArray]] = []
        for row in range(n):
            pairs = [
                _churned(
                    truth[row],
                    float(churn[row]),
                    cluster.step,
                    math.floor(head_start[row, 4 + column * rf + j] * float(np.nanmax(truth[row]))),
                )
                for j in range(rf)
            ]
            created.append([w.level(c) for c, _ in pairs])
            removed.append([w.level(r) for _, r in pairs])
        for kind, counts in (("created", created), ("removed", removed)):
            family = f"cortex_ingester_memory_{what}_{kind}"
            w.family(family, "counter", f"The total number of {what} that were {kind} per user.")
            for row, tenant in enumerate(cluster.tenants):
                for j, instance in enumerate(instances):
                    labels = {"user": tenant, "instance": instance}
                    w.series(f"{family}_total", labels, counts[row][j], int(levels_from[row]))
        _instance_gauge(
            w,
            f"cortex_ingester_memory_{what}",
            f"The current number of {what} in memory.",
            instances,
            truth,
        )

    family = "cortex_ingester_tsdb_exemplar_series_with_exemplars_in_storage"
    w.family(family, "gauge", "Number of TSDB series with exemplars currently in storage.")
    exemplar_series = cluster.exemplar_series()
    for row, tenant in enumerate(cluster.tenants):
        values = w.level(exemplar_series[row])
        for instance in instances:
            w.series(family, {"user": tenant, "instance": instance}, values, int(levels_from[row]))
    _instance_gauge(
        w,
        "cortex_ingester_tsdb_exemplar_exemplars_in_storage",
        "Number of TSDB exemplars currently in storage.",
        instances,
        cluster.exemplars_stored,
    )

    # The overrides-exporter: defaults always; for each tenant in the overrides file, every
    # exported limit with its effective value (as Mimir's exporter does).
    w.family(
        "cortex_limits_defaults", "gauge", "Resource limit defaults for tenants without overrides"
    )
    for name, value in cluster.defaults.items():
        w.series("cortex_limits_defaults", {"limit_name": name}, np.full(len(w.times), value), 1)
    w.family("cortex_limits_overrides", "gauge", "Resource limit overrides applied to tenants")
    in_file = cluster.overridden_tenants
    for name, values in cluster.limits.items():
        for row, tenant in enumerate(cluster.tenants):
            if tenant in in_file:
                constant = np.full(len(w.times), float(values[row]))
                labels = {"limit_name": name, "user": tenant}
                w.series("cortex_limits_overrides", labels, constant, int(levels_from[row]))
    out.write("# EOF\n")


def _mean(values: FloatArray) -> float:
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else 0.0


def _rows_with_discards(rates: FloatArray) -> Iterable[int]:
    peaks = np.nanmax(np.where(np.isnan(rates), 0.0, rates), axis=1) if rates.size else []
    return [row for row, peak in enumerate(peaks) if peak > 0]


def _instance_gauge(
    w: _Writer, name: str, help_text: str, instances: list[str], per_tenant: FloatArray
) -> None:
    """A per-instance gauge without a tenant label: every instance holds every tenant."""
    w.family(name, "gauge", help_text)
    total = w.level(np.nansum(per_tenant, axis=0))
    for instance in instances:
        w.series(name, {"instance": instance}, total, 1)
