"""Intended writes: recorded before a target is written, completed with the revision and the
audit events in one transaction, so that a crash at any point leaves either the intent (to be
reconciled against the target at the next start) or the complete record, never a live write
without a trace (docs/reliability.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Row, select, update

from mimir_limit_optimizer.store.errors import StoreError
from mimir_limit_optimizer.store.records import (
    INTENT_OPEN,
    INTENT_STATES,
    AuditEvent,
    Intent,
    Revision,
    plain_json,
    sha256_text,
)
from mimir_limit_optimizer.store.schema import Tables


class IntentsMixin:
    """The intent methods of `Store` (it provides `_tables` and `_transaction`)."""

    _tables: Tables

    def _transaction(
        self, doing: str, *, write: bool = False
    ) -> AbstractContextManager[Connection]:  # pragma: no cover - provided by Store
        raise NotImplementedError

    def add_intent(
        self,
        *,
        target: str,
        actor: str,
        created_at: float,
        plan: list[dict[str, Any]],
        old_content: str,
        new_content: str,
        events: Sequence[AuditEvent] = (),
        verify: bool = False,
    ) -> Intent:
        """Record that `new_content` is about to replace `old_content` in `target`."""
        values: dict[str, Any] = {
            "target": target,
            "actor": actor,
            "created_at": float(created_at),
            "plan": plain_json(plan, where=f"plan of the intent for {target}"),
            "old_content": old_content,
            "old_sha256": sha256_text(old_content),
            "new_content": new_content,
            "new_sha256": sha256_text(new_content),
            "events": [e.to_json() for e in events],
            "verify": 1 if verify else 0,
            "state": "pending",
            "revision_id": None,
            "note": "",
            "updated_at": float(created_at),
        }
        table = self._tables.intents
        with self._transaction(f"recording the intent to write {target}", write=True) as conn:
            inserted = conn.execute(table.insert().values(**values).returning(table.c.id))
            intent_id = int(inserted.scalar_one())
        return _intent_from({**values, "id": intent_id})

    def intent(self, intent_id: int) -> Intent | None:
        table = self._tables.intents
        with self._transaction(f"reading intent {intent_id}") as conn:
            row = conn.execute(select(table).where(table.c.id == intent_id)).first()
        return None if row is None else _intent(row)

    def open_intents(self, target: str) -> list[Intent]:
        """Intents of `target` whose outcome is not recorded yet, oldest first."""
        table = self._tables.intents
        query = (
            select(table)
            .where(table.c.target == target, table.c.state.in_(INTENT_OPEN))
            .order_by(table.c.id)
        )
        with self._transaction("listing open intents") as conn:
            return [_intent(row) for row in conn.execute(query)]

    def intents(self, target: str, *, limit: int = 50) -> list[Intent]:
        """Intents of `target`, newest first."""
        table = self._tables.intents
        query = select(table).where(table.c.target == target).order_by(table.c.id.desc())
        with self._transaction("listing intents") as conn:
            return [_intent(row) for row in conn.execute(query.limit(limit))]

    def record_write(
        self,
        intent_id: int,
        *,
        at: float,
        note: str = "",
        extra: dict[str, Any] | None = None,
        writer: bool = False,
    ) -> tuple[Revision, list[AuditEvent]]:
        """The intent's write happened: store its revision (created at the intent's time, so
        the cooldown counts from the write) and its audit events (each naming the revision,
        plus `extra` details), and mark it written (or done when nothing is left to verify),
        in one transaction.

        `writer`: called by the process that wrote and read back, which knows the write
        happened: it overrides another process's recovery that guessed otherwise (it saw the
        target between the intent and the write), and a write already recorded by such a
        recovery is returned as it is, never recorded twice.

        An intent without planned changes is a restore (`Applier.restore`: an apply with
        nothing planned never writes), so its revision is a "rollback" one."""
        with self._transaction(f"recording the write of intent {intent_id}", write=True) as conn:
            intent = self._open_intent(conn, intent_id, INTENT_STATES)
            if intent.revision_id is None and not writer and intent.state != "pending":
                raise StoreError(f"intent {intent_id} is {intent.state}: its write is not known")
            if intent.revision_id is not None:  # recorded meanwhile (by the writer or a recovery)
                table = self._tables.revisions
                row = conn.execute(select(table).where(table.c.id == intent.revision_id)).one()
                m = row._mapping
                recorded = Revision(**{k: m[k] for k in Revision.__dataclass_fields__})
                return recorded, []
            revision = self._insert_revision(
                conn,
                intent,
                content=intent.new_content,
                kind="apply" if intent.plan else "rollback",
                plan=intent.plan,
                created_at=intent.created_at,
                note=note,
            )
            details = {"revision": revision.id, **(extra or {})}
            events = [
                dataclasses.replace(
                    AuditEvent.from_json(data), timestamp=at, id=None
                )  # the event's own time is when its write is confirmed
                for data in intent.events
            ]
            stored = [
                self._insert_event(conn, dataclasses.replace(e, details={**e.details, **details}))
                for e in events
            ]
            state = "written" if intent.verify else "done"
            self._set_state(
                conn, intent_id=intent_id, state=state, at=at, note=note, revision_id=revision.id
            )
        return revision, stored

    def finish_intent(
        self,
        intent_id: int,
        state: str,
        *,
        at: float,
        note: str = "",
        restored: str | None = None,
        events: Sequence[AuditEvent] = (),
        writer: bool = False,
    ) -> tuple[Revision | None, list[AuditEvent]]:
        """Record an intent's outcome `state` with `events`; `restored`: the content a
        rollback put back (stored as a "rollback" revision). One transaction. `writer`: as in
        `record_write`, the process that did the write and knows its outcome overrides a
        recovery's guess."""
        if state not in INTENT_STATES or state in INTENT_OPEN:
            raise ValueError(f"a final intent state is one of {INTENT_STATES[2:]}; got {state!r}")
        with self._transaction(f"recording the outcome of intent {intent_id}", write=True) as conn:
            intent = self._open_intent(conn, intent_id, INTENT_STATES)
            if intent.state == state or (not writer and intent.state not in INTENT_OPEN):
                return None, []  # recorded meanwhile: by its writer, or this very outcome
            revision = None
            if restored is not None:
                revision = self._insert_revision(
                    conn,
                    intent,
                    content=restored,
                    kind="rollback",
                    plan=[],
                    created_at=at,
                    note=note,
                )
            details: dict[str, Any] = {"intent": intent_id}
            if revision is not None:
                details["revision"] = revision.id
            stored = [
                self._insert_event(conn, dataclasses.replace(e, details={**e.details, **details}))
                for e in events
            ]
            revision_id = revision.id if revision is not None else intent.revision_id
            self._set_state(
                conn, intent_id=intent_id, state=state, at=at, note=note, revision_id=revision_id
            )
        return revision, stored

    # -- inside one transaction ------------------------------------------------------------

    def _open_intent(self, conn: Connection, intent_id: int, states: Sequence[str]) -> Intent:
        table = self._tables.intents
        row = conn.execute(select(table).where(table.c.id == intent_id)).first()
        if row is None:
            raise StoreError(f"no intent with id {intent_id}")
        intent = _intent(row)
        if intent.state not in states:
            raise StoreError(f"intent {intent_id} is {intent.state}, not {' or '.join(states)}")
        return intent

    def _set_state(
        self,
        conn: Connection,
        *,
        intent_id: int,
        state: str,
        at: float,
        note: str,
        revision_id: int | None,
    ) -> None:
        table = self._tables.intents
        conn.execute(
            update(table)
            .where(table.c.id == intent_id)
            .values(state=state, updated_at=float(at), note=note, revision_id=revision_id)
        )

    def _insert_revision(
        self,
        conn: Connection,
        intent: Intent,
        *,
        content: str,
        kind: str,
        plan: list[dict[str, Any]],
        created_at: float,
        note: str,
    ) -> Revision:
        values: dict[str, Any] = {
            "target": intent.target,
            "content": content,
            "sha256": sha256_text(content),
            "plan": plan,
            "actor": intent.actor,
            "created_at": float(created_at),
            "kind": kind,
            "note": note,
        }
        table = self._tables.revisions
        inserted = conn.execute(table.insert().values(**values).returning(table.c.id))
        return Revision(id=int(inserted.scalar_one()), **values)

    def _insert_event(self, conn: Connection, event: AuditEvent) -> AuditEvent:
        table = self._tables.audit
        inserted = conn.execute(
            table.insert()
            .values(
                timestamp=event.timestamp,
                level=event.level,
                category=event.category,
                component=event.component,
                action=event.action,
                tenant=event.tenant,
                details=dict(event.details),
            )
            .returning(table.c.id)
        )
        return dataclasses.replace(event, id=int(inserted.scalar_one()))


def _intent(row: Row[Any]) -> Intent:
    return _intent_from(dict(row._mapping))


def _intent_from(m: dict[str, Any]) -> Intent:
    return Intent(
        id=int(m["id"]),
        target=m["target"],
        actor=m["actor"],
        created_at=float(m["created_at"]),
        plan=list(m["plan"]),
        old_content=m["old_content"],
        old_sha256=m["old_sha256"],
        new_content=m["new_content"],
        new_sha256=m["new_sha256"],
        events=list(m["events"]),
        verify=bool(m["verify"]),
        state=m["state"],
        revision_id=None if m["revision_id"] is None else int(m["revision_id"]),
        note=m["note"] or "",
        updated_at=float(m["updated_at"]),
    )
