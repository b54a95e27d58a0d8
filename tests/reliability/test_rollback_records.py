"""A rollback (`mlo rollback`, the UI's rollback) is an intent first, like an apply: a crash
between its write and its record, or a store that fails at that moment, loses neither the
"rollback" revision nor its audit event; a write that fails records nothing as restored."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.engine.plan import Change, Plan
from mimir_limit_optimizer.store import AuditEvent, Revision, Store, StoreError
from mimir_limit_optimizer.targets.base import Content, TargetError
from mimir_limit_optimizer.targets.file import FileTarget
from tests.reliability.harness import CATALOGUE

OLD = "overrides:\n  t-1:\n    ingestion_rate: 20000\n"
PLAN = Plan((Change("t-1", "ingestion_rate", 20000.0, 40000.0, ("demand",)),))
T = 1_700_000_000.0


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs in the 'process'."""


class Faulty:
    """A file target whose next write dies after renaming into place ("after"), fails before
    it ("fail"), or works (None)."""

    def __init__(self, path: Path) -> None:
        self.inner = FileTarget(path)
        self.fault: str | None = None

    def read(self) -> Content:
        return self.inner.read()

    def describe(self) -> str:
        return self.inner.describe()

    def write(self, text: str, *, expected_version: str | None) -> str:
        fault, self.fault = self.fault, None
        if fault == "fail":
            raise TargetError("disk full")
        version = self.inner.write(text, expected_version=expected_version)
        if fault == "after":
            raise Killed
        return version


def applier(target: object, store: Store) -> Applier:
    return Applier(target, store, CATALOGUE, verifier=None, rollback_on_failure=True,  # type: ignore[arg-type]
                   sleep=lambda _s: None, logger=logging.getLogger("rollback"))  # fmt: skip


def applied(tmp_path: Path, store: Store) -> tuple[Faulty, Revision]:
    """The target after one apply; returns the baseline revision (the content before it)."""
    target = Faulty(tmp_path / "runtime.yaml")
    (tmp_path / "runtime.yaml").write_text(OLD)
    outcome = applier(target, store).apply(lambda _c: PLAN, now=T)
    assert outcome.applied
    baseline = store.revisions(target.describe(), limit=10)[-1]
    assert baseline.kind == "baseline" and baseline.content == OLD
    return target, baseline


def rollback_event() -> AuditEvent:
    return AuditEvent(T + 60, "warning", "user", "cli", "rollback", None, {"user": "ops"})


def test_a_rollback_is_recorded_with_its_event_in_one_step(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'mlo.db'}") as store:
        target, baseline = applied(tmp_path, store)
        restored = applier(target, store).restore(
            baseline, now=T + 60, actor="ops", events=[rollback_event()]
        )
        assert restored is not None and restored.kind == "rollback"
        assert (tmp_path / "runtime.yaml").read_text() == OLD
        [event] = store.audit(action="rollback")
        assert event.details["to_revision"] == baseline.id
        assert event.details["revision"] == restored.id
        assert store.open_intents(target.describe()) == []


def test_a_kill_between_the_rollback_write_and_its_record_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mlo.db'}"
    with Store.open(url) as store:
        target, baseline = applied(tmp_path, store)
        target.fault = "after"
        with pytest.raises(Killed):
            applier(target, store).restore(
                baseline, now=T + 60, actor="ops", events=[rollback_event()]
            )
        assert store.revisions(target.describe(), limit=10)[0].kind == "apply"  # not yet
    assert (tmp_path / "runtime.yaml").read_text() == OLD  # the write happened
    with Store.open(url) as store:  # the next start
        outcomes = applier(Faulty(tmp_path / "runtime.yaml"), store).recover(now=T + 300)
        assert [o.applied for o in outcomes] == [True]
        latest = store.revisions(target.describe(), limit=10)[0]
        assert latest.kind == "rollback" and latest.content == OLD
        [event] = store.audit(action="rollback")
        assert event.details["to_revision"] == baseline.id
        assert event.details["revision"] == latest.id and event.details["recorded_late"]
        assert store.open_intents(target.describe()) == []


def test_a_failed_rollback_write_records_no_rollback(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'mlo.db'}") as store:
        target, baseline = applied(tmp_path, store)
        before = (tmp_path / "runtime.yaml").read_text()
        target.fault = "fail"
        with pytest.raises(TargetError, match="disk full"):
            applier(target, store).restore(
                baseline, now=T + 60, actor="ops", events=[rollback_event()]
            )
        assert (tmp_path / "runtime.yaml").read_text() == before != OLD
        assert [r.kind for r in store.revisions(target.describe(), limit=10)] == [
            "apply",
            "baseline",
        ]
        assert store.audit(action="rollback") == []
        [intent] = store.intents(target.describe())[:1]
        assert intent.state == "not_done" and "disk full" in intent.note


def test_a_store_failing_at_the_record_is_caught_up_once_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'mlo.db'}") as store:
        target, baseline = applied(tmp_path, store)

        def down(*_a: object, **_k: object) -> None:
            raise StoreError("database is locked")

        with monkeypatch.context() as patch:
            patch.setattr(store, "record_write", down)
            restored = applier(target, store).restore(
                baseline, now=T + 60, actor="ops", events=[rollback_event()]
            )
        assert restored is None  # written, not yet recorded
        assert (tmp_path / "runtime.yaml").read_text() == OLD
        applier(target, store).recover(now=T + 120)
        assert store.revisions(target.describe(), limit=10)[0].kind == "rollback"
        assert [e.details["to_revision"] for e in store.audit(action="rollback")] == [baseline.id]


def test_a_rollback_is_refused_when_the_store_cannot_record_the_intent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'mlo.db'}") as store:
        target, baseline = applied(tmp_path, store)
        before = (tmp_path / "runtime.yaml").read_text()

        def down(*_a: object, **_k: object) -> None:
            raise StoreError("disk I/O error")

        monkeypatch.setattr(store, "add_intent", down)
        with pytest.raises(TargetError, match="nothing was written"):
            applier(target, store).restore(baseline, now=T + 60, actor="ops")
        assert (tmp_path / "runtime.yaml").read_text() == before
