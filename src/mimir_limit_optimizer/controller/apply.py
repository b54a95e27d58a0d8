"""Apply a plan to a target safely: render, validate, compare-and-swap write, read back,
record a revision, verify that Mimir loaded it, and roll back when it did not.

Whatever fails, the target holds either its previous content or the new, validated content.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.controller.apply_outcome import (
    ApplyError,
    ApplyOutcome,
    Unrecorded,
    target_event,
)
from mimir_limit_optimizer.controller.plan_render import plan_rows, render_plan_onto
from mimir_limit_optimizer.controller.revision_restore import restore_revision
from mimir_limit_optimizer.engine.plan import Plan
from mimir_limit_optimizer.store import AuditEvent, AuditLog, Revision, Store, StoreError
from mimir_limit_optimizer.store.records import Intent
from mimir_limit_optimizer.targets.base import ConflictError, Content, Target, TargetError
from mimir_limit_optimizer.targets.verify import MimirVerifier

# Audit events to store with a plan's write once it is confirmed (built before the write).
EventsFor = Callable[[Plan], list[AuditEvent]]


class Applier:
    """Writes plans to one target. Every write is an intent recorded in the store first
    (plan, old and new content), then the write, then its revision and audit events in one
    transaction, then verification; `recover` completes what a crash or a store outage left
    open (docs/reliability.md)."""

    def __init__(
        self,
        target: Target,
        store: Store,
        catalogue: Catalogue,
        *,
        verifier: MimirVerifier | None,
        rollback_on_failure: bool,
        conflict_retries: int = 5,
        sleep: Callable[[float], None],
        logger: logging.Logger,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self.is_leader = is_leader
        # The slow cycle and the fast protection loop (its own thread) share this applier:
        # one write sequence (read, plan, write, verify) at a time.
        self._lock = threading.RLock()
        self.target = target
        self.store = store
        self.catalogue = catalogue
        self.verifier = verifier
        self.rollback_on_failure = rollback_on_failure
        self.conflict_retries = conflict_retries
        self.sleep = sleep
        self.log = logger
        self.audit = AuditLog(store, logger=logging.getLogger("mimir_limit_optimizer.audit"))
        # Outcomes decided while the store was failing, by intent id (see _finish).
        self._unrecorded: dict[int, Unrecorded] = {}

    @property
    def name(self) -> str:
        return self.target.describe()

    def apply(
        self,
        replan: Callable[[Content], Plan],
        *,
        now: float,
        actor: str = "controller",
        events: EventsFor | None = None,
    ) -> ApplyOutcome:
        with self._lock:
            return self._apply(replan, now=now, actor=actor, events=events)

    def _apply(
        self,
        replan: Callable[[Content], Plan],
        *,
        now: float,
        actor: str,
        events: EventsFor | None,
    ) -> ApplyOutcome:
        """Read, plan against what was read (`replan`), record the intent, write with
        compare-and-swap; on a conflict re-read and re-plan, with backoff."""
        for attempt in range(self.conflict_retries + 1):
            content = self.target.read()
            plan = replan(content)
            if not plan.changes:
                return ApplyOutcome(False, detail="nothing to apply")
            text = render_plan_onto(content, plan, self.catalogue, self.name)
            if text == content.text:
                return ApplyOutcome(False, detail="the target already holds these values")
            if not self.is_leader():  # the lease may have been lost while planning
                raise ApplyError(f"not the leader any more: nothing written to {self.name}")
            intent = self._intend(
                content=content, text=text, plan=plan, now=now, actor=actor, events=events
            )
            try:
                version = self.target.write(text, expected_version=content.version)
            except ConflictError as exc:
                self.finish(intent, "not_done", now, f"conflicting write: {exc}")
                delay = min(8.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)
                self.log.warning(
                    "conflict writing %s (%s); re-planning in %.1fs", self.name, exc, delay
                )
                self.sleep(delay)
                continue
            except TargetError as exc:
                self.finish(intent, "not_done", now, f"the write failed: {exc}")
                raise
            del version  # the read-back below is the proof
            outcome = self._after_write(intent, text, now=now)
            outcome.plan = plan
            return outcome
        raise ApplyError(
            f"gave up after {self.conflict_retries + 1} conflicting writes to {self.name}"
        )

    def _intend(
        self,
        *,
        content: Content,
        text: str,
        plan: Plan,
        now: float,
        actor: str,
        events: EventsFor | None,
    ) -> Intent:
        """The durable record that comes before the write: no record, no write."""
        problem = self.store.file_problem()
        if problem is not None:
            raise ApplyError(f"{problem}: nothing written to {self.name} (no durable record)")
        try:
            latest = self.store.latest_revision(self.name)
            if latest is not None and latest.content and not content.exists:
                # Written before and now gone: a new file holding only this plan would drop
                # every other override Mimir has (it keeps its last good config meanwhile).
                raise ApplyError(
                    f"{self.name} no longer exists, but revision {latest.id} was written to "
                    f"it: refusing to create it with only this cycle's changes; restore it "
                    f"with `mlo rollback --to {latest.id}`"
                )
            if latest is None and content.exists:
                # Keep what was there before the optimizer's first write: rollback reaches it.
                self.store.add_revision(
                    target=self.name,
                    content=content.text,
                    plan=[],
                    actor="baseline",
                    created_at=now,
                    kind="baseline",
                    note="content before the first apply",
                )
            return self.store.add_intent(
                target=self.name,
                actor=actor,
                created_at=now,
                plan=plan_rows(plan),
                old_content=content.text,
                new_content=text,
                events=events(plan) if events is not None else (),
                verify=self.verifier is not None,
            )
        except StoreError as exc:
            raise ApplyError(
                f"cannot record the intended write, so nothing was written to {self.name}: {exc}"
            ) from exc

    def _after_write(self, intent: Intent, text: str, *, now: float) -> ApplyOutcome:
        back = self.target.read()
        if back.text != text:
            self.finish(intent, "superseded", now, "the read-back differs from what was written")
            raise ApplyError(f"read-back of {self.name} differs from what was written")
        try:
            revision, events = self.store.record_write(intent.id, at=now, writer=True)
        except StoreError as exc:
            # The write is live and its intent is stored: `recover` records and verifies it
            # once the store is back (at the latest, at the next start).
            return ApplyOutcome(
                True,
                unrecorded=True,
                intent=intent.id,
                detail=f"written, but the store failed before its revision was recorded "
                f"({exc}); it is recorded and verified once the store is back",
            )
        for event in events:
            self.audit.logged(event)
        if self.verifier is None:
            return ApplyOutcome(
                True, revision, detail="written and read back", events=events, intent=intent.id
            )
        outcome = self.verify(intent, revision, now=now)
        outcome.events = events + outcome.events
        return outcome

    def verify(self, intent: Intent, revision: Revision | None, *, now: float) -> ApplyOutcome:
        """Wait for Mimir to load the intent's values; roll back when it does not."""
        assert self.verifier is not None
        expected: dict[str, dict[str, float]] = {}
        for row in intent.plan:
            expected.setdefault(str(row["tenant"]), {})[str(row["limit"])] = float(row["new"])
        result = self.verifier.verify(expected, self.catalogue)
        if result.ok:
            detail = f"Mimir loaded it: {result.detail}"
            recorded = self.finish(intent, "done", now, detail)
            return ApplyOutcome(
                True, revision, detail=detail, unrecorded=not recorded, intent=intent.id
            )
        unverified = "verification failed"
        if not self.rollback_on_failure:
            detail = f"{unverified}: {result.detail}"
        elif not self.is_leader():
            detail = (
                f"{unverified}, and no longer the leader to roll back: the new content is "
                f"live ({result.detail})"
            )
        else:
            try:
                current = self.target.read()
                if current.text != intent.new_content:
                    raise TargetError("it changed since the write")
                self.target.write(intent.old_content, expected_version=current.version)
            except TargetError as exc:
                detail = (
                    f"{unverified} and the rollback failed ({exc}): the new content is live; "
                    f"restore it with `mlo rollback` ({result.detail})"
                )
            else:
                detail = f"{unverified}, rolled back: {result.detail}"
                event = target_event(now, "error", "rollback", detail=detail)
                recorded = self.finish(
                    intent, "rolled_back", now, detail, restored=intent.old_content, events=[event]
                )
                latest = self.store.revisions(self.name, limit=1) if recorded else []
                return ApplyOutcome(
                    False,
                    latest[0] if latest else None,
                    rolled_back=True,
                    detail=detail,
                    unrecorded=not recorded,
                    intent=intent.id,
                )
        event = target_event(now, "error", "update_unverified", detail=detail)
        recorded = self.finish(intent, "unverified", now, detail, events=[event])
        return ApplyOutcome(
            True,
            revision,
            unverified=True,
            detail=detail,
            unrecorded=not recorded,
            intent=intent.id,
        )

    def finish(
        self,
        intent: Intent,
        state: str,
        now: float,
        note: str,
        *,
        restored: str | None = None,
        events: list[AuditEvent] | None = None,
        writer: bool = True,
    ) -> bool:
        """Record an intent's outcome; when the store fails, keep it for `recover` (the
        intent itself stays open in the store, so even a crash loses nothing). True when
        recorded now."""
        try:
            _, stored = self.store.finish_intent(
                intent.id,
                state,
                at=now,
                note=note,
                restored=restored,
                events=events or (),
                writer=writer,
            )
        except StoreError as exc:
            self.log.error(
                "could not record the outcome (%s) of the write to %s: %s; it is recorded "
                "once the store is back",
                state,
                self.name,
                exc,
            )
            self._unrecorded[intent.id] = Unrecorded(state, note, restored, tuple(events or ()))
            return False
        for event in stored:
            self.audit.logged(event)
        return True

    def recover(self, *, now: float) -> list[ApplyOutcome]:
        """Complete every write this target's intents left open: after a crash or a store
        outage, reconcile each against what the target holds (controller/recovery.py).
        Raises StoreError when the store still fails; nothing is written then."""
        from mimir_limit_optimizer.controller.recovery import recover_intents

        with self._lock:
            return recover_intents(self, now=now)

    def take_unrecorded(self, intent_id: int) -> Unrecorded | None:
        """The outcome of `intent_id` decided while the store was failing, if any (once)."""
        return self._unrecorded.pop(intent_id, None)

    def restore(
        self, revision: Revision, *, now: float, actor: str, events: Sequence[AuditEvent] = ()
    ) -> Revision | None:
        """Write `revision`'s content back byte for byte (mlo rollback, the UI's rollback).

        Like an apply it is an intent first, then the write, then its "rollback" revision and
        `events` in one transaction, so a crash in between loses nothing (recovery records
        it). Returns the new revision (`revision` itself when the target already holds it),
        or None when the write happened but the store failed before recording it: it is
        recorded once the store is back. Raises TargetError when nothing was written."""
        with self._lock:
            return restore_revision(self, revision, now=now, actor=actor, events=events)
