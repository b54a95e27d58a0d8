"""The per-tenant gauges and cluster totals of the latest recommendations, computed when
Prometheus scrapes (`RecommendationsCollector`, registered by `ControllerMetrics`) for the
tenants `server.tenantMetrics` selects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from mimir_limit_optimizer.config.service import TenantMetricsSettings
from mimir_limit_optimizer.engine.results import STATUS_ORDER, Reason, Recommendations
from mimir_limit_optimizer.engine.usage import FloatArray
from mimir_limit_optimizer.observability.metric_prefix import PREFIX


@dataclass(frozen=True)
class _LimitSnapshot:
    name: str
    current: FloatArray
    recommended: FloatArray
    spike_ratio: FloatArray  # NaN where the window had no spike
    status: npt.NDArray[np.int8]
    throttled: int  # tenants with discards for this limit in the last day


@dataclass(frozen=True)
class _Snapshot:
    tenants: tuple[str, ...]
    limits: tuple[_LimitSnapshot, ...]
    exported: npt.NDArray[np.int64]  # rows of the tenants that get per-tenant series


# Reasons that make a tenant's series worth exporting: throttled now, held at a cap.
_NOTEWORTHY = int(Reason.THROTTLED_NOW | Reason.TIER_CAP | Reason.THROTTLE_FLOOR)


class RecommendationsCollector(Collector):
    """Per-tenant gauges computed at scrape time from the latest recommendations, for the
    tenants `settings` selects; cluster totals (`recommendations{limit_name,status}`,
    `tenant_series_omitted`) for all of them.

    Nothing is exported before the first observation (0 tenants would be a false statement).
    Non-finite values (undefined recommendations, unknown current limits) are omitted.
    The snapshot is replaced as one reference, so a scrape sees one observation or the
    next, never a mix; arrays are copied so later changes by the caller do not leak in.
    """

    def __init__(self, settings: TenantMetricsSettings) -> None:
        self._settings = settings
        self._snapshot: _Snapshot | None = None
        self._last_planned: dict[str, float] = {}  # tenant -> when it last had a change

    def update(
        self, recs: Recommendations, *, planned: Iterable[str] = (), now: float | None = None
    ) -> None:
        when = recs.generated_at if now is None else now
        for tenant in planned:
            self._last_planned[tenant] = when
        recent = self._settings.recent
        self._last_planned = {t: at for t, at in self._last_planned.items() if when - at <= recent}
        limits = tuple(
            _LimitSnapshot(
                name=name,
                current=np.array(result.current, dtype=np.float64),
                recommended=np.array(result.recommended, dtype=np.float64),
                spike_ratio=np.where(
                    np.asarray(result.spike_count) > 0,
                    np.asarray(result.spike_ratio, dtype=np.float64),
                    np.nan,
                ),
                status=np.array(result.status, dtype=np.int8),
                throttled=int(
                    np.count_nonzero(np.asarray(result.flags) & int(Reason.THROTTLED_NOW))
                ),
            )
            for name, result in recs.results.items()
        )
        exported = self._select(recs)
        self._snapshot = _Snapshot(tenants=tuple(recs.tenants), limits=limits, exported=exported)

    def exported_tenants(self) -> frozenset[str] | None:
        """Tenants of the latest snapshot with per-tenant series; None in `mode: all`."""
        if self._settings.mode == "all":
            return None
        snapshot = self._snapshot
        if snapshot is None:
            return frozenset()
        return frozenset(snapshot.tenants[i] for i in snapshot.exported.tolist())

    def _select(self, recs: Recommendations) -> npt.NDArray[np.int64]:
        """Rows of the tenants to export, most telling first, within max_series."""
        settings = self._settings
        n = len(recs.tenants)
        if settings.mode == "none" or n == 0:
            return np.zeros(0, dtype=np.int64)
        if settings.mode == "all":
            order = np.arange(n, dtype=np.int64)
        else:
            recent = np.fromiter(
                (t in self._last_planned for t in recs.tenants), dtype=bool, count=n
            )
            noteworthy = np.zeros(n, dtype=bool)
            closeness = np.zeros(n)
            for result in recs.results.values():
                noteworthy |= (np.asarray(result.flags) & _NOTEWORTHY) != 0
                with np.errstate(invalid="ignore", divide="ignore"):
                    ratio = np.asarray(result.p95) / np.asarray(result.current)
                closeness = np.fmax(closeness, np.where(np.isfinite(ratio), ratio, 0.0))
            # Most telling first: planned or recently changed, then throttled or capped,
            # then the top N by usage / limit.
            first = np.flatnonzero(recent)
            second = np.flatnonzero(noteworthy & ~recent)
            chosen = np.zeros(n, dtype=bool)
            chosen[first] = chosen[second] = True
            rest = np.flatnonzero(~chosen)
            top = rest[np.argsort(-closeness[rest], kind="stable")[: settings.top_n]]
            order = np.concatenate([first, second, top]).astype(np.int64)
        if settings.max_series:
            per_tenant = max(1, len(recs.results))
            order = order[: settings.max_series // per_tenant]
        return np.sort(order)

    def describe(self) -> Iterable[Metric]:
        # Names only, for the registry's duplicate check; samples come from collect().
        return [*_families(), _throttled_family()]

    def collect(self) -> Iterable[Metric]:
        snapshot = self._snapshot
        if snapshot is None:
            return []
        monitored, current, recommended, spikes, totals, omitted = _families()
        throttled = _throttled_family()
        monitored.add_metric([], len(snapshot.tenants))
        rows = snapshot.exported
        tenants = [snapshot.tenants[i] for i in rows.tolist()]
        for limit in snapshot.limits:
            _add_finite(current, tenants, limit.name, limit.current[rows])
            _add_finite(recommended, tenants, limit.name, limit.recommended[rows])
            _add_finite(spikes, tenants, limit.name, limit.spike_ratio[rows])
            throttled.add_metric([limit.name], float(limit.throttled))
            counts = np.bincount(limit.status, minlength=len(STATUS_ORDER))
            for code, status in enumerate(STATUS_ORDER):
                totals.add_metric([limit.name, status.value], float(counts[code]))
        omitted.add_metric([], float(len(snapshot.tenants) - len(rows)))
        return [monitored, current, recommended, spikes, throttled, totals, omitted]


def _families() -> tuple[GaugeMetricFamily, ...]:
    labels = ["user", "limit_name"]
    return (
        GaugeMetricFamily(
            f"{PREFIX}_tenants_monitored_total",
            "Tenants in the latest recommendation cycle.",
        ),
        GaugeMetricFamily(
            f"{PREFIX}_tenant_current_limits",
            "The limit in force per tenant, in the limit's base unit (0 may mean unlimited); "
            "only the tenants server.tenantMetrics selects.",
            labels=labels,
        ),
        GaugeMetricFamily(
            f"{PREFIX}_tenant_recommended_limits",
            "The recommended limit per tenant; absent when the recommendation is undefined "
            "or the tenant is not selected by server.tenantMetrics.",
            labels=labels,
        ),
        GaugeMetricFamily(
            f"{PREFIX}_spike_multiplier",
            "Largest spike-to-baseline ratio in the latest window, where spikes were found.",
            labels=labels,
        ),
        GaugeMetricFamily(
            f"{PREFIX}_recommendations",
            "Tenants per limit and recommendation status (change, unchanged, undefined) in the "
            "latest cycle: the cluster totals, always exported.",
            labels=["limit_name", "status"],
        ),
        GaugeMetricFamily(
            f"{PREFIX}_tenant_series_omitted",
            "Tenants of the latest cycle without per-tenant series (server.tenantMetrics).",
        ),
    )


def _throttled_family() -> GaugeMetricFamily:
    # A cluster total per limit (0 included), exported whatever per-tenant subset is.
    return GaugeMetricFamily(
        f"{PREFIX}_tenants_throttled",
        "Tenants whose samples Mimir discarded for this limit in the last day of the latest "
        "cycle's window (such a limit is never lowered).",
        labels=["limit_name"],
    )


def _add_finite(
    family: GaugeMetricFamily, tenants: list[str], limit: str, values: FloatArray
) -> None:
    (index,) = np.nonzero(np.isfinite(values))
    for i, value in zip(index.tolist(), values[index].tolist(), strict=True):
        family.add_metric([tenants[i], limit], value)
