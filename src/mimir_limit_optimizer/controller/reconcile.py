"""One reconcile cycle of the service: collect, recommend, plan, guard, then audit (dry-run)
or apply (prod). Never applies from a failed or partial collection."""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from mimir_limit_optimizer.alerting.model import AlertSink, Priority, Severity
from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import Config, Mode
from mimir_limit_optimizer.controller.apply import Applier, ApplyError
from mimir_limit_optimizer.controller.oneshot import resolve_limits_in_force, signals_needed
from mimir_limit_optimizer.controller.peak_memory import PeakMemoryKeeper
from mimir_limit_optimizer.controller.plan_inputs import ROLLED_BACK, last_changed
from mimir_limit_optimizer.controller.reporter import Reporter
from mimir_limit_optimizer.engine.overrides import (
    OverridesParseError,
    OverridesValueError,
    parse_overrides,
)
from mimir_limit_optimizer.engine.peak_memory import PeakMemory
from mimir_limit_optimizer.engine.plan import Plan
from mimir_limit_optimizer.engine.planning import (
    PLAN_SCHEMA_VERSION,
    CyclePlan,
    GuardInputs,
    combine,
    item_rows,
    plan_recommendations,
)
from mimir_limit_optimizer.engine.recommend import enabled_limits, recommend
from mimir_limit_optimizer.engine.results import STATUS_ORDER, Recommendations
from mimir_limit_optimizer.engine.usage import Observation
from mimir_limit_optimizer.observability.health import HealthState
from mimir_limit_optimizer.observability.metrics import ControllerMetrics
from mimir_limit_optimizer.observability.progress import ProgressLog
from mimir_limit_optimizer.sources.base import Source, SourceError
from mimir_limit_optimizer.sources.current_limits import CurrentLimitsError
from mimir_limit_optimizer.store import AuditEvent, AuditLog, Store, StoreError
from mimir_limit_optimizer.targets.base import Content, TargetError

CHECKPOINT_KEY = "last_cycle"
# When the store was recreated after its file was lost (controller/service.py).
STORE_RECREATED_KEY = "store_recreated"
PLAN_KEY = "last_plan"  # the cycle's whole plan (items, held and why): the UI reads it
__all__ = ["CHECKPOINT_KEY", "PLAN_KEY", "ROLLED_BACK", "PlanGuard", "Reconciler", "last_plan"]
# Examples of held-back changes in the one summarised `change_held_back` event per cycle.
HELD_EXAMPLES = 5


class PlanGuard(Protocol):
    """A guard (blast protection, budgets) contributes data to the pure planning function and
    hears what was planned. Guards may only tighten the plan (engine/planning.py)."""

    def guard_inputs(self, config: Config, now: float) -> GuardInputs:
        """What this guard holds (caps), gathered by its own I/O; no reporting here."""
        ...

    def planned(self, plan: CyclePlan, config: Config, now: float) -> None:
        """Report what the plan made of this guard's inputs (audit, alerts, metrics)."""
        ...


def last_checkpoint(store: Store) -> dict[str, object] | None:
    """The last cycle's results saved by `Reconciler` (None before the first cycle)."""
    raw = store.load_checkpoint(CHECKPOINT_KEY)
    return None if raw is None else dict(json.loads(raw))


def last_plan(store: Store) -> dict[str, object] | None:
    """The last cycle's stored plan (see `Reconciler._store_plan`); None before the first."""
    raw = store.load_checkpoint(PLAN_KEY)
    return None if raw is None else dict(json.loads(zlib.decompress(raw)))


def _digest(plan: Plan) -> str:
    """Identity of a set of writes: the same changes to the same values."""
    rows = sorted((c.tenant, c.limit, repr(c.old), repr(c.new)) for c in plan.changes)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def _change_events(
    writes: Plan, now: float, action: str, config: Config, why: str | None = None
) -> list[AuditEvent]:
    """One event per change: `update_limits` for a write (stored with its revision), or a
    change not applied (dry-run, follower, partial collection) with `why`."""
    mode = config.mode.value
    extra = {} if why is None else {"why": why}
    return [
        AuditEvent(
            now,
            "info",
            "system",
            "controller",
            action,
            c.tenant,
            {
                "limit": c.limit,
                "old": c.old,
                "new": c.new,
                "reasons": list(c.reasons),
                "mode": mode,
                **extra,
            },
        )
        for c in writes.changes
    ]


@dataclass
class CycleResult:
    ok: bool
    planned: int = 0
    applied: int = 0
    held_back: int = 0
    detail: str = ""
    recommendations: Recommendations | None = None
    notes: list[str] = field(default_factory=list)


class Reconciler:
    """Everything injected; `run_once(config, now)` is one cycle."""

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        source_factory: Callable[[Config, float], Source],
        applier: Applier,
        store: Store,
        audit: AuditLog,
        metrics: ControllerMetrics,
        health: HealthState,
        logger: logging.Logger,
        guards: Sequence[PlanGuard] = (),
        alerts: AlertSink | None = None,
    ) -> None:
        self.guards: list[PlanGuard] = list(guards)
        # Rollbacks and failed verifications of earlier writes completed in this cycle.
        self._recovered_failures: list[str] = []
        self.catalogue = catalogue
        self.source_factory = source_factory
        self.applier = applier
        self.store = store
        self.audit = audit
        self.metrics = metrics
        self.health = health
        self.log = logger
        self.report = Reporter(audit=audit, alerts=alerts, logger=logger, component="controller")
        self._audited: str | None = None  # digest of the last audited dry-run write set
        self._audited_loaded = False
        # The engine's long-term peak memory: what this cycle plans with (a re-plan too).
        self.peak_memory = PeakMemoryKeeper(
            store=store, report=self.report, metrics=metrics, logger=logger
        )
        self._memory: PeakMemory | None = None

    @property
    def alerts(self) -> AlertSink | None:
        """Where alerts go (never blocks, never raises); None: nowhere."""
        return self.report.alerts

    @alerts.setter
    def alerts(self, sink: AlertSink | None) -> None:
        self.report.alerts = sink

    def _event(
        self,
        now: float,
        action: str,
        *,
        level: str = "info",
        category: str = "system",
        tenant: str | None = None,
        component: str = "controller",
        **details: object,
    ) -> None:
        self.report.event(
            now, action, level=level, category=category, tenant=tenant, component=component,
            details=details,
        )  # fmt: skip

    def _alert(
        self,
        now: float,
        kind: str,
        key: str,
        level: tuple[Priority, Severity],
        summary: str = "",
        *,
        component: str = "controller",
        resolved: bool = False,
        **details: object,
    ) -> None:
        """Emit an alert (or, `resolved`, the end of the incident `key`)."""
        self.report.alert(
            now, kind, key, level, summary, component=component,
            resolved=resolved, details=details,
        )  # fmt: skip

    def _checkpoint(self, recs: Recommendations, now: float) -> None:
        """The last cycle's results, so a restart knows where it stood. (Usage history itself
        lives in Prometheus: every cycle rebuilds its percentiles and histograms from there.)"""
        names = [s.value for s in STATUS_ORDER]
        limits = {}
        for name, r in recs.results.items():
            # tenant -> [current, recommended, status], built in C (dict/zip) and written by
            # orjson, which writes tuples as arrays and NaN and infinities as null.
            statuses = [names[k] for k in r.status.tolist()]
            rows = zip(r.current.tolist(), r.recommended.tolist(), statuses, strict=True)
            limits[name] = dict(zip(recs.tenants, rows, strict=True))
        payload = {"at": now, "window": list(recs.window), "limits": limits}
        self.store.save_checkpoint(CHECKPOINT_KEY, orjson.dumps(payload), at=now)

    def _store_plan(self, plan: CyclePlan, config: Config, now: float, audited: str) -> None:
        """The cycle's whole plan, held-back items and why included, for the UI and for the
        next cycle (which audits a dry-run plan again only when it changed)."""
        payload = {
            "version": PLAN_SCHEMA_VERSION,
            "at": now,
            "mode": config.mode.value,
            "target": self.applier.name,
            "auditedDigest": audited,
            "items": item_rows(plan),
        }
        data = zlib.compress(orjson.dumps(payload), 1)  # level 1: ~2x faster, ~10% larger
        self.store.save_checkpoint(PLAN_KEY, data, at=now)

    def _last_audited(self) -> str | None:
        if not self._audited_loaded:
            self._audited_loaded = True
            try:
                stored = last_plan(self.store)
            except (ValueError, zlib.error):
                stored = None
            self._audited = str(stored.get("auditedDigest")) if stored else None
        return self._audited

    def _report_incomplete(self, observation: Observation, now: float) -> None:
        """Audit what the collection lacked: unavailable signals (nothing is applied) and
        tenants whose invalid values were dropped (nothing is applied for them)."""
        if observation.unavailable:
            self._event(now, "collection_partial", level="warning", component="source",
                        unavailable=dict(observation.unavailable))  # fmt: skip
        by_tenant: dict[str, dict[str, str]] = {}
        for limit, problems in observation.tenant_problems.items():
            for tenant, reason in problems.items():
                by_tenant.setdefault(tenant, {})[limit] = reason
        for tenant, reasons in sorted(by_tenant.items()):
            self._event(now, "tenant_data_incomplete", level="warning", component="source",
                        tenant=tenant, limits=reasons)  # fmt: skip

    def _store_recreated_hold(self, config: Config, now: float) -> str:
        """Why applying waits after the store was recreated (its record of recent changes,
        which the cooldown needs, was lost), or ""."""
        raw = self.store.load_checkpoint(STORE_RECREATED_KEY)
        if raw is None:
            return ""
        at = float(json.loads(raw)["at"])
        if now - at >= config.change_policy.cooldown:
            return ""
        return (
            f"the store was recreated {max(0.0, now - at) / 60:.0f} min ago and lost the record "
            "of recent changes: applying resumes after changePolicy.cooldown"
        )

    def _plan(
        self, config: Config, observation: Observation, content: Content, now: float
    ) -> CyclePlan:
        specs = enabled_limits(config, self.catalogue)
        collected = signals_needed(specs, self.catalogue)
        with self.metrics.phase("read_target"):
            document = parse_overrides(content.text, source_name=self.applier.name)
            merged = resolve_limits_in_force(
                observation, config, self.catalogue, collected, document, logger=self.log
            )
        with self.metrics.phase("recommend"):
            recs = recommend(
                merged,
                config,
                self.catalogue,
                now=now,
                limits=[s.name for s in specs],
                memory=self._memory,
            )
        with self.metrics.phase("plan"):
            since = now - config.change_policy.cooldown
            guards = combine(
                [guard.guard_inputs(config, now) for guard in self.guards],
                last_changed(self.store, self.applier.name, since),
            )
            planned = plan_recommendations(recs, config, self.catalogue, guards=guards, now=now)
            # The write set and the held-back list (cached on the plan): part of planning.
            _ = (planned.writes, planned.held_back)
            return planned

    def _no_tenants(self, config: Config, source: Source, now: float) -> CycleResult:
        """A source that answers with no tenant at all is misconfigured (wrong URL, prefix,
        X-Scope-OrgID or selectors): a failed collection, as `mlo recommend` says."""
        description = source.describe()
        message = (
            f"{description} returned no tenant (no series with a `user` label): check the URL, "
            "pathPrefix, tenant (X-Scope-OrgID) and selectors, and that Mimir is scraped"
        )
        self.health.set_source_reachable(False, message)
        self.metrics.errors_total.labels(component="source", reason="no_tenants").inc()
        self._event(now, "collection_failed", level="error", component="source", error=message)
        self._alert(now, "collection_failed", f"collection_failed:{config.source.kind}",
                    (Priority.P2, Severity.ERROR), f"collecting usage failed: {message}",
                    component="source", error=message)  # fmt: skip
        return CycleResult(False, detail=f"collection failed, nothing applied: {message}")

    def run_once(self, config: Config, *, now: float, leader: bool = True) -> CycleResult:
        self._recovered_failures = []
        with self.metrics.phase("total"):
            result = self._run(config, now=now, leader=leader)
        if result.ok and self._recovered_failures:  # an earlier write was rolled back now
            result.ok = False
            result.detail = "; ".join([result.detail, *self._recovered_failures])
        self.metrics.reconcile_total.labels(result="success" if result.ok else "failure").inc()
        if result.ok:
            self.metrics.last_reconcile_timestamp.set(now)
        self.health.cycle_finished(ok=result.ok, now=now, detail=result.detail)
        self.metrics.health_status.set(1 if result.ok else 0)
        return result

    def _recover(self, now: float) -> CycleResult | None:
        """Complete the writes a crash or a store outage left open (docs/reliability.md),
        before anything new is planned; a failed cycle when the store still fails."""
        try:
            outcomes = self.applier.recover(now=now)
        except (StoreError, TargetError) as exc:
            self.metrics.errors_total.labels(component="store", reason="recovery_failed").inc()
            self._alert(now, "store_failed", f"store_failed:{self.applier.name}",
                        (Priority.P1, Severity.ERROR),
                        f"cannot complete the records of earlier writes: {exc}",
                        component="store", error=str(exc))  # fmt: skip
            return CycleResult(False, detail=f"records of earlier writes incomplete: {exc}")
        self._recovered_failures = [o.detail for o in outcomes if o.rolled_back or o.unverified]
        for outcome in outcomes:
            level = logging.ERROR if outcome.rolled_back or outcome.unverified else logging.WARNING
            self.log.log(level, "completed an earlier write of %s: %s", self.applier.name,
                         outcome.detail)  # fmt: skip
            if outcome.rolled_back or outcome.unverified:
                self._alert(now, "rollback", f"rollback:{self.applier.name}",
                            (Priority.P1, Severity.ERROR), f"{self.applier.name}: {outcome.detail}",
                            component="verify", detail=outcome.detail)  # fmt: skip
        return None

    def _run(self, config: Config, *, now: float, leader: bool) -> CycleResult:
        if leader:
            failed = self._recover(now)
            if failed is not None:
                return failed
        specs = signals_needed(enabled_limits(config, self.catalogue), self.catalogue)
        start = now - config.trend_analysis.analysis_window
        try:
            with self.metrics.phase("collect"), self.metrics.source_query(config.source.kind):
                source = self.source_factory(config, now)  # may read token files: source error
                progress = ProgressLog(self.log, f"collecting from {source.describe()}")
                observation = source.collect(specs, start=start, end=now, progress=progress)
        except SourceError as exc:
            self.health.set_source_reachable(False, str(exc))
            self.metrics.errors_total.labels(component="source", reason="collect_failed").inc()
            self._event(now, "collection_failed", level="error", component="source", error=str(exc))
            self._alert(
                now,
                "collection_failed",
                f"collection_failed:{config.source.kind}",
                (Priority.P2, Severity.ERROR),
                f"collecting usage failed: {exc}",
                component="source",
                error=str(exc),
            )
            return CycleResult(False, detail=f"collection failed, nothing applied: {exc}")
        if not observation.tenants:
            return self._no_tenants(config, source, now)
        self.health.set_source_reachable(True, source.describe())
        self._alert(
            now,
            "collection_failed",
            f"collection_failed:{config.source.kind}",
            (Priority.P2, Severity.ERROR),
            component="source",
            resolved=True,
        )
        with self.metrics.phase("memory"):
            self._memory = self.peak_memory.for_cycle(config, now=now, leader=leader)
        try:
            with self.metrics.phase("read_target"):
                content = self.applier.target.read()
            planned = self._plan(config, observation, content, now)
        except (TargetError, OverridesParseError, OverridesValueError, CurrentLimitsError) as exc:
            self.metrics.errors_total.labels(component="target", reason="read_failed").inc()
            self._event(
                now, "target_read_failed", level="error", component="target", error=str(exc)
            )
            return CycleResult(False, detail=f"cannot read {self.applier.name}: {exc}")
        recs = planned.recommendations
        writes, held = planned.writes, planned.held_back
        with self.metrics.phase("memory"):
            self.peak_memory.after_cycle(recs, config, now=now, leader=leader)
        with self.metrics.phase("report"):
            for guard in self.guards:
                guard.planned(planned, config, now)
            self.metrics.observe_recommendations(recs, planned=writes.tenants(), now=now)
            self._checkpoint(recs, now)
            spikes = sum(int(r.spike_count.sum()) for r in recs.results.values())
            if spikes:
                self.metrics.spikes_detected_total.inc(spikes)
        result = CycleResult(True, planned=len(planned), held_back=len(held), recommendations=recs)
        if held:
            with self.metrics.phase("audit"):
                self._held_back(planned, config, now)
        partial = dict(observation.unavailable)
        self._report_incomplete(observation, now)
        lost = self._store_recreated_hold(config, now)
        audited = self._last_audited() or ""
        if config.mode is Mode.DRY_RUN or not leader or partial or lost or not writes.changes:
            why = (
                "dry-run mode"
                if config.mode is Mode.DRY_RUN
                else "not the leader"
                if not leader
                else f"partial collection ({', '.join(sorted(partial))} unavailable)"
                if partial
                else lost or "no change needed"
            )
            action = "would_update_limits" if config.mode is Mode.DRY_RUN else "skipped_update"
            digest = _digest(writes)
            if digest == audited:  # the same writes as last audited: counted, not re-audited
                self.metrics.plans_unchanged_total.inc()
            else:
                with self.metrics.phase("audit"):
                    self.report.events(_change_events(writes, now, action, config, why))
                audited = self._audited = digest
            with self.metrics.phase("audit"):  # the stored plan: the held-back details
                self._store_plan(planned, config, now, audited)
            result.detail = f"{len(writes)} change(s) not applied: {why}"
            return result
        self._audited = ""  # after a write, the next dry-run plan is news again
        self._store_plan(planned, config, now, "")
        return self._apply(config, writes, observation, result, now=now)

    def _held_back(self, plan: CyclePlan, config: Config, now: float) -> None:
        """One summarised event per cycle for everything held back (at 10,000 tenants the
        per-cycle tenant cap alone holds thousands); each item and why is in the stored plan."""
        held = plan.held_back
        by_reason: dict[str, int] = {}
        for h in held:
            reason = h.reason.removeprefix("held: ")
            kind = reason.split(":", 1)[0] if ":" in reason[:40] else reason
            by_reason[kind] = by_reason.get(kind, 0) + 1
        self._event(
            now,
            "change_held_back",
            count=len(held),
            tenants=len({h.change.tenant for h in held}),
            reasons=by_reason,
            examples=[
                {
                    "tenant": h.change.tenant,
                    "limit": h.change.limit,
                    "old": h.change.old,
                    "new": h.change.new,
                    "reason": h.reason,
                }
                for h in held[:HELD_EXAMPLES]
            ],
            mode=config.mode.value,
            detail=f"the cycle's stored plan ({PLAN_KEY}) lists every held-back change",
        )

    def _apply(
        self,
        config: Config,
        allowed: Plan,
        observation: Observation,
        result: CycleResult,
        *,
        now: float,
    ) -> CycleResult:
        first = True

        def replan(content: Content) -> Plan:
            nonlocal first
            if first:  # the plan was made against this very read
                first = False
                return allowed
            return self._plan(config, observation, content, now).writes

        def events(plan: Plan) -> list[AuditEvent]:
            """update_limits per change, stored with the write's revision (atomically)."""
            return _change_events(plan, now, "update_limits", config)

        try:
            with self.metrics.phase("apply"):
                outcome = self.applier.apply(replan, now=now, events=events)
        except (ApplyError, TargetError, OverridesParseError, StoreError) as exc:
            self.metrics.errors_total.labels(component="target", reason="write_failed").inc()
            self._event(
                now,
                "update_limits_failed",
                level="error",
                component="target",
                error=str(exc),
                changes=len(allowed),
            )
            result.ok, result.detail = False, f"apply failed, previous content intact: {exc}"
            self._alert(
                now,
                "apply_failed",
                f"apply_failed:{self.applier.name}",
                (Priority.P1, Severity.ERROR),
                f"applying {len(allowed)} limit change(s) to "
                f"{self.applier.name} failed, previous content intact: {exc}",
                component="target",
                error=str(exc),
                changes=len(allowed),
            )
            return result
        if outcome.unrecorded:
            self.metrics.errors_total.labels(component="store", reason="record_failed").inc()
            self._alert(now, "store_failed", f"store_failed:{self.applier.name}",
                        (Priority.P1, Severity.ERROR), f"{self.applier.name}: {outcome.detail}",
                        component="store", detail=outcome.detail)  # fmt: skip
        if outcome.rolled_back:  # the rollback audit event is stored with its revision
            self.metrics.errors_total.labels(component="verify", reason="reload_failed").inc()
            result.ok, result.detail = False, outcome.detail
            self._alert(
                now,
                "rollback",
                f"rollback:{self.applier.name}",
                (Priority.P1, Severity.ERROR),
                f"Mimir did not load the new limits of "
                f"{self.applier.name}; rolled back: {outcome.detail}",
                component="verify",
                detail=outcome.detail,
            )
            return result
        for kind in ("apply_failed", "rollback"):
            self._alert(
                now,
                kind,
                f"{kind}:{self.applier.name}",
                (Priority.P1, Severity.ERROR),
                component="target",
                resolved=True,
            )
        written = outcome.plan if outcome.plan is not None else allowed  # after any re-plan
        if outcome.applied:  # its update_limits events are stored with the revision
            self.metrics.limits_applied_total.inc(len(written))
            result.applied = len(written)
            revision = outcome.revision.id if outcome.revision else None
            changes = [
                {"tenant": c.tenant, "limit": c.limit, "old": c.old, "new": c.new}
                for c in written.changes[:20]
            ]
            self._alert(
                now,
                "limits_applied",
                f"limits_applied:{self.applier.name}:{revision}",
                (Priority.P3, Severity.INFO),
                f"{len(written)} limit change(s) applied to "
                f"{self.applier.name} (revision {revision})",
                component="target",
                revision=revision,
                count=len(written),
                changes=changes,
            )
        result.detail = outcome.detail
        if outcome.unrecorded:
            result.ok = False
        if outcome.unverified:  # written, Mimir did not confirm it, and no rollback happened
            result.ok = False
            self.metrics.errors_total.labels(component="verify", reason="unverified").inc()
            self._alert(
                now,
                "rollback",
                f"rollback:{self.applier.name}",
                (Priority.P1, Severity.ERROR),
                f"{self.applier.name}: {outcome.detail}",
                component="verify",
                detail=outcome.detail,
            )
        return result
