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
from mimir_limit_optimizer.engine.usage import FloatArray, LazyArrays, Observation
from mimir_limit_optimizer.sources.base import ProgressCallback
from mimir_limit_optimizer.sources.synthetic_generate import generate_cluster
from mimir_limit_optimizer.sources.synthetic_model import DISCARD_REASONS, SyntheticCluster
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
    samples/s that reached memory (`> 0`, else no result); 0 without discard series. Only
    rows with rejected samples can differ from 0, so only those are computed."""
    rejected = cluster.discards["per_user_series_limit"]
    estimate = cluster.blank()
    peaks = np.fmax.reduce(rejected, axis=1) if rejected.shape[1] else np.zeros(len(rejected))
    rows = np.flatnonzero(peaks > 0).astype(np.int64)
    if len(rows):
        part = cluster.rows(rows)
        reaching = part.samples_accepted - rejected[rows]
        found = np.zeros_like(reaching)
        np.divide(rejected[rows] * part.series, reaching, out=found, where=reaching > 0)
        found[np.isnan(part.series_demand)] = np.nan  # tenants that do not exist yet
        estimate[rows] = found
    return estimate


def _discards_with_share(cluster: SyntheticCluster) -> FloatArray:
    """rate_limited samples/s plus their exemplars/s, as `_with_share`, computed only on the
    rows that discard (the others are 0, or NaN before the tenant exists, either way)."""
    out = cluster.discards.fresh("rate_limited")
    peaks = np.fmax.reduce(out, axis=1) if out.shape[1] else np.zeros(len(out))
    share = cluster.exemplar_share
    for row in np.flatnonzero(peaks > 0).tolist():
        out[row] += out[row] * share[row]
    return out


def _with_share(cluster: SyntheticCluster, samples: FloatArray) -> FloatArray:
    """samples/s plus the exemplars/s that travel with them (the limiter counts both);
    the same bits as `samples + samples * share`, one new array instead of two."""
    out = samples * cluster.exemplar_share[:, None]
    out += samples
    return out


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
            lambda c, _: _with_share(c, c.samples_accepted),
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
            lambda c, _: _discards_with_share(c),
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

    The cluster is generated once, at construction (its two demands in float32); `collect`
    returns the part of it inside the requested window (nothing is invented outside it) as
    `LazyArrays`: each limit's array is derived from the demands when the engine reads it
    and dropped after, so a collection holds no (N, T) array of its own."""

    def __init__(
        self, settings: SyntheticSettings, *, end: float, replication_factor: int = 3
    ) -> None:
        self.settings = settings
        self.end = end
        self.replication_factor = replication_factor
        self.cluster = generate_cluster(settings, end=end, replication_factor=replication_factor)

    def describe(self) -> str:
        return f"synthetic cluster ({len(self.cluster.tenants)} tenants, seed {self.settings.seed})"

    def window(self, start: float, end: float) -> slice:
        """The cluster's columns inside [start, end]."""
        ts = self.cluster.timestamps
        slack = 1e-6 * self.cluster.step
        first = int(np.searchsorted(ts, start - slack, side="left"))
        last = max(first, int(np.searchsorted(ts, end + slack, side="right")))
        return slice(first, last)

    def collect(
        self,
        limits: Sequence[LimitSpec],
        *,
        start: float,
        end: float,
        progress: ProgressCallback | None = None,
    ) -> Observation:
        view = self.cluster.columns(self.window(start, end))
        current: dict[str, FloatArray] = {}
        origin: dict[str, list[str]] = {}
        unavailable: dict[str, str] = {}
        usage: dict[str, LimitSpec] = {}
        discards: dict[str, LimitSpec] = {}
        for done, spec in enumerate(limits, start=1):
            current[spec.name], origin[spec.name] = self._current(spec)
            if spec.signal in (SignalKind.USAGE, SignalKind.DISCARD):
                reason = _why_unavailable(view, spec)
                if reason:
                    unavailable[spec.name] = reason
                else:
                    if spec.signal is SignalKind.USAGE and spec.usage_query:
                        usage[spec.name] = spec
                    if spec.discard_query:
                        discards[spec.name] = spec
            if progress is not None:
                progress(done, len(limits), spec.name)
        shape = (len(view.tenants), len(view.timestamps))
        return Observation(
            tenants=view.tenants,
            timestamps=view.timestamps,
            step=view.step,
            usage=LazyArrays(list(usage), lambda name: _usage(view, usage[name]), shape=shape),
            discards=LazyArrays(
                list(discards), lambda name: _discards(view, discards[name]), shape=shape
            ),
            current=current,
            unavailable=unavailable,
            current_origin=origin,
        )

    def _current(self, spec: LimitSpec) -> tuple[FloatArray, list[str]]:
        """The limit in force per tenant: the cluster's override or default; limits the
        cluster does not model are overridden by nobody, so the catalogue's default."""
        cluster = self.cluster
        n = len(cluster.tenants)
        if spec.name not in cluster.limits:
            return np.full(n, spec.default), [ORIGIN_DEFAULT] * n
        flags = cluster.overridden[spec.name].tolist()
        return cluster.limits[spec.name], [ORIGIN_OVERRIDE if f else ORIGIN_DEFAULT for f in flags]


def _usage(cluster: SyntheticCluster, spec: LimitSpec) -> FloatArray:
    return USAGE[spec.name].compute(cluster, spec)


def _discards(cluster: SyntheticCluster, spec: LimitSpec) -> FloatArray:
    if reads(spec.discard_query or "") & _DISCARD_COUNTERS:
        return DISCARDS[spec.name].compute(cluster, spec)
    return cluster.blank()  # no discard counter read: PromQL finds no series, no discards


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
