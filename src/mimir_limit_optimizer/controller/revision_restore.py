"""Writing a stored revision's content back byte for byte (`mlo rollback`, the UI's rollback),
with the same durable steps as an apply: intent, write, read-back, then the "rollback"
revision and its audit events in one transaction (docs/reliability.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mimir_limit_optimizer.store import AuditEvent, Revision, StoreError
from mimir_limit_optimizer.targets.base import TargetError

if TYPE_CHECKING:
    from mimir_limit_optimizer.controller.apply import Applier


def restore_revision(
    applier: Applier,
    revision: Revision,
    *,
    now: float,
    actor: str,
    events: Sequence[AuditEvent],
) -> Revision | None:
    """`Applier.restore` (call with its lock held)."""
    name = applier.name
    current = applier.target.read()
    if current.text == revision.content:
        return revision
    problem = applier.store.file_problem()
    if problem is not None:
        raise TargetError(f"{problem}: nothing written to {name} (no durable record)")
    try:
        intent = applier.store.add_intent(
            target=name,
            actor=actor,
            created_at=now,
            plan=[],  # no planned changes: the store records a "rollback" revision
            old_content=current.text,
            new_content=revision.content,
            events=[
                dataclasses.replace(e, details={**e.details, "to_revision": revision.id})
                for e in events
            ],
            verify=False,  # the caller verifies the restored values, if it can
        )
    except StoreError as exc:
        raise TargetError(
            f"cannot record the intended rollback, so nothing was written: {exc}"
        ) from exc
    try:
        applier.target.write(revision.content, expected_version=current.version)
    except TargetError as exc:
        applier.finish(intent, "not_done", now, f"the rollback's write failed: {exc}")
        raise
    if applier.target.read().text != revision.content:
        applier.finish(intent, "superseded", now, "the read-back differs from what was written")
        raise TargetError(f"read-back of {name} differs after rollback")
    try:
        restored, stored = applier.store.record_write(
            intent.id, at=now, note=f"restored revision {revision.id}", writer=True
        )
    except StoreError as exc:
        applier.log.error(
            "restored revision %s of %s, but the store failed before recording it (%s); "
            "it is recorded once the store is back",
            revision.id,
            name,
            exc,
        )
        return None
    for event in stored:
        applier.audit.logged(event)
    return restored
