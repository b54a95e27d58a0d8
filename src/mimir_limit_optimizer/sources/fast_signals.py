"""Fast signals for blast protection and panic mode: instant queries, ONE per signal for all
tenants (`by (user)`), so a fast-loop tick costs the same for 10 tenants and for 10,000.

Per tenant: ingestion (the catalogue's usage and rate_limited discard queries of
`ingestion_rate`), in-memory series and the estimate of series rejected by the series limit
(the catalogue's queries of `max_global_series_per_user`), new series per second, queries per
second, and the protected limits in force (Mimir's overrides exporter). Cluster pressure, in
percent: ingester in-memory series vs `cortex_ingester_instance_limits{limit="max_series"}`,
distributor ingestion vs `cortex_distributor_instance_limits{limit="max_ingestion_rate"}`
(per instance, the highest), ingester and distributor container memory (cAdvisor working set)
and CPU (cAdvisor usage rate) vs their kube-state-metrics limits (the highest pod),
Mimir jobs with `up == 0`, and `cortex_runtime_config_last_reload_successful`.

Each query that fails leaves its signal unavailable (NaN) and is named in
`FastObservation.unavailable`; only when every query fails does `read` raise.
The synthetic equivalent lives in `fast_synthetic.py`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

import httpx
import numpy as np

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import PrometheusSettings
from mimir_limit_optimizer.config.protection import PROTECTED_LIMITS, FastLoop
from mimir_limit_optimizer.engine.protection.model import (
    RES_DISTRIBUTOR_CPU,
    RES_DISTRIBUTOR_MEMORY,
    RES_INGESTER_CPU,
    RES_INGESTER_MEMORY,
    RES_INGESTER_SERIES,
    RES_INGESTION,
    SIG_INGESTION,
    SIG_INGESTION_DISCARDED,
    SIG_NEW_SERIES,
    SIG_QUERIES,
    SIG_SERIES,
    SIG_SERIES_DISCARDED,
    FastObservation,
    Kind,
)
from mimir_limit_optimizer.engine.tenants import tenant_id_problem
from mimir_limit_optimizer.engine.usage import FloatArray
from mimir_limit_optimizer.sources.base import (
    PermanentSourceError,
    RetryableSourceError,
    SourceError,
)
from mimir_limit_optimizer.sources.prom_http import PromConnection, PromHTTP
from mimir_limit_optimizer.sources.prom_response import Series
from mimir_limit_optimizer.sources.promql import (
    TemplateRenderer,
    check_label_name,
    escape_label_value,
)

__all__ = ["FastSource", "PrometheusFastSource", "fast_queries"]

# Limits in force read from the overrides exporter; a missing series keeps NaN.
_OVERRIDES = "cortex_limits_overrides"
_DEFAULTS = "cortex_limits_defaults"
# Resolution of warm-up subqueries (seconds).
WARMUP_STEP = 60.0
_NO_ENV: Mapping[str, str] = MappingProxyType({})


class FastSource(Protocol):
    """Reads a FastObservation at `now`.

    `warmup` > 0 also asks for the `percentile` of each baseline over the last `warmup`
    seconds (the first tick seeds the baselines with it). `limits_in_force` (tenant ->
    limit -> value, what the optimizer's overrides set) is for simulated clusters, which apply
    it to their traffic; a real source ignores it (Mimir applies the limits)."""

    def read(
        self,
        now: float,
        *,
        warmup: float = 0.0,
        percentile: float = 95.0,
        limits_in_force: Mapping[str, Mapping[str, float]] | None = None,
    ) -> FastObservation: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class FastQueries:
    """Every rendered query of one tick: per-tenant signals, pressure ratios (percent), the
    `up` count per job, the reload gauge and the warm-up expressions per baseline."""

    signals: Mapping[str, str]
    pressure: Mapping[str, str]
    components_down: str
    reload: str
    warmup: Mapping[str, str]
    limits_overrides: str
    limits_defaults: str


def _ratio(numerator: str, denominator: str, by: str) -> str:
    """The highest per-`by` ratio in percent; nothing when no denominator is > 0."""
    return f"max(sum by ({by}) ({numerator}) / sum by ({by}) ({denominator} > 0)) * 100"


def fast_queries(
    catalogue: Catalogue,
    fast: FastLoop,
    selectors: Mapping[str, str],
    *,
    replication_factor: int,
) -> FastQueries:
    """Render the fast loop's PromQL (label values escaped, label names validated)."""
    render = TemplateRenderer(
        selectors, rate_interval=fast.rate_window, replication_factor=replication_factor
    )
    sel = render.matchers
    comma = "," if sel else ""
    ingestion = catalogue.limits["ingestion_rate"]
    series = catalogue.limits["max_global_series_per_user"]

    def template(text: str | None, what: str) -> str:
        if not text:
            raise PermanentSourceError(f"the catalogue has no {what}: the fast loop needs it")
        return render.render(text, what=what)

    signals = {
        SIG_INGESTION: template(ingestion.usage_query, "usage query of ingestion_rate"),
        SIG_INGESTION_DISCARDED: template(ingestion.discard_query, "discards of ingestion_rate"),
        # Where created/removed counters are missing, Mimir's active-series gauge stands in.
        SIG_SERIES: "("
        + template(series.usage_query, "usage query of max_global_series_per_user")
        + ") or "
        + render.render("(sum by (user) (cortex_ingester_active_series{${sel}}) / ${rf})"),
        SIG_SERIES_DISCARDED: template(
            series.discard_query, "discards of max_global_series_per_user"
        ),
        SIG_NEW_SERIES: render.render(
            "sum by (user) (rate(cortex_ingester_memory_series_created_total{${sel}}[${rate}]))"
            " / ${rf}"
        ),
        SIG_QUERIES: render.render(
            "sum by (user) (rate(cortex_query_frontend_queries_total{${sel}}[${rate}]))"
        ),
    }
    instance = check_label_name(fast.instance_label)
    rate = render.render("${rate}")
    pods = "namespace, pod"

    def container(metric: str, name: str, extra: str = "") -> str:
        return f'{metric}{{container="{escape_label_value(name)}"{extra}{comma}{sel}}}'

    def limit_of(name: str, resource: str) -> str:
        return container("kube_pod_container_resource_limits", name, f',resource="{resource}"')

    ingester, distributor = fast.ingester_container, fast.distributor_container
    pressure = {
        RES_INGESTER_SERIES: _ratio(
            f"cortex_ingester_memory_series{{{sel}}}",
            f'cortex_ingester_instance_limits{{limit="max_series"{comma}{sel}}}',
            instance,
        ),
        RES_INGESTION: _ratio(
            f"cortex_distributor_ingestion_rate_samples_per_second{{{sel}}}",
            f'cortex_distributor_instance_limits{{limit="max_ingestion_rate"{comma}{sel}}}',
            instance,
        ),
        RES_INGESTER_MEMORY: _ratio(
            container("container_memory_working_set_bytes", ingester),
            limit_of(ingester, "memory"),
            pods,
        ),
        RES_INGESTER_CPU: _ratio(
            f"rate({container('container_cpu_usage_seconds_total', ingester)}[{rate}])",
            limit_of(ingester, "cpu"),
            pods,
        ),
        RES_DISTRIBUTOR_MEMORY: _ratio(
            container("container_memory_working_set_bytes", distributor),
            limit_of(distributor, "memory"),
            pods,
        ),
        RES_DISTRIBUTOR_CPU: _ratio(
            f"rate({container('container_cpu_usage_seconds_total', distributor)}[{rate}])",
            limit_of(distributor, "cpu"),
            pods,
        ),
    }
    jobs = escape_label_value(fast.mimir_jobs)
    names = "|".join(PROTECTED_LIMITS)

    def demand(usage: str, discards: str) -> str:
        return f"({usage}) + (({discards}) or ({usage}) * 0)"

    return FastQueries(
        signals=signals,
        pressure=pressure,
        components_down=f'count by (job) (up{{job=~"{jobs}"{comma}{sel}}} == 0)',
        reload=f"min(cortex_runtime_config_last_reload_successful{{{sel}}})",
        warmup={
            Kind.INGESTION.value: demand(signals[SIG_INGESTION], signals[SIG_INGESTION_DISCARDED]),
            Kind.SERIES.value: demand(signals[SIG_SERIES], signals[SIG_SERIES_DISCARDED]),
            Kind.QUERY.value: signals[SIG_QUERIES],
            SIG_NEW_SERIES: signals[SIG_NEW_SERIES],
        },
        limits_overrides=(
            f'max by (user, limit_name) (last_over_time({_OVERRIDES}{{limit_name=~"{names}"'
            f"{comma}{sel}}}[15m]))"
        ),
        limits_defaults=(
            f'max by (limit_name) (last_over_time({_DEFAULTS}{{limit_name=~"{names}"'
            f"{comma}{sel}}}[15m]))"
        ),
    )


def _warmup_query(expression: str, window: float, percentile: float) -> str:
    quantile = min(1.0, max(0.0, percentile / 100.0))
    return (
        f"quantile_over_time({quantile:g}, ({expression})"
        f"[{math.ceil(window)}s:{int(WARMUP_STEP)}s])"
    )


class PrometheusFastSource:
    """A FastSource reading a Prometheus-compatible query API (Prometheus, or Mimir with
    `pathPrefix: /prometheus` and `tenant`). Dependencies are injected as in
    PrometheusSource: `transport`, `env`, `sleep`, `rng`."""

    def __init__(
        self,
        settings: PrometheusSettings,
        fast: FastLoop,
        catalogue: Catalogue,
        *,
        replication_factor: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        env: Mapping[str, str] = _NO_ENV,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._log = logger or logging.getLogger(__name__)
        # Fast queries are few and cheap: one retry at most, or a tick would outlast itself.
        quick = settings.model_copy(update={"retries": min(settings.retries, 1)})
        self._http = PromHTTP(
            quick, transport=transport, env=env, sleep=sleep, rng=rng or random.Random(),
            logger=self._log,
        )  # fmt: skip
        self.queries = fast_queries(
            catalogue, fast, settings.selectors, replication_factor=replication_factor
        )
        self.last_skipped_tenants: dict[str, str] = {}

    def describe(self) -> str:
        return f"prometheus {self._http.shown} (fast signals)"

    @property
    def query_count(self) -> int:
        """Instant queries per tick (without warm-up): independent of the tenant count."""
        q = self.queries
        return len(q.signals) + len(q.pressure) + 4

    def read(
        self,
        now: float,
        *,
        warmup: float = 0.0,
        percentile: float = 95.0,
        limits_in_force: Mapping[str, Mapping[str, float]] | None = None,
    ) -> FastObservation:
        del limits_in_force  # Mimir applies the limits; the metrics already show it
        return asyncio.run(self._read(now, warmup, percentile))

    async def _read(self, now: float, warmup: float, percentile: float) -> FastObservation:
        q = self.queries
        named: dict[str, str] = {f"signal:{k}": v for k, v in q.signals.items()}
        named.update({f"pressure:{k}": v for k, v in q.pressure.items()})
        named["up"] = q.components_down
        named["reload"] = q.reload
        named["limits:overrides"] = q.limits_overrides
        named["limits:defaults"] = q.limits_defaults
        if warmup > 0:
            named.update(
                {f"warmup:{k}": _warmup_query(v, warmup, percentile) for k, v in q.warmup.items()}
            )
        results: dict[str, list[Series]] = {}
        errors: dict[str, SourceError] = {}

        async def run(conn: PromConnection, name: str, query: str) -> None:
            try:
                results[name] = await conn.query(query, now)
            except SourceError as exc:
                errors[name] = exc

        async with self._http.connect() as conn, asyncio.TaskGroup() as group:
            for name, query in named.items():
                group.create_task(run(conn, name, query))
        if errors and not results:
            first = next(iter(errors.values()))
            kind: type[SourceError] = (
                RetryableSourceError
                if any(e.retryable for e in errors.values())
                else PermanentSourceError
            )
            raise kind(f"every fast-signal query failed; first failure: {first}") from first
        for name, exc in errors.items():
            self._log.warning("fast signal %s unavailable: %s", name, exc)
        return self._assemble(now, results, errors)

    def _assemble(
        self, now: float, results: Mapping[str, list[Series]], errors: Mapping[str, SourceError]
    ) -> FastObservation:
        per_tenant: dict[str, dict[str, float]] = {}
        for name, series in results.items():
            if not name.startswith(("signal:", "warmup:")):
                continue
            for item in series:
                tenant = item.labels.get("user")
                if tenant is not None and len(item.values):
                    per_tenant.setdefault(name, {})[tenant] = float(item.values[0])
        overrides: dict[str, dict[str, float]] = {}
        for item in results.get("limits:overrides", []):
            tenant, limit = item.labels.get("user"), item.labels.get("limit_name")
            if tenant is not None and limit is not None and len(item.values):
                overrides.setdefault(limit, {})[tenant] = float(item.values[0])
        defaults = {
            item.labels["limit_name"]: float(item.values[0])
            for item in results.get("limits:defaults", [])
            if "limit_name" in item.labels and len(item.values)
        }
        seen = {t for values in per_tenant.values() for t in values}
        seen.update(t for values in overrides.values() for t in values)
        tenants: list[str] = []
        skipped: dict[str, str] = {}
        for tenant in sorted(seen):
            problem = tenant_id_problem(tenant)
            if problem is None:
                tenants.append(tenant)
            else:
                skipped[tenant] = problem
        self.last_skipped_tenants = skipped
        row = {t: i for i, t in enumerate(tenants)}

        def column(values: Mapping[str, float]) -> FloatArray:
            out = np.full(len(tenants), np.nan)
            for tenant, value in values.items():
                if tenant in row:
                    out[row[tenant]] = value
            out[~np.isfinite(out)] = np.nan
            return out

        signals = {
            name.removeprefix("signal:"): column(per_tenant.get(name, {}))
            for name in (f"signal:{k}" for k in self.queries.signals)
            if name in results
        }
        # No discard series means nothing was rejected: 0 where the tenant has usage.
        for discards, usage in (
            (SIG_INGESTION_DISCARDED, SIG_INGESTION),
            (SIG_SERIES_DISCARDED, SIG_SERIES),
        ):
            if discards in signals and usage in signals:
                values = signals[discards]
                values[np.isnan(values) & np.isfinite(signals[usage])] = 0.0
        warm = {
            name.removeprefix("warmup:"): column(values)
            for name, values in per_tenant.items()
            if name.startswith("warmup:")
        }
        limits: dict[str, FloatArray] = {}
        for limit in PROTECTED_LIMITS:
            values = column(overrides.get(limit, {}))
            if limit in defaults:
                values[np.isnan(values)] = defaults[limit]
            limits[limit] = values
        pressure: dict[str, float] = {}
        for name, series in results.items():
            if name.startswith("pressure:"):
                finite = [float(s.values[0]) for s in series if len(s.values)]
                finite = [v for v in finite if math.isfinite(v)]
                pressure[name.removeprefix("pressure:")] = max(finite) if finite else math.nan
        down = {
            item.labels.get("job", ""): int(item.values[0])
            for item in results.get("up", [])
            if len(item.values) and math.isfinite(float(item.values[0]))
        }
        reload_ok: bool | None = None
        for item in results.get("reload", []):
            if len(item.values) and math.isfinite(float(item.values[0])):
                reload_ok = float(item.values[0]) >= 1
        return FastObservation(
            at=now,
            tenants=tuple(tenants),
            signals=signals,
            limits=limits,
            pressure=pressure,
            components_down={job: n for job, n in down.items() if n > 0},
            reload_ok=reload_ok,
            unavailable={name: str(exc) for name, exc in errors.items()},
            warmup=warm,
        )
