"""One reconcile cycle of the service: collect, recommend, plan, guard, then audit (dry-run)
or apply (prod). Never applies from a failed or partial collection."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mimir_limit_optimizer.alerting.model import Alert, AlertSink, AlertStatus, Priority, Severity
from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import Config, Mode
from mimir_limit_optimizer.controller.apply import Applier, ApplyError
from mimir_limit_optimizer.controller.oneshot import resolve_limits_in_force, signals_needed
from mimir_limit_optimizer.engine.overrides import (
    OverridesParseError,
    OverridesValueError,
    parse_overrides,
)
from mimir_limit_optimizer.engine.plan import Plan, build_plan
from mimir_limit_optimizer.engine.recommend import enabled_limits, recommend
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.engine.safety import SafetyResult, apply_safety
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
# Marker in `last_changed` for "a rollback happened within the cooldown" (see engine/safety.py).
ROLLED_BACK = ("*", "*")

# A guard sees the plan the recommendations ask for and returns the plan to go ahead with.
# Guards (blast protection, budgets) may only tighten: keep a change, drop it, or replace its
# new value with a lower one, each with a reason in the change's reasons.
PlanGuard = Callable[[Plan, Recommendations, Config, float], Plan]


def _plain(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def last_checkpoint(store: Store) -> dict[str, object] | None:
    """The last cycle's results saved by `Reconciler` (None before the first cycle)."""
    raw = store.load_checkpoint(CHECKPOINT_KEY)
    return None if raw is None else dict(json.loads(raw))


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
        self.alerts = alerts  # where alerts go (never blocks, never raises); None: nowhere
        self.catalogue = catalogue
        self.source_factory = source_factory
        self.applier = applier
        self.store = store
        self.audit = audit
        self.metrics = metrics
        self.health = health
        self.log = logger

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
        self.audit.record(
            AuditEvent(now, level, category, component, action, tenant, dict(details))
        )

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
        """Emit an alert (or, `resolved`, the end of the incident `key`: channels that were
        notified of it hear it is over; the others hear nothing)."""
        if self.alerts is not None:
            priority, severity = level
            status = AlertStatus.RESOLVED if resolved else AlertStatus.FIRING
            self.alerts.emit(
                Alert(
                    kind,
                    priority,
                    severity,
                    summary or kind,
                    component,
                    key,
                    now,
                    details=details,
                    status=status,
                )
            )

    def _checkpoint(self, recs: Recommendations, now: float) -> None:
        """The last cycle's results, so a restart knows where it stood. (Usage history itself
        lives in Prometheus: every cycle rebuilds its percentiles and histograms from there.)"""
        limits = {
            name: {
                tenant: [_plain(r.current[i]), _plain(r.recommended[i]), r.status_of(i).value]
                for i, tenant in enumerate(recs.tenants)
            }
            for name, r in recs.results.items()
        }
        payload = {"at": now, "window": list(recs.window), "limits": limits}
        self.store.save_checkpoint(CHECKPOINT_KEY, json.dumps(payload).encode(), at=now)

    def _last_changed(self, since: float) -> dict[tuple[str, str], float]:
        """When each tenant x limit was last changed on this target (from the revisions)."""
        out: dict[tuple[str, str], float] = {}
        for revision in self.store.revisions(self.applier.name, limit=200):
            if revision.created_at < since:
                break
            if revision.kind == "rollback":
                out[ROLLED_BACK] = revision.created_at  # a recent rollback holds every change
                continue
            if revision.kind != "apply":
                continue
            for row in revision.plan:
                key = (str(row["tenant"]), str(row["limit"]))
                out.setdefault(key, revision.created_at)
        return out

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
    ) -> tuple[Recommendations, SafetyResult]:
        specs = enabled_limits(config, self.catalogue)
        collected = signals_needed(specs, self.catalogue)
        with self.metrics.phase("read_target"):
            document = parse_overrides(content.text, source_name=self.applier.name)
            merged = resolve_limits_in_force(
                observation, config, self.catalogue, collected, document, logger=self.log
            )
        with self.metrics.phase("recommend"):
            recs = recommend(
                merged, config, self.catalogue, now=now, limits=[s.name for s in specs]
            )
        with self.metrics.phase("plan"):
            plan = build_plan(recs)
            for guard in self.guards:  # protection, budgets: they may only tighten the plan
                plan = guard(plan, recs, config, now)
            since = now - config.change_policy.cooldown
            guarded = apply_safety(plan, config, last_changed=self._last_changed(since), now=now)
        return recs, guarded

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
        try:
            with self.metrics.phase("read_target"):
                content = self.applier.target.read()
            recs, guarded = self._plan(config, observation, content, now)
        except (TargetError, OverridesParseError, OverridesValueError, CurrentLimitsError) as exc:
            self.metrics.errors_total.labels(component="target", reason="read_failed").inc()
            self._event(
                now, "target_read_failed", level="error", component="target", error=str(exc)
            )
            return CycleResult(False, detail=f"cannot read {self.applier.name}: {exc}")
        with self.metrics.phase("report"):
            self.metrics.observe_recommendations(recs, planned=guarded.allowed.tenants(), now=now)
            self._checkpoint(recs, now)
            spikes = sum(int(r.spike_count.sum()) for r in recs.results.values())
            if spikes:
                self.metrics.spikes_detected_total.inc(spikes)
        result = CycleResult(
            True,
            planned=len(guarded.allowed) + len(guarded.held_back),
            held_back=len(guarded.held_back),
            recommendations=recs,
        )
        with self.metrics.phase("audit"):
            for held in guarded.held_back:
                c = held.change
                self._event(
                    now,
                    "change_held_back",
                    tenant=c.tenant,
                    limit=c.limit,
                    old=c.old,
                    new=c.new,
                    reason=held.reason,
                    mode=config.mode.value,
                )
        partial = dict(observation.unavailable)
        self._report_incomplete(observation, now)
        lost = self._store_recreated_hold(config, now)
        if (
            config.mode is Mode.DRY_RUN
            or not leader
            or partial
            or lost
            or not guarded.allowed.changes
        ):
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
            with self.metrics.phase("audit"):
                for c in guarded.allowed.changes:
                    self._event(
                        now,
                        action,
                        tenant=c.tenant,
                        limit=c.limit,
                        old=c.old,
                        new=c.new,
                        reasons=list(c.reasons),
                        mode=config.mode.value,
                        why=why,
                    )
            result.detail = f"{len(guarded.allowed)} change(s) not applied: {why}"
            return result
        return self._apply(config, guarded.allowed, observation, result, now=now)

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
            return self._plan(config, observation, content, now)[1].allowed

        def events(plan: Plan) -> list[AuditEvent]:
            """update_limits per change, stored with the write's revision (atomically)."""
            mode = config.mode.value
            return [
                AuditEvent(
                    now,
                    "info",
                    "system",
                    "controller",
                    "update_limits",
                    c.tenant,
                    {
                        "limit": c.limit,
                        "old": c.old,
                        "new": c.new,
                        "reasons": list(c.reasons),
                        "mode": mode,
                    },
                )
                for c in plan.changes
            ]

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
