"""Two processes on one store and one target: one's start-up recovery may look at the target
between the other's intent and its write. The writer knows its write happened, so its records
win over the other's guess: the write is recorded once, never lost."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.engine.plan import Change, Plan
from mimir_limit_optimizer.store import AuditEvent, Store
from mimir_limit_optimizer.targets.base import Content
from mimir_limit_optimizer.targets.file import FileTarget
from tests.reliability.harness import CATALOGUE

OLD = "overrides:\n  t-1:\n    ingestion_rate: 20000\n"
PLAN = Plan((Change("t-1", "ingestion_rate", 20000.0, 40000.0, ("demand",)),))
T = 1_700_000_000.0


def applier(target: object, store: Store) -> Applier:
    return Applier(target, store, CATALOGUE, verifier=None, rollback_on_failure=True,  # type: ignore[arg-type]
                   sleep=lambda _s: None, logger=logging.getLogger("concurrent"))  # fmt: skip


class RecoveryInTheWindow:
    """The writer's target: just before its write, the other process recovers."""

    def __init__(self, inner: FileTarget, other: Applier) -> None:
        self.inner, self.other = inner, other
        self.recovered: list[str] = []

    def read(self) -> Content:
        return self.inner.read()

    def describe(self) -> str:
        return self.inner.describe()

    def write(self, text: str, *, expected_version: str | None) -> str:
        self.recovered += [o.detail for o in self.other.recover(now=time.time())]
        return self.inner.write(text, expected_version=expected_version)


def test_the_writer_records_over_a_concurrent_recovery(tmp_path: Path) -> None:
    path = tmp_path / "runtime.yaml"
    path.write_text(OLD)
    url = f"sqlite:///{tmp_path / 'mlo.db'}"
    with Store.open(url) as store_a, Store.open(url) as store_b:
        other = applier(FileTarget(path), store_b)
        window = RecoveryInTheWindow(FileTarget(path), other)
        writer = applier(window, store_a)

        def events(plan: Plan) -> list[AuditEvent]:
            return [AuditEvent(T, "info", "system", "controller", "update_limits", c.tenant,
                               {"limit": c.limit}) for c in plan.changes]  # fmt: skip

        outcome = writer.apply(lambda _content: PLAN, now=T, events=events)
        assert window.recovered and "did not happen" in window.recovered[0]  # the guess
        assert outcome.applied and not outcome.unrecorded  # the writer's records won
        assert "ingestion_rate: 40000" in path.read_text()
        applies = [r for r in store_a.revisions(writer.name) if r.kind == "apply"]
        assert len(applies) == 1
        updates = store_a.audit(action="update_limits")
        assert [e.details["revision"] for e in updates] == [applies[0].id]
        [intent] = store_a.intents(writer.name)
        assert intent.state == "done" and intent.revision_id == applies[0].id
        assert other.recover(now=T) == []  # nothing left open
