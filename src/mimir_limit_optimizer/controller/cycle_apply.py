"""The apply step of a reconcile cycle (prod mode, leader, complete data, something to write):
write through the applier (which re-plans on a changed target, records the intent, verifies
and rolls back), then report the outcome: audit, alerts and metrics. A base of `Reconciler`,
which provides what is declared here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mimir_limit_optimizer.alerting.model import Priority, Severity
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.controller.apply_outcome import ApplyError
from mimir_limit_optimizer.controller.cycle_records import change_events
from mimir_limit_optimizer.engine.overrides import OverridesParseError
from mimir_limit_optimizer.engine.plan import Plan
from mimir_limit_optimizer.engine.planning import CyclePlan
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.engine.usage import Observation
from mimir_limit_optimizer.observability.metrics import ControllerMetrics
from mimir_limit_optimizer.store import AuditEvent, StoreError
from mimir_limit_optimizer.targets.base import Content, TargetError


@dataclass
class CycleResult:
    ok: bool
    planned: int = 0
    applied: int = 0
    held_back: int = 0
    detail: str = ""
    recommendations: Recommendations | None = None
    notes: list[str] = field(default_factory=list)


class ApplyStep:
    """`_apply` of `Reconciler`; the attributes and methods below are the Reconciler's."""

    applier: Applier
    metrics: ControllerMetrics
    _event: Callable[..., None]
    _alert: Callable[..., None]
    _plan: Callable[[Config, Observation, Content, float], CyclePlan]

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
            return change_events(plan, now, "update_limits", config)

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
