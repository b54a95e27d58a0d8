"""The store keeps audit events, revisions, checkpoints and queued alerts identically on SQLite
and on a real PostgreSQL: every behaviour below runs against both. Migrations are idempotent,
record their version and refuse a newer schema; audit queries filter by tenant, action, category
and time, newest first, and retention prunes by count and age; the audit log stores each event
and writes exactly one JSON line that parses back; revisions keep content byte for byte with its
sha256; checkpoints overwrite; the alert queue deduplicates pending alerts; concurrent writers
lose nothing; and no error message ever shows the database password.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import mimir_limit_optimizer.store as store_package
from mimir_limit_optimizer.store import AuditEvent, AuditLog, Store, StoreError
from mimir_limit_optimizer.store.errors import redact_url
from mimir_limit_optimizer.store.schema import MIGRATIONS, Migration, Tables, build_tables

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def event(
    at: float,
    action: str = "would_update_limits",
    *,
    tenant: str | None = "tenant-a",
    category: str = "system",
    level: str = "info",
    **details: object,
) -> AuditEvent:
    return AuditEvent(at, level, category, "controller", action, tenant, details)


def raw_engine_execute(url: str, statement: str, **params: object) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()


def test_public_surface() -> None:
    assert sorted(store_package.__all__) == sorted(
        ["AuditEvent", "AuditLog", "QueuedAlert", "Revision", "Store", "StoreError"]
    )


# Migrations


def test_open_creates_the_schema_once_and_reopening_is_a_no_op(store_url: str) -> None:
    with Store.open(store_url) as first:
        assert first.schema_version() == len(MIGRATIONS)
        first.record(event(T0))
    with Store.open(store_url) as again:
        assert again.schema_version() == len(MIGRATIONS)
        assert len(again.audit()) == 1  # data kept, nothing recreated
    engine = create_engine(store_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version FROM schema_version")).all()
    finally:
        engine.dispose()
    assert [row[0] for row in rows] == list(range(1, len(MIGRATIONS) + 1))


def test_a_pending_step_is_applied_once_in_order(store_url: str) -> None:
    calls: list[int] = []

    def add_note_table(conn: Connection, _tables: Tables) -> None:
        calls.append(2)
        conn.execute(text("CREATE TABLE example_step_two (note TEXT)"))

    known = len(MIGRATIONS)
    steps = (*MIGRATIONS, Migration(known + 1, "example step", add_note_table))
    with Store.open(store_url) as v1:
        assert v1.schema_version() == known
    with Store.open(store_url, migrations=steps) as v2:
        assert v2.schema_version() == known + 1
    with Store.open(store_url, migrations=steps) as again:
        assert again.schema_version() == known + 1
    assert calls == [2]


def test_a_failing_step_leaves_the_previous_version(store_url: str) -> None:
    def broken(conn: Connection, _tables: Tables) -> None:
        conn.execute(text("CREATE TABLE half_done (x INTEGER)"))
        conn.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(StoreError, match="migrating the schema"):
        Store.open(
            store_url, migrations=(*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "broken", broken))
        )
    with Store.open(store_url) as reopened:  # earlier steps rolled back too: applied again
        assert reopened.schema_version() == len(MIGRATIONS)


def test_a_newer_schema_is_refused(store_url: str) -> None:
    Store.open(store_url).close()
    raw_engine_execute(
        store_url,
        "INSERT INTO schema_version (version, description, applied_at) VALUES (7, 'x', 0)",
    )
    known = len(MIGRATIONS)
    with pytest.raises(StoreError, match=rf"schema version 7, newer .* knows \(version {known}\)"):
        Store.open(store_url)


def test_migration_versions_must_be_consecutive(tmp_path: Path) -> None:
    gap = (*MIGRATIONS, Migration(len(MIGRATIONS) + 2, "gap", lambda conn, tables: None))
    with pytest.raises(ValueError, match="1, 2, 3"):
        Store.open(f"sqlite:///{tmp_path / 'mlo.db'}", migrations=gap)


# Audit events

AUDIT_EVENTS = [
    event(T0 + 10, tenant="tenant-a", new=2),
    event(T0 + 20, "update_limits", tenant="tenant-b", category="user"),
    event(T0 + 30, "rollback", tenant="tenant-a", level="warning"),
    event(T0 + 30, "config_reload_failed", tenant=None, level="error", category="performance"),
    event(T0 + 40, "update_limits", tenant="tenant-a", category="cost"),
]


@pytest.mark.parametrize(
    ("filters", "expected_times"),
    [
        ({}, [40, 30, 30, 20, 10]),
        ({"tenant": "tenant-a"}, [40, 30, 10]),
        ({"action": "update_limits"}, [40, 20]),
        ({"category": "cost"}, [40]),
        ({"since": T0 + 20}, [40, 30, 30, 20]),
        ({"until": T0 + 20}, [20, 10]),
        ({"since": T0 + 15, "until": T0 + 35, "tenant": "tenant-a"}, [30]),
        ({"limit": 2}, [40, 30]),
        ({"limit": 0}, []),
        ({"tenant": "nobody"}, []),
    ],
)
def test_audit_queries_filter_and_list_newest_first(
    store: Store, filters: dict[str, object], expected_times: list[int]
) -> None:
    for item in AUDIT_EVENTS:
        store.record(item)
    found = store.audit(**filters)  # type: ignore[arg-type]
    assert [int(e.timestamp - T0) for e in found] == expected_times


def test_audit_round_trips_every_field(store: Store) -> None:
    original = event(T0 + 0.25, tenant="tenant-ü", reasons=["p95", "spike"], old=1.5, new=None)
    event_id = store.record(original)
    (back,) = store.audit()
    assert back.id == event_id
    assert back == AuditEvent(**{**original.__dict__, "id": event_id})


def test_same_timestamp_events_are_ordered_by_insertion(store: Store) -> None:
    ids = [store.record(event(T0, f"action_{i}")) for i in range(5)]
    assert [e.id for e in store.audit()] == ids[::-1]


def test_retention_by_age_then_count(store: Store) -> None:
    for i in range(10):
        store.record(event(T0 + i))
    # Age: older than now - max_age goes (T0+0 .. T0+2).
    assert store.prune_audit(max_entries=100, max_age=7, now=T0 + 10) == 3
    assert [int(e.timestamp - T0) for e in store.audit()] == [9, 8, 7, 6, 5, 4, 3]
    # Count: the newest 4 stay.
    assert store.prune_audit(max_entries=4, max_age=1e9, now=T0 + 10) == 3
    assert [int(e.timestamp - T0) for e in store.audit()] == [9, 8, 7, 6]
    assert store.prune_audit(max_entries=4, max_age=1e9, now=T0 + 10) == 0


def test_retention_by_count_breaks_timestamp_ties_by_id(store: Store) -> None:
    ids = [store.record(event(T0)) for _ in range(5)]
    assert store.prune_audit(max_entries=2, max_age=1e9, now=T0) == 3
    assert [e.id for e in store.audit()] == ids[:2:-1]
    # Ids are never reused after pruning.
    assert store.record(event(T0)) > max(ids)


def test_to_json_has_the_seed_shape() -> None:
    item = AuditEvent(
        1705314600.0, "INFO", "cost", "cost-controller", "budget_violation", "tenant-a",
        {"current_cost": 1500.0, "new_limits": {"ingestion_rate": 50000}},
        id=3,
    )  # fmt: skip
    assert item.to_json() == {
        "id": 3,
        "timestamp": "2024-01-15T10:30:00Z",
        "level": "INFO",
        "category": "cost",
        "component": "cost-controller",
        "action": "budget_violation",
        "tenant": "tenant-a",
        "details": {"current_cost": 1500.0, "new_limits": {"ingestion_rate": 50000}},
    }
    assert item.level == "info"
    assert event(T0 + 0.5).to_json()["timestamp"] == "2023-11-14T22:13:20.500Z"


def test_details_become_plain_json_data() -> None:
    source: dict[str, Any] = {
        "n": np.int64(3), "x": np.float64(1.5), "v": np.array([1, 2]), "t": (1, 2),
    }  # fmt: skip
    item = event(T0, **source, nan=math.nan, inf=-math.inf, s={"b", "a"})
    assert item.details == {
        "n": 3, "x": 1.5, "v": [1, 2], "t": [1, 2], "nan": "NaN", "inf": "-Infinity",
        "s": ["a", "b"],
    }  # fmt: skip
    assert type(item.details["n"]) is int
    json.dumps(item.to_json(), allow_nan=False)
    with pytest.raises(ValueError, match=r"details of audit action 'a'\.when: datetime"):
        import datetime

        event(T0, "a", when=datetime.datetime.now())


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("level", "debug", "audit level must be one of info, warning, error"),
        ("category", "misc", "audit category must be one of user, system"),
        ("timestamp", math.nan, "timestamp must be finite"),
    ],
)
def test_invalid_events_are_refused(field: str, value: object, message: str) -> None:
    fields: dict[str, object] = {
        "timestamp": T0, "level": "info", "category": "system", "component": "c",
        "action": "a", "tenant": None, "details": {},
    }  # fmt: skip
    fields[field] = value
    with pytest.raises(ValueError, match=message):
        AuditEvent(**fields)  # type: ignore[arg-type]


def test_audit_log_stores_and_emits_one_json_line_per_event(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("test.audit")
    log = AuditLog(store, logger=logger)
    caplog.set_level(logging.INFO, logger="test.audit")
    recorded = [
        log.record(event(T0, tenant="tenant-a", old=100, new=120, mode="dry-run")),
        log.record(event(T0 + 1, "rollback", level="warning", reasons=["verify failed"])),
        log.record(event(T0 + 2, "config_reload_failed", level="error", tenant=None)),
    ]
    lines = [r for r in caplog.records if r.name == "test.audit"]
    assert [r.levelno for r in lines] == [logging.INFO, logging.WARNING, logging.ERROR]
    assert [json.loads(r.getMessage()) for r in lines] == [e.to_json() for e in recorded]
    assert [AuditEvent.from_json(json.loads(r.getMessage())) for r in lines] == recorded
    assert recorded == store.audit()[::-1]
    assert all(e.id is not None for e in recorded)


def test_audit_log_still_logs_when_the_store_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = Store.open(f"sqlite:///{tmp_path / 'mlo.db'}")
    closed.close()
    caplog.set_level(logging.INFO, logger="test.audit")
    with pytest.raises(StoreError, match="closed"):
        AuditLog(closed, logger=logging.getLogger("test.audit")).record(event(T0))
    (line,) = [r for r in caplog.records if r.name == "test.audit"]
    assert json.loads(line.getMessage())["id"] is None


# Revisions

CONTENT = "overrides:\r\n  tenant-ü:\n    ingestion_rate: 12000  # kept\n\n\ttrailing \n"


def test_revisions_keep_content_byte_for_byte(store: Store) -> None:
    plan = [{"tenant": "tenant-ü", "limit": "ingestion_rate", "old": 10000, "new": 12000.0}]
    added = store.add_revision(
        target="file:/etc/mimir/overrides.yaml", content=CONTENT, plan=plan, actor="controller",
        created_at=T0, kind="apply", note="cycle 1",
    )  # fmt: skip
    back = store.revision(added.id)
    assert back == added
    assert back is not None
    assert back.content.encode() == CONTENT.encode()
    assert back.sha256 == hashlib.sha256(CONTENT.encode("utf-8")).hexdigest()
    assert back.plan == plan
    assert store.revision(added.id + 1000) is None


def test_revisions_list_newest_first_and_latest_per_target(store: Store) -> None:
    def add(target: str, n: int, kind: str = "apply") -> int:
        return store.add_revision(
            target=target, content=f"v{n}\n", plan=[], actor="t", created_at=T0 + n, kind=kind
        ).id

    a1 = add("a", 1, "baseline")
    b1 = add("b", 2)
    a2 = add("a", 3)
    a3 = add("a", 4, "rollback")
    assert [r.id for r in store.revisions()] == [a3, a2, b1, a1]
    assert [r.id for r in store.revisions("a")] == [a3, a2, a1]
    assert [r.id for r in store.revisions("a", limit=2)] == [a3, a2]
    latest_a, latest_b = store.latest_revision("a"), store.latest_revision("b")
    assert latest_a is not None and latest_a.content == "v4\n" and latest_a.kind == "rollback"
    assert latest_b is not None and latest_b.id == b1
    assert store.latest_revision("c") is None
    with pytest.raises(ValueError, match="revision kind"):
        add("a", 5, "deploy")


# Checkpoints


def test_checkpoints_overwrite(store: Store) -> None:
    assert store.load_checkpoint("histograms") is None
    first = bytes(range(256)) * 10
    store.save_checkpoint("histograms", first, at=T0)
    assert store.load_checkpoint("histograms") == first
    store.save_checkpoint("histograms", b"\x00second", at=T0 + 1)
    store.save_checkpoint("other", b"", at=T0 + 1)
    assert store.load_checkpoint("histograms") == b"\x00second"
    assert store.load_checkpoint("other") == b""


# Alert queue


def test_alert_queue_enqueue_due_update(store: Store) -> None:
    first = store.enqueue_alert(
        dedup_key="budget:tenant-a", channel="slack", payload={"text": "over"}, created_at=T0
    )
    other = store.enqueue_alert(
        dedup_key="budget:tenant-a", channel="email", payload={"text": "over"}, created_at=T0 + 1
    )
    again = store.enqueue_alert(
        dedup_key="budget:tenant-a", channel="slack", payload={"text": "again"}, created_at=T0 + 2
    )
    assert again == first  # deduplicated while pending
    assert [a.id for a in store.due_alerts(now=T0)] == [first]
    due = store.due_alerts(now=T0 + 5)
    assert [a.id for a in due] == [first, other]
    assert due[0].payload == {"text": "over"} and due[0].attempts == 0
    assert store.due_alerts(now=T0 + 5, limit=1)[0].id == first

    store.update_alert(
        first, status="pending", attempts=1, next_attempt_at=T0 + 60, last_error="HTTP 503"
    )
    assert [a.id for a in store.due_alerts(now=T0 + 5)] == [other]
    retried = store.due_alerts(now=T0 + 60)
    assert [(a.id, a.attempts, a.last_error) for a in retried] == [
        (other, 0, None),
        (first, 1, "HTTP 503"),
    ]
    store.update_alert(first, status="sent", attempts=2, next_attempt_at=None, last_error=None)
    store.update_alert(other, status="failed", attempts=5, next_attempt_at=None, last_error="x")
    assert store.due_alerts(now=T0 + 1e6) == []
    sent = store.alert(first)
    assert sent is not None and sent.status == "sent" and sent.attempts == 2
    # Once the first is done, the same key queues a new alert.
    assert store.enqueue_alert(
        dedup_key="budget:tenant-a", channel="slack", payload={}, created_at=T0 + 100
    ) not in (first, other)

    with pytest.raises(StoreError, match="no queued alert"):
        store.update_alert(10_000, status="sent", attempts=1, next_attempt_at=None, last_error=None)
    with pytest.raises(ValueError, match="alert status"):
        store.update_alert(first, status="gone", attempts=1, next_attempt_at=None, last_error=None)


# Concurrency


def test_concurrent_writers_lose_no_events(store_url: str) -> None:
    """Eight threads share one store (the loop and HTTP threads), and two more stores open the
    same database (other processes): every event arrives."""
    threads_per_store, per_thread = 4, 25
    stores = [Store.open(store_url, busy_timeout=30) for _ in range(2)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_per_store * len(stores))

    def write(shared: Store, worker: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                shared.record(event(T0 + i, f"worker_{worker}", n=i))
                if i % 10 == 0:
                    shared.audit(limit=5)  # readers interleave with writers
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    workers = [
        threading.Thread(target=write, args=(shared, n * 10 + k))
        for n, shared in enumerate(stores)
        for k in range(threads_per_store)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    try:
        assert errors == []
        found = stores[0].audit()
        assert len(found) == len(workers) * per_thread
        assert len({e.id for e in found}) == len(found)
    finally:
        for shared in stores:
            shared.close()


def test_sqlite_uses_wal_and_creates_relative_parent_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Store.open("sqlite:///data/nested/mlo.db") as opened:
        assert opened.dialect == "sqlite"
        opened.record(event(T0))
    assert (tmp_path / "data" / "nested" / "mlo.db").is_file()
    engine = create_engine("sqlite:///data/nested/mlo.db", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()


# Errors and secrets

SECRET = "s3cr3t-Pa55"


def test_password_never_appears_in_postgresql_errors(postgres_url: str) -> None:
    server = make_url(postgres_url)
    missing_db = server.set(password=SECRET, database="no_such_database")
    with pytest.raises(StoreError) as raised:
        Store.open(missing_db.render_as_string(hide_password=False))
    message = str(raised.value)
    assert SECRET not in message
    assert "REDACTED" in message and "no_such_database" in message
    assert raised.value.retryable  # the database may be created later

    with pytest.raises(StoreError) as raised:
        Store.open(f"postgresql://mlo:{SECRET}@127.0.0.1:1/mlo?password={SECRET}")
    assert SECRET not in str(raised.value)
    assert "postgresql+psycopg://mlo:REDACTED@127.0.0.1:1/mlo?password=REDACTED" in str(
        raised.value
    )


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://user:{SECRET}@db/mlo",
        f"not a url://user:{SECRET}@db",
        "sqlite://",
        "sqlite:///:memory:",
    ],
)
def test_unusable_urls_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(StoreError) as raised:
        Store.open(url)
    assert SECRET not in str(raised.value)
    assert "sqlite:///path" in str(raised.value)


def test_sqlite_errors_name_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create the directory"):
        Store.open(f"sqlite:///{blocker / 'sub' / 'mlo.db'}")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=f"migrating the schema failed on sqlite:///{garbage}"):
        Store.open(f"sqlite:///{garbage}")


def test_a_closed_store_says_so(store: Store) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.audit()


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql+psycopg://u:p%40ss@h:5432/d", "postgresql+psycopg://u:REDACTED@h:5432/d"),
        ("postgresql://h/d?password=x&sslmode=require", "postgresql://h/d?password=REDACTED&sslmode=require"),
        ("sqlite:///rel/mlo.db", "sqlite:///rel/mlo.db"),
        ("garbage://u:pw@h", "garbage://u:REDACTED@h"),
    ],
)  # fmt: skip
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_each_store_has_its_own_table_definitions() -> None:
    assert build_tables().metadata is not build_tables().metadata
