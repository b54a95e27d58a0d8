"""The synthetic source: a built-in Mimir cluster, so the optimizer runs with no configuration.

`SyntheticSource.collect` returns what the catalogue's PromQL computes over the OpenMetrics
rendering of the same cluster (`write_openmetrics`) in a real Prometheus; tests/
test_synthetic.py proves it against a real Prometheus for every limit answered here.

Each simulated limit has a mirror of its catalogue query: the metrics the query reads (among
those the cluster emits) and the same arithmetic on the truth arrays. When the catalogue's
query reads a different set of metrics than the mirror expects, the limit is reported
unavailable (naming both sets) instead of being answered from a stale formula.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from mimir_limit_optimizer.catalogue import LimitSpec, SignalKind
from mimir_limit_optimizer.config.models import SyntheticSettings
from mimir_limit_optimizer.engine.usage import FloatArray, Observation
from mimir_limit_optimizer.sources.base import ProgressCallback
from mimir_limit_optimizer.sources.synthetic_model import (
    DISCARD_REASONS,
    SyntheticCluster,
    generate_cluster,
)
from mimir_limit_optimizer.sources.synthetic_openmetrics import EMITTED_METRICS, write_openmetrics

__all__ = ["SyntheticCluster", "SyntheticSource", "generate_cluster", "write_openmetrics"]

# `current_origin` texts (see engine/current.py).
ORIGIN_OVERRIDE = "tenant override (synthetic cluster)"
ORIGIN_DEFAULT = "cluster default (synthetic cluster)"

_SAMPLES = "cortex_distributor_received_samples_total"
_EXEMPLARS = "cortex_distributor_received_exemplars_total"
_REQUESTS = "cortex_distributor_received_requests_total"
_SERIES = frozenset(
    {"cortex_ingester_memory_series_created_total", "cortex_ingester_memory_series_removed_total"}
)
_METADATA = frozenset(
    {
        "cortex_ingester_memory_metadata_created_total",
        "cortex_ingester_memory_metadata_removed_total",
    }
)
_DISCARDED_SAMPLES = "cortex_discarded_samples_total"
_DISCARDED_EXEMPLARS = "cortex_discarded_exemplars_total"
_DISCARD_COUNTERS = frozenset({_DISCARDED_SAMPLES, _DISCARDED_EXEMPLARS})
# Part of every ${rf}; not a signal of its own.
_IGNORED = frozenset({"cortex_distributor_replication_factor"})


@dataclass(frozen=True)
class _Mirror:
    """One catalogue query, evaluated on the truth: the emitted metrics it reads, and the
    same arithmetic (deduplicated by RF, per second where the query takes rate())."""

    reads: frozenset[str]
    compute: Callable[[SyntheticCluster, LimitSpec], FloatArray]


def _series_discards(cluster: SyntheticCluster, _: LimitSpec) -> FloatArray:
    """The catalogue's estimate of rejected series: rejected samples/s x series / accepted
    samples/s that reached memory (`> 0`, else no result); 0 without discard series."""
    rejected = cluster.discards["per_user_series_limit"]
    reaching = cluster.samples_accepted - rejected
    estimate = np.zeros_like(rejected)
    np.divide(rejected * cluster.series, reaching, out=estimate, where=reaching > 0)
    estimate[np.isnan(cluster.series)] = np.nan  # tenants that do not exist yet
    return estimate


def _reasons(cluster: SyntheticCluster, spec: LimitSpec) -> FloatArray:
    simulated = [r for r in spec.discard_reasons if r in DISCARD_REASONS]
    if not simulated:
        return cluster.blank()
    total = cluster.discards[simulated[0]]
    for reason in simulated[1:]:
        total = total + cluster.discards[reason]
    return total


USAGE: Mapping[str, _Mirror] = MappingProxyType(
    {
        "ingestion_rate": _Mirror(
            frozenset({_SAMPLES, _EXEMPLARS}),
            lambda c, _: c.samples_accepted + c.exemplars_received,
        ),
        "request_rate": _Mirror(frozenset({_REQUESTS}), lambda c, _: c.requests),
        "max_global_series_per_user": _Mirror(_SERIES, lambda c, _: c.series),
        "max_global_metadata_per_user": _Mirror(_METADATA, lambda c, _: c.metadata),
        "max_global_exemplars_per_user": _Mirror(
            frozenset({"cortex_ingester_tsdb_exemplar_series_with_exemplars_in_storage"}),
            lambda c, _: c.exemplar_series(),
        ),
    }
)

# Discard queries that read none of the emitted discard counters match no series: zero for
# every existing tenant (no mirror needed).
DISCARDS: Mapping[str, _Mirror] = MappingProxyType(
    {
        "ingestion_rate": _Mirror(
            _DISCARD_COUNTERS,
            lambda c, _: c.discards["rate_limited"] + c.exemplars_rate_limited(),
        ),
        "max_global_series_per_user": _Mirror(
            _SERIES | {_DISCARDED_SAMPLES, _SAMPLES}, _series_discards
        ),
        "max_label_names_per_series": _Mirror(frozenset({_DISCARDED_SAMPLES}), _reasons),
        "max_label_name_length": _Mirror(frozenset({_DISCARDED_SAMPLES}), _reasons),
        "max_label_value_length": _Mirror(frozenset({_DISCARDED_SAMPLES}), _reasons),
    }
)


def reads(query: str) -> frozenset[str]:
    """The metrics this cluster emits that `query` (a catalogue template) reads."""
    return frozenset(
        metric
        for metric in EMITTED_METRICS - _IGNORED
        if re.search(rf"(?<![A-Za-z0-9_:]){re.escape(metric)}(?![A-Za-z0-9_:])", query)
    )


class SyntheticSource:
    """A `Source` backed by a generated cluster over `[end - settings.history, end]`.

    The cluster is generated once, at construction; `collect` returns the part of it inside
    the requested window (nothing is invented outside it). Derived arrays are computed once
    and shared read-only between collects."""

    def __init__(
        self, settings: SyntheticSettings, *, end: float, replication_factor: int = 3
    ) -> None:
        self.settings = settings
        self.cluster = generate_cluster(settings, end=end, replication_factor=replication_factor)
        self._memo: dict[tuple[str, str], FloatArray] = {}

    def describe(self) -> str:
        return f"synthetic cluster ({len(self.cluster.tenants)} tenants, seed {self.settings.seed})"

    def collect(
        self,
        limits: Sequence[LimitSpec],
        *,
        start: float,
        end: float,
        progress: ProgressCallback | None = None,
    ) -> Observation:
        cluster = self.cluster
        ts = cluster.timestamps
        slack = 1e-6 * cluster.step
        first = int(np.searchsorted(ts, start - slack, side="left"))
        last = max(first, int(np.searchsorted(ts, end + slack, side="right")))
        window = slice(first, last)

        usage: dict[str, FloatArray] = {}
        discards: dict[str, FloatArray] = {}
        current: dict[str, FloatArray] = {}
        origin: dict[str, list[str]] = {}
        unavailable: dict[str, str] = {}
        for done, spec in enumerate(limits, start=1):
            current[spec.name], origin[spec.name] = self._current(spec)
            if spec.signal in (SignalKind.USAGE, SignalKind.DISCARD):
                reason = _why_unavailable(cluster, spec)
                if reason:
                    unavailable[spec.name] = reason
                else:
                    if spec.signal is SignalKind.USAGE and spec.usage_query:
                        usage[spec.name] = self._full("usage", spec)[:, window]
                    if spec.discard_query:
                        discards[spec.name] = self._full("discards", spec)[:, window]
            if progress is not None:
                progress(done, len(limits), spec.name)
        return Observation(
            tenants=cluster.tenants,
            timestamps=ts[window],
            step=cluster.step,
            usage=usage,
            discards=discards,
            current=current,
            unavailable=unavailable,
            current_origin=origin,
        )

    def _full(self, what: str, spec: LimitSpec) -> FloatArray:
        """The whole-window array of `what` ("usage" or "discards") for `spec`, memoised."""
        query = (spec.usage_query if what == "usage" else spec.discard_query) or ""
        key = (what, f"{spec.name}\n{query}\n{','.join(spec.discard_reasons)}")
        if key not in self._memo:
            if what == "usage":
                array = USAGE[spec.name].compute(self.cluster, spec)
            elif reads(query) & _DISCARD_COUNTERS:
                array = DISCARDS[spec.name].compute(self.cluster, spec)
            else:  # no discard counter read: PromQL finds no series, i.e. no discards
                if ("blank", "") not in self._memo:
                    self._memo[("blank", "")] = _frozen(self.cluster.blank())
                array = self._memo[("blank", "")]
            self._memo[key] = _frozen(array) if array.flags.writeable else array
        return self._memo[key]

    def _current(self, spec: LimitSpec) -> tuple[FloatArray, list[str]]:
        """The limit in force per tenant: the cluster's override or default; limits the
        cluster does not model are overridden by nobody, so the catalogue's default."""
        cluster = self.cluster
        n = len(cluster.tenants)
        if spec.name not in cluster.limits:
            return np.full(n, spec.default), [ORIGIN_DEFAULT] * n
        flags = cluster.overridden[spec.name].tolist()
        return cluster.limits[spec.name], [ORIGIN_OVERRIDE if f else ORIGIN_DEFAULT for f in flags]


def _frozen(array: FloatArray) -> FloatArray:
    array.setflags(write=False)
    return array


def _why_unavailable(cluster: SyntheticCluster, spec: LimitSpec) -> str:
    """Empty when the cluster answers the spec's queries; otherwise the reason."""
    if spec.name not in cluster.limits:
        return f"the synthetic cluster does not simulate {spec.name}"
    checks: list[tuple[str, str | None, Mapping[str, _Mirror]]] = [
        ("usage", spec.usage_query if spec.signal is SignalKind.USAGE else None, USAGE),
        ("discard", spec.discard_query, DISCARDS),
    ]
    for what, query, mirrors in checks:
        if not query or (what == "discard" and not reads(query) & _DISCARD_COUNTERS):
            continue
        mirror = mirrors.get(spec.name)
        if mirror is None or reads(query) != mirror.reads:
            expected = sorted(mirror.reads) if mirror else "nothing"
            return (
                f"the synthetic cluster cannot evaluate the {what} query of {spec.name}: of "
                f"the metrics it emits, the query reads {sorted(reads(query))} and the "
                f"synthetic model mirrors {expected} (query: {query})"
            )
    return ""
