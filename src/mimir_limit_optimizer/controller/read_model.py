"""The read model of the running service for the web UI and its JSON API (web/ui/model.py's
ReadModel). It is fed by the service after each cycle (`cycle_finished`) and otherwise reads
the store, protection and cost through their public methods; pages never see any of them.

Today it reads the Reconciler's CycleResult (Recommendations) and the store; a richer per-cycle
plan can replace `_recs` later without touching a template.
"""

from __future__ import annotations

import logging
import math
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mimir_limit_optimizer.catalogue import SignalKind
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller import ui_config, ui_limit_table
from mimir_limit_optimizer.controller.reconcile import CycleResult, last_checkpoint, last_plan
from mimir_limit_optimizer.controller.ui_metrics import MetricsReader
from mimir_limit_optimizer.controller.ui_parts import SharedParts
from mimir_limit_optimizer.controller.ui_revisions import RevisionReader
from mimir_limit_optimizer.controller.ui_tenants import TenantIndex
from mimir_limit_optimizer.controller.ui_views import downsample, limit_view, plain, totals
from mimir_limit_optimizer.engine.overrides_validate import validate_overrides
from mimir_limit_optimizer.engine.peak_memory import PeakMemory
from mimir_limit_optimizer.engine.recommend import enabled_limits
from mimir_limit_optimizer.engine.results import Recommendations, render_value
from mimir_limit_optimizer.observability.health import HealthState
from mimir_limit_optimizer.sources.base import Source, SourceError
from mimir_limit_optimizer.store import AuditEvent, StoreError
from mimir_limit_optimizer.store.queries import (
    AuditFilter,
    audit_facets,
    audit_page,
    audit_stream,
    count_actions,
)
from mimir_limit_optimizer.web.ui.model import (
    AuditQuery,
    AuditRow,
    ConfigView,
    CyclePoint,
    Health,
    LimitEditPreview,
    LimitTable,
    LimitView,
    Overview,
    Page,
    Problem,
    RevisionDiff,
    RevisionView,
    Series,
    TenantDetail,
    TenantQuery,
    TenantRow,
    UiError,
)

DAY = 86400.0
HISTORY = 288  # cycles kept for the dashboard charts (a day at the default 5 min)
MAX_CHART_POINTS = 600
SERIES_CACHE_SECONDS = 60.0
DIFF_CACHE = 16  # diffs kept


@dataclass
class ServiceParts(SharedParts):
    """What the read model reads (everything injected by the service)."""

    health: HealthState
    protection_status: Callable[[], dict[str, Any]]
    alerting_status: Callable[[], Mapping[str, Any]]
    cost_by_tenant: Callable[[], tuple[dict[str, float], str] | None]
    source_factory: Callable[[Config, float], Source]
    runtime_freeze: Callable[[], str | None]  # who froze applying from the UI, or None
    peak_memory: Callable[[], PeakMemory | None]  # what the cycles plan with (None: none yet)
    logger: logging.Logger


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _row(event: AuditEvent) -> AuditRow:
    return AuditRow(
        event.id,
        event.timestamp,
        event.level,
        event.category,
        event.component,
        event.action,
        event.tenant,
        dict(event.details),
    )


def _filter(q: AuditQuery) -> AuditFilter:
    return AuditFilter(q.tenant, q.action, q.category, q.component, q.since, q.until)


class ServiceReadModel:
    def __init__(self, parts: ServiceParts) -> None:
        self.p = parts
        self._lock = threading.Lock()
        self._recs: Recommendations | None = None
        self._index = TenantIndex.empty()
        self._cycles: deque[CyclePoint] = deque(maxlen=HISTORY)
        self._version = 0
        self._plan_rows: tuple[int, dict[str, dict[str, dict[str, Any]]]] | None = None
        self._series_cache: dict[tuple[str, str, float], tuple[float, Series]] = {}
        self.metrics_reader = MetricsReader(parts)
        self._revisions = RevisionReader(parts, self._snapshot)
        self._load_checkpoint()

    def _load_checkpoint(self) -> None:
        try:
            checkpoint = last_checkpoint(self.p.store)
        except (StoreError, ValueError):
            checkpoint = None
        if checkpoint is not None:
            self._index = TenantIndex.from_checkpoint(checkpoint)

    # -- fed by the service -------------------------------------------------------------
    def cycle_finished(self, result: CycleResult, *, at: float, duration: float) -> None:
        recs = result.recommendations
        demand = limit = throttled = 0.0
        index = None
        if recs is not None:
            demand, limit, throttled = totals(recs)
            index = TenantIndex.from_recommendations(
                recs, open_breakers=self._open_breakers(), **self._costs()
            )
            throttled = float(sum(1 for r in index.rows if r.status == "throttled"))
        point = CyclePoint(
            at, result.ok, duration, result.detail, demand, limit, throttled,
            result.planned, result.held_back,
        )  # fmt: skip
        with self._lock:
            if recs is not None and index is not None:
                self._recs, self._index = recs, index
                self._series_cache.clear()
            self._cycles.append(point)
            self._version += 1

    def _open_breakers(self) -> set[str]:
        try:
            breakers = self.p.protection_status()["circuitBreaker"]["breakers"]
        except Exception:  # the status is advisory here: never fail a cycle's bookkeeping
            return set()
        return {b["tenant"] for b in breakers if b.get("state") == "open"}

    def _costs(self) -> dict[str, Any]:
        try:
            found = self.p.cost_by_tenant()
        except Exception:
            found = None
        if found is None:
            return {}
        costs, currency = found
        return {"costs": costs, "currency": currency}

    def _snapshot(self) -> tuple[Recommendations | None, int]:
        with self._lock:
            return self._recs, self._version

    def cycle_version(self) -> int:
        return self._version

    # -- dashboard ----------------------------------------------------------------------
    def overview(self) -> Overview:
        config = self.p.config()
        now = self.p.clock()
        try:
            counts = count_actions(
                self.p.store,
                ("update_limits", "would_update_limits", "change_held_back"),
                since=now - DAY,
            )
            store_health = Health("store", True, self.p.store.url)
        except StoreError as exc:
            counts, store_health = {}, Health("store", False, str(exc))
        try:
            status = self.p.protection_status()
        except Exception as exc:
            status = {"lastError": str(exc)}
        breakers = status.get("circuitBreaker", {}).get("breakers", [])
        with self._lock:
            cycles = tuple(self._cycles)
            rows = self._index.rows
        frozen_by = self.p.runtime_freeze()
        _ok, body = self.p.health.readyz(now)
        reachable = body.get("source_reachable")
        source = Health(
            "source",
            reachable is True,
            "not checked yet" if reachable is None else str(body.get("source_detail") or ""),
        )
        return Overview(
            mode=config.mode.value,
            frozen=config.safety.freeze or frozen_by is not None,
            frozen_by=frozen_by if frozen_by else ("config" if config.safety.freeze else None),
            tenants=len(rows),
            limits_managed=len(config.dynamic_limits.enabled_limits),
            applied_24h=counts.get("update_limits", 0),
            pending_24h=counts.get("would_update_limits", 0),
            held_back_24h=self._held_back_since(now - DAY),
            throttled_now=sum(1 for r in rows if r.status == "throttled"),
            open_breakers=sum(1 for b in breakers if b.get("state") == "open"),
            protection_enabled=bool(status.get("enabled", False)),
            emergency_level=str(status.get("emergency", {}).get("level", "unknown")),
            last_cycle=cycles[-1] if cycles else None,
            health=(source, store_health, *self._channel_health()),
            cycles=cycles,
            target=self.p.applier.name,
        )

    def _held_back_since(self, since: float) -> int:
        """Changes held back since `since`: one summarised event per cycle carries `count`
        (older per-change events count one each)."""
        try:
            events = self.p.store.audit(action="change_held_back", since=since, limit=2000)
        except StoreError:
            return 0
        return sum(int(e.details.get("count", 1) or 0) for e in events)

    def _channel_health(self) -> list[Health]:
        try:
            channels = self.p.alerting_status().get("channels", [])
        except Exception as exc:
            return [Health("alerting", False, str(exc))]
        return [
            Health(f"alerts: {c['name']}", bool(c.get("healthy")), str(c.get("lastError") or ""))
            for c in channels
        ]

    # -- tenants ------------------------------------------------------------------------
    def tenants(self, query: TenantQuery) -> Page[TenantRow]:
        with self._lock:
            index = self._index
        return index.query(query)

    def tenant(self, name: str) -> TenantDetail:
        with self._lock:
            index, recs = self._index, self._recs
        at = index.by_name.get(name)
        if at is None:
            raise UiError(f"no tenant {name!r} in the last cycle", status=404)
        limits: list[LimitView] = []
        planned = self._planned(name)
        if recs is not None and name in recs.tenants:
            i = recs.tenants.index(name)
            for result in recs.results.values():
                item = planned.get(result.spec.name)
                limits.append(limit_view(result, i, self.p.applier.name, item))
        events = self.audit(AuditQuery(tenant=name, per_page=20)).items
        status = self.p.protection_status() if recs is not None else {}
        breakers = tuple(
            b for b in status.get("circuitBreaker", {}).get("breakers", []) if b["tenant"] == name
        )
        clamps = tuple(c for c in status.get("clamps", []) if c["tenant"] == name)
        row = index.rows[at]
        cost = None if row.cost is None else {"monthly": row.cost, "currency": row.currency}
        return TenantDetail(
            name, row.status, tuple(limits), breakers, clamps, cost, events,
            recs.generated_at if recs is not None else None,
        )  # fmt: skip

    def _planned(self, tenant: str) -> dict[str, dict[str, Any]]:
        """This tenant's items of the cycle's stored plan (target, next step, why held), read
        from the store once per cycle."""
        with self._lock:
            version = self._version
        if self._plan_rows is None or self._plan_rows[0] != version:
            by_tenant: dict[str, dict[str, dict[str, Any]]] = {}
            try:
                stored = last_plan(self.p.store)
            except (StoreError, ValueError, zlib.error):
                stored = None
            items = stored.get("items", []) if stored else []
            for item in items if isinstance(items, list) else []:
                by_tenant.setdefault(str(item["tenant"]), {})[str(item["limit"])] = item
            self._plan_rows = (version, by_tenant)
        return self._plan_rows[1].get(tenant, {})

    def tenant_series(self, name: str, limit: str, seconds: float) -> Series:
        with self._lock:
            recs = self._recs
        if recs is None or name not in recs.tenants:
            raise UiError(f"no tenant {name!r} in the last cycle", status=404)
        result = recs.results.get(limit)
        if result is None or result.spec.signal is not SignalKind.USAGE:
            raise UiError(f"{limit!r} is not a usage-driven limit of this service", status=404)
        key = (name, limit, seconds)
        now = self.p.clock()
        cached = self._series_cache.get(key)
        if cached is not None and now - cached[0] < SERIES_CACHE_SECONDS:
            return cached[1]
        series = self._collect_series(recs, name, limit, seconds, now)
        self._series_cache[key] = (now, series)
        return series

    def _collect_series(
        self, recs: Recommendations, name: str, limit: str, seconds: float, now: float
    ) -> Series:
        config = self.p.config()
        if config.source.kind == "prometheus":  # only this tenant's series (a `user` matcher)
            prometheus = config.source.prometheus
            selectors = {**prometheus.selectors, "user": name}
            config = config.model_copy(
                update={
                    "source": config.source.model_copy(
                        update={
                            "prometheus": prometheus.model_copy(update={"selectors": selectors})
                        }
                    )
                }
            )
        spec = self.p.catalogue.limits[limit]
        try:
            source = self.p.source_factory(config, now)
            observation = source.collect([spec], start=now - seconds, end=now)
        except SourceError as exc:
            raise UiError(f"the source could not be read: {exc}", status=502) from exc
        if name not in observation.tenants or limit not in observation.usage:
            raise UiError(f"the source has no {limit} data for {name!r}", status=404)
        i = observation.tenants.index(name)
        usage = np.asarray(observation.usage[limit][i], dtype=np.float64)
        discards = observation.discards.get(limit)
        demand = usage + (
            np.nan_to_num(np.asarray(discards[i], dtype=np.float64))
            if discards is not None
            else 0.0
        )
        x = np.asarray(observation.timestamps, dtype=np.float64)
        x, usage, demand = downsample(x, usage, demand)
        result = recs.results[limit]
        r = recs.tenants.index(name)
        current = self._limit_in_force(name, limit, x, float(result.current[r]))
        marks = {}
        recommended = _finite(float(result.recommended[r]))
        if recommended is not None:
            marks["recommendation"] = recommended
        return Series(
            x=tuple(float(v) for v in x),
            series={
                "usage": plain(usage),
                "demand": plain(demand),
                "limit": plain(current),
            },
            unit=result.spec.unit,
            marks=marks,
        )

    def _limit_in_force(self, tenant: str, limit: str, x: Any, now_value: float) -> Any:
        """The limit over time as a step line, from the applied changes in the audit log
        (`update_limits`: old -> new at its time); today's value where none is recorded."""
        values = np.full(len(x), now_value)
        if len(x) == 0:
            return values
        try:
            events = self.p.store.audit(tenant=tenant, action="update_limits", since=float(x[0]))
        except StoreError:
            return values
        changes = sorted(
            (e.timestamp, e.details.get("old"), e.details.get("new"))
            for e in events
            if e.details.get("limit") == limit
        )
        if not changes:
            return values
        first_old = changes[0][1]
        if isinstance(first_old, int | float):
            values[:] = float(first_old)
        for at, _old, new in changes:
            if isinstance(new, int | float):
                values[np.asarray(x) >= at] = float(new)
                values[-1] = float(new)  # the window ends now, under the latest change
        return values

    # -- audit --------------------------------------------------------------------------
    def audit(self, query: AuditQuery) -> Page[AuditRow]:
        if query.page < 1 or not 1 <= query.per_page <= 500:
            raise UiError("page must be >= 1 and perPage between 1 and 500")
        try:
            rows, total = audit_page(
                self.p.store,
                _filter(query),
                offset=(query.page - 1) * query.per_page,
                limit=query.per_page,
            )
        except StoreError as exc:
            raise UiError(f"the store could not be read: {exc}", status=503) from exc
        return Page(tuple(_row(e) for e in rows), total, query.page, query.per_page)

    def audit_stream(self, query: AuditQuery) -> Iterator[AuditRow]:
        for event in audit_stream(self.p.store, _filter(query)):
            yield _row(event)

    def audit_facets(self) -> dict[str, tuple[str, ...]]:
        try:
            return audit_facets(self.p.store)
        except StoreError:
            return {}

    # -- revisions ----------------------------------------------------------------------
    def revisions(self) -> tuple[RevisionView, ...]:
        return self._revisions.revisions()

    def diff(self, left: int | None, right: int | None, page: int = 1) -> RevisionDiff:
        return self._revisions.diff(left, right, page)

    # -- configuration ------------------------------------------------------------------
    def config(self) -> ConfigView:
        config = self.p.config()
        path = self.p.config_path()
        text: str | None = None
        if path is not None:
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
            except (OSError, UnicodeDecodeError):
                text = None
        shown = ui_config.masked(text) if text is not None else ""
        limits = tuple(
            {
                "name": s.name,
                "unit": s.unit,
                "signal": s.signal.value,
                "default": render_value(s.default, s),
                "enabled": s.name in config.dynamic_limits.enabled_limits,
                "description": s.description,
            }
            for s in enabled_limits(config, self.p.catalogue)
        )
        return ConfigView(
            path=path,
            yaml=shown,
            entries=ui_config.entries(config, text, self.p.env, self.p.cli),
            writable=config.ui.config_writable and path is not None,
            limits=limits,
        )

    def validate_config(self, text: str) -> tuple[Problem, ...]:
        return ui_config.validate(text, env=self.p.env, cli=self.p.cli, catalogue=self.p.catalogue)

    def limit_table(self) -> LimitTable:
        config, path = self.p.config(), self.p.config_path()
        return ui_limit_table.table(
            ui_limit_table.read_text(path), config, self.p.catalogue, path=path,
            writable=config.ui.config_writable and path is not None,
        )  # fmt: skip

    def preview_limit_edits(self, edits: dict[str, str], base: str) -> LimitEditPreview:
        text = ui_limit_table.read_text(self.p.config_path())
        _edited, preview = ui_limit_table.preview(
            text, edits, base, env=self.p.env, cli=self.p.cli, catalogue=self.p.catalogue
        )
        return preview

    def validate_overrides(self, text: str) -> tuple[Problem, ...]:
        problems = validate_overrides(text, self.p.catalogue, source_name="overrides.yaml")
        out = []
        for p in problems:
            path = f"{p.key_path}: " if p.key_path else ""
            fix = f" ({p.fix})" if p.fix else ""
            out.append(Problem(p.line, f"{path}{p.message}{fix}"))
        return tuple(out)

    # -- metrics ------------------------------------------------------------------------
    def metrics(self, seconds: float) -> dict[str, Series]:
        with self._lock:
            cycles = tuple(self._cycles)
        return self.metrics_reader.charts(cycles, seconds)

    def query(self, promql: str, seconds: float) -> Series:
        return self.metrics_reader.query(promql, seconds)
