"""The read model of the running service for the web UI and its JSON API (web/ui/model.py's
ReadModel). It is fed by the service after each cycle (`cycle_finished`) and otherwise reads
the store, protection and cost through their public methods; pages never see any of them.

Today it reads the Reconciler's CycleResult (Recommendations) and the store; a richer per-cycle
plan can replace `_recs` later without touching a template. The pages' own readers live beside
it: ui_overview.py (dashboard), ui_series.py (a tenant's chart), ui_audit.py, ui_revisions.py
(diffs), ui_metrics.py; what they read from the service is ui_parts.ServiceParts.
"""

from __future__ import annotations

import threading
import zlib
from collections import deque
from collections.abc import Iterator
from typing import Any

from mimir_limit_optimizer.controller import ui_config, ui_limit_table
from mimir_limit_optimizer.controller.reconcile import CycleResult, last_checkpoint, last_plan
from mimir_limit_optimizer.controller.ui_audit import AuditReader
from mimir_limit_optimizer.controller.ui_metrics import MetricsReader
from mimir_limit_optimizer.controller.ui_overview import build_overview
from mimir_limit_optimizer.controller.ui_parts import ServiceParts
from mimir_limit_optimizer.controller.ui_revisions import RevisionReader
from mimir_limit_optimizer.controller.ui_series import TenantSeries
from mimir_limit_optimizer.controller.ui_tenants import TenantIndex
from mimir_limit_optimizer.controller.ui_views import limit_view, totals
from mimir_limit_optimizer.engine.overrides_validate import validate_overrides
from mimir_limit_optimizer.engine.recommend import enabled_limits
from mimir_limit_optimizer.engine.results import Recommendations, render_value
from mimir_limit_optimizer.store import StoreError
from mimir_limit_optimizer.web.ui.model import (
    AuditQuery,
    AuditRow,
    ConfigView,
    CyclePoint,
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

HISTORY = 288  # cycles kept for the dashboard charts (a day at the default 5 min)


class ServiceReadModel:
    def __init__(self, parts: ServiceParts) -> None:
        self.p = parts
        self._lock = threading.Lock()
        self._recs: Recommendations | None = None
        self._index = TenantIndex.empty()
        self._cycles: deque[CyclePoint] = deque(maxlen=HISTORY)
        self._version = 0
        self._plan_rows: tuple[int, dict[str, dict[str, dict[str, Any]]]] | None = None
        self._series = TenantSeries(parts)
        self._audit = AuditReader(parts)
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
                self._series.clear()
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
        return build_overview(self.p, self._cycles_and_rows)

    def _cycles_and_rows(self) -> tuple[tuple[CyclePoint, ...], tuple[TenantRow, ...]]:
        with self._lock:
            return tuple(self._cycles), self._index.rows

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
        return self._series.series(recs, name, limit, seconds)

    # -- audit --------------------------------------------------------------------------
    def audit(self, query: AuditQuery) -> Page[AuditRow]:
        return self._audit.page(query)

    def audit_stream(self, query: AuditQuery) -> Iterator[AuditRow]:
        return self._audit.stream(query)

    def audit_facets(self) -> dict[str, tuple[str, ...]]:
        return self._audit.facets()

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
