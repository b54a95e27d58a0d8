"""What a write to the target ended in (controller/apply.py, controller/recovery.py,
controller/revision_restore.py): the outcome, the error that means nothing was written, an
outcome the store could not take yet, and the audit event of a target-level step."""

from __future__ import annotations

from dataclasses import dataclass, field

from mimir_limit_optimizer.engine.plan import Plan
from mimir_limit_optimizer.store import AuditEvent, Revision


@dataclass
class ApplyOutcome:
    applied: bool
    revision: Revision | None = None
    # The plan actually written (after conflicts it may differ from the one first proposed).
    plan: Plan | None = None
    # Written, but Mimir did not confirm it and it was not rolled back.
    unverified: bool = False
    rolled_back: bool = False
    detail: str = ""
    errors: list[str] = field(default_factory=list)
    # The store failed before the outcome was recorded: it is kept in the intent (and in
    # memory) and recorded by `Applier.recover` once the store is back.
    unrecorded: bool = False
    # Audit events stored with the write, in the same transaction as its revision.
    events: list[AuditEvent] = field(default_factory=list)
    intent: int | None = None


class ApplyError(Exception):
    """The plan could not be applied; the target is unchanged."""


@dataclass(frozen=True)
class Unrecorded:
    """An outcome the store could not take when it happened."""

    state: str
    note: str
    restored: str | None
    events: tuple[AuditEvent, ...]


def target_event(now: float, level: str, action: str, **details: object) -> AuditEvent:
    return AuditEvent(now, level, "system", "target", action, None, dict(details))
