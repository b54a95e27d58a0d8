"""Completing what a crash or a store outage left open (docs/reliability.md).

Every write is an intent in the store before it happens (controller/apply.py). At each cycle
start every open intent of the target is reconciled with what the target holds: the write
happened (record its revision and audit events late, then verify it), it did not (not done),
it was rolled back before its record (record the rollback), or someone else changed the
target since (superseded). An outcome decided while the store was failing is recorded as it
happened.
"""

from __future__ import annotations

from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.controller.apply_outcome import ApplyOutcome, target_event
from mimir_limit_optimizer.store import Revision
from mimir_limit_optimizer.store.records import Intent


def recover_intents(applier: Applier, *, now: float) -> list[ApplyOutcome]:
    """Reconcile every open intent of `applier`'s target (call with its lock held)."""
    return [_recover(applier, i, now=now) for i in applier.store.open_intents(applier.name)]


def _recover(applier: Applier, intent: Intent, *, now: float) -> ApplyOutcome:
    late = "recorded late"
    held = applier.take_unrecorded(intent.id)
    if held is not None:  # decided while the store was failing: record it as it happened
        if intent.state == "pending":
            _record_late(applier, intent, now)
        applier.finish(
            intent, held.state, now, held.note, restored=held.restored, events=list(held.events)
        )  # this process decided it: it knows
        return ApplyOutcome(
            held.state in ("done", "unverified"),
            rolled_back=held.state == "rolled_back",
            unverified=held.state == "unverified",
            detail=f"intent {intent.id} ({late}): {held.note}",
            intent=intent.id,
        )
    current = applier.target.read().text
    if intent.state == "pending":
        if current == intent.new_content:
            revision = _record_late(applier, intent, now)
            if not intent.verify:
                return ApplyOutcome(
                    True,
                    revision,
                    detail=f"intent {intent.id}: the write happened before a crash; its "
                    f"revision and audit events were {late}",
                    intent=intent.id,
                )
            refreshed = applier.store.intent(intent.id)
            intent = refreshed if refreshed is not None else intent
        elif current == intent.old_content:
            note = "the write did not happen (the target holds the content before it)"
            event = target_event(now, "warning", "update_not_done", detail=note)
            applier.finish(intent, "not_done", now, note, events=[event], writer=False)
            return ApplyOutcome(False, detail=f"intent {intent.id}: {note}", intent=intent.id)
        else:
            return _superseded(applier, intent, now)
    # Written; its verification did not finish.
    if current == intent.old_content:
        note = "rolled back before its outcome was recorded"
        event = target_event(now, "error", "rollback", detail=note)
        applier.finish(
            intent,
            "rolled_back",
            now,
            note,
            restored=intent.old_content,
            events=[event],
            writer=False,
        )
        return ApplyOutcome(
            False, rolled_back=True, detail=f"intent {intent.id}: {note}", intent=intent.id
        )
    if current != intent.new_content:
        return _superseded(applier, intent, now)
    if applier.verifier is None:
        note = "no verifier configured any more"
        applier.finish(intent, "done", now, note, writer=False)
        return ApplyOutcome(True, detail=f"intent {intent.id}: {note}", intent=intent.id)
    written = applier.store.revision(intent.revision_id) if intent.revision_id else None
    outcome = applier.verify(intent, written, now=now)
    outcome.detail = f"intent {intent.id}, verified after a restart: {outcome.detail}"
    return outcome


def _record_late(applier: Applier, intent: Intent, now: float) -> Revision:
    revision, events = applier.store.record_write(
        intent.id, at=now, note="recorded after a restart", extra={"recorded_late": True}
    )
    for event in events:
        applier.audit.logged(event)
    return revision


def _superseded(applier: Applier, intent: Intent, now: float) -> ApplyOutcome:
    note = (
        "the target holds neither the content before nor after this write: changed by "
        "someone else; the outcome of this write is unknown"
    )
    event = target_event(now, "warning", "update_superseded", detail=note)
    applier.finish(intent, "superseded", now, note, events=[event], writer=False)
    return ApplyOutcome(False, detail=f"intent {intent.id}: {note}", intent=intent.id)
