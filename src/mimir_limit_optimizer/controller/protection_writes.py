"""Protection's writes: what the clamps ask of the overrides (decided in
engine/protection/guard.py) written through the Applier, and, when protection does not act,
the same reported as "would ..." (audit and counters)."""

from __future__ import annotations

from collections.abc import Callable

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.controller.apply_outcome import ApplyError
from mimir_limit_optimizer.controller.protection_report import COMPONENT, ProtectionReporter
from mimir_limit_optimizer.engine.overrides import OverridesDocument, OverridesParseError
from mimir_limit_optimizer.engine.plan import Plan
from mimir_limit_optimizer.engine.protection import ProtectionState
from mimir_limit_optimizer.engine.protection.guard import (
    ClampWrite,
    clamp_writes,
    override_value,
)
from mimir_limit_optimizer.observability.protection_metrics import ProtectionMetrics
from mimir_limit_optimizer.store import AuditEvent, StoreError
from mimir_limit_optimizer.targets.base import Content, TargetError

ACTOR = "protection"  # the revisions' actor


def clamp_event(write: ClampWrite, config: Config, now: float) -> AuditEvent:
    """`clamp_limits` / `restore_limits` for one written cap (the store adds its revision)."""
    change = write.change
    return AuditEvent(
        now,
        "warning" if write.tightening else "info",
        "security",
        COMPONENT,
        "clamp_limits" if write.tightening else "restore_limits",
        change.tenant,
        {
            "limit": change.limit,
            "old": change.old,
            "new": change.new,
            "reasons": list(change.reasons),
            "mode": config.mode.value,
        },
    )


class ClampWriter:
    def __init__(
        self,
        *,
        applier: Applier,
        catalogue: Catalogue,
        report: ProtectionReporter,
        metrics: ProtectionMetrics,
    ) -> None:
        self.applier = applier
        self.catalogue = catalogue
        self.report = report
        self.metrics = metrics

    def changes(
        self, state: ProtectionState, doc: OverridesDocument | None, *, acting: bool
    ) -> list[ClampWrite]:
        """The writes the clamps ask of `content` (engine/protection/guard.py decides); the
        clamps whose written value is no longer protection's forget it."""
        asked = clamp_writes(state.clamps, doc, self.catalogue, acting=acting)
        for key in asked.forget:
            state.clamps[key].written = None
        return list(asked.writes)

    def write(
        self,
        state: ProtectionState,
        document: Callable[[Content], OverridesDocument],
        config: Config,
        content: Content,
        now: float,
        *,
        acting: bool,
    ) -> bool:
        """Write what the clamps ask through the Applier (compare-and-swap, validation,
        revision, verify, rollback); a conflict re-reads and asks again. True when written."""
        if not self.changes(state, document(content), acting=acting):
            return False  # nothing to write: no second read of the target
        planned: list[ClampWrite] = []

        def replan(content: Content) -> Plan:
            nonlocal planned
            planned = self.changes(state, document(content), acting=acting)
            return Plan(tuple(w.change for w in planned))

        def events(_plan: Plan) -> list[AuditEvent]:
            # Recorded with the write's revision in one transaction (the intent carries them),
            # so a crash between the write and its record loses none of them.
            return [clamp_event(w, config, now) for w in planned]

        try:
            outcome = self.applier.apply(replan, now=now, actor=ACTOR, events=events)
        except (ApplyError, TargetError, OverridesParseError, StoreError) as exc:
            self.report.event(now, "protection_write_failed", None, {"error": str(exc)}, "error")
            return False
        if outcome.rolled_back:
            self.report.event(
                now, "protection_write_rolled_back", None, {"detail": outcome.detail}, "error"
            )
            return False
        if not outcome.applied:
            return False
        for write in planned:
            clamp = state.clamps.get(write.key)
            if clamp is None:
                continue
            clamp.written = write.change.new if clamp.active and acting else None
            if write.tightening:
                self.metrics.throttled_requests_total.labels(
                    limit=write.change.limit, mode=config.mode.value
                ).inc()
        return True

    def report_would(
        self,
        state: ProtectionState,
        config: Config,
        now: float,
        doc: OverridesDocument | None,
        why: str,
    ) -> None:
        """Not acting: every cap whose value changed since it was last reported is audited
        as `would_clamp_limits` / `would_restore_limits` (before/after values)."""
        for (tenant, limit), clamp in sorted(state.clamps.items()):
            want = clamp.desired() if clamp.active else None
            if want == clamp.reported:
                continue
            in_force = override_value(doc, tenant, limit, self.catalogue)
            old = in_force if in_force is not None else clamp.target
            if want is None:
                action, new = "would_restore_limits", clamp.target
            else:
                action, new = "would_clamp_limits", want
                self.metrics.throttled_requests_total.labels(
                    limit=limit, mode=config.mode.value
                ).inc()
            clamp.reported = want
            self.report.event(
                now,
                action,
                tenant,
                {
                    "limit": limit,
                    "old": old,
                    "new": new,
                    "reasons": list(clamp.reasons),
                    "mode": config.mode.value,
                    "why": why,
                },
                "info",
            )
