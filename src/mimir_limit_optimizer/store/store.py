"""The store: audit events, target revisions, engine checkpoints, the alert queue, intended
writes (store/intents.py) and the engine's long-term peak memory (store/peak_memory.py).

One `Store` per process is shared by the controller loop and the HTTP threads: every call takes
its own pooled connection and transaction, so calls are thread-safe. Times are passed in (unix
seconds); the store reads no clock except to stamp applied migrations.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, Row, and_, delete, func, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL

from mimir_limit_optimizer.store import engine as engines
from mimir_limit_optimizer.store.errors import StoreError, redact_url, wrap
from mimir_limit_optimizer.store.intents import IntentsMixin
from mimir_limit_optimizer.store.peak_memory import PeakMemoryMixin
from mimir_limit_optimizer.store.records import (
    ALERT_STATUSES,
    REVISION_KINDS,
    AuditEvent,
    QueuedAlert,
    Revision,
    plain_json,
    sha256_text,
)
from mimir_limit_optimizer.store.schema import (
    MIGRATIONS,
    Migration,
    Tables,
    build_tables,
    current_version,
    migrate,
)

# Checkpoint key written when a store is opened: proves the store accepts writes.
_WRITE_CHECK = "store_write_check"


class Store(IntentsMixin, PeakMemoryMixin):
    """Open with `Store.open(url)`; close with `close()` (or use it as a context manager)."""

    def __init__(self, engine: Engine, url: URL, tables: Tables) -> None:
        """Use `Store.open`: it creates the engine and migrates the schema."""
        self._engine = engine
        self._url = url
        self._tables = tables
        self._closed = False
        self._busy_timeout = 30.0
        # (device, inode) of the SQLite file as opened; None for PostgreSQL.
        self._identity: tuple[int, int] | None = None

    @classmethod
    def open(
        cls,
        url: str,
        *,
        busy_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> Store:
        """Connect to `url` and bring its schema up to date (a no-op when it is).

        `url`: sqlite:///relative/or/absolute/path (the parent directory is created) or
        postgresql+psycopg://user:password@host:port/database (postgresql:// works too).
        `busy_timeout`: seconds a SQLite writer waits for another one. `connect_timeout`:
        seconds to reach PostgreSQL. `migrations` is for tests of future steps.
        """
        parsed = engines.parse_url(url)
        engine = engines.create(parsed, busy_timeout=busy_timeout, connect_timeout=connect_timeout)
        store = cls(engine, parsed, build_tables())
        store._busy_timeout = busy_timeout
        try:
            store._migrate(migrations)
        except BaseException:
            engine.dispose()
            raise
        return store

    def _migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        """Bring the schema up to date and prove the store takes writes (a read-only SQLite
        file reads fine and fails at the first write: better at start than mid-cycle)."""
        now = time.time()
        with self._transaction("migrating the schema", write=True) as conn:
            migrate(conn, self._tables, migrations, now=now, url=redact_url(self._url))
        self.save_checkpoint(_WRITE_CHECK, b"", at=now)
        self._identity = self._file_identity()

    def _sqlite_path(self) -> str | None:
        if self._url.get_backend_name() != "sqlite":
            return None
        return os.path.abspath(self._url.database or "")

    def _file_identity(self) -> tuple[int, int] | None:
        path = self._sqlite_path()
        if path is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def file_problem(self) -> str | None:
        """Why the SQLite file this store opened is no longer the file at its path (deleted,
        its directory deleted, or replaced), or None (also for PostgreSQL). A process that
        keeps writing to an unlinked file loses every record at its next start."""
        path = self._sqlite_path()
        if path is None or self._identity is None:
            return None
        current = self._file_identity()
        if current is None:
            return f"the store file {path} was deleted (or its directory) while running"
        if current != self._identity:
            return f"the store file {path} was replaced by another file while running"
        return None

    def reopen(self) -> None:
        """Open the store's URL afresh (a SQLite file and its directory are created again);
        raises StoreError when that fails."""
        self._engine.dispose()
        self._engine = engines.create(
            self._url, busy_timeout=self._busy_timeout, connect_timeout=10.0
        )
        self._tables = build_tables()
        self._closed = False
        self._migrate()

    @property
    def url(self) -> str:
        """The database URL with its password redacted (for logs and status pages)."""
        return redact_url(self._url)

    @property
    def dialect(self) -> str:
        """The database kind: "sqlite" or "postgresql"."""
        return self._engine.dialect.name

    def close(self) -> None:
        """Close all pooled connections; later calls raise StoreError."""
        self._closed = True
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self, doing: str, *, write: bool = False) -> Iterator[Connection]:
        if self._closed:
            raise StoreError(f"{doing}: the store {self.url} is closed")
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{engines.WRITE_OPTION: True})
                with conn.begin():
                    yield conn
        except sa_exc.SQLAlchemyError as error:
            raise wrap(error, doing=doing, url=self._url) from error

    def schema_version(self) -> int:
        with self._transaction("reading the schema version") as conn:
            return current_version(conn, self._tables)

    # Audit events

    def record(self, event: AuditEvent) -> int:
        """Store `event` (its `id` is ignored) and return the id it got."""
        with self._transaction("recording an audit event", write=True) as conn:
            stored = self._insert_event(conn, event)
            assert stored.id is not None  # the row's id, just returned by the insert
            return stored.id

    def record_many(self, events: Sequence[AuditEvent]) -> list[int]:
        """Store `events` in one transaction (all or none); return their ids in order. A
        cycle's hundreds of dry-run events cost one commit, not one each."""
        if not events:
            return []
        with self._transaction(f"recording {len(events)} audit events", write=True) as conn:
            ids = [self._insert_event(conn, event).id for event in events]
        return [int(i) for i in ids if i is not None]

    def audit(
        self,
        *,
        tenant: str | None = None,
        action: str | None = None,
        category: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        """Events matching every given filter, newest first; `since` and `until` (unix
        seconds) are inclusive; `limit` caps the count."""
        table = self._tables.audit
        query = select(table).order_by(table.c.timestamp.desc(), table.c.id.desc())
        if tenant is not None:
            query = query.where(table.c.tenant == tenant)
        if action is not None:
            query = query.where(table.c.action == action)
        if category is not None:
            query = query.where(table.c.category == category)
        if since is not None:
            query = query.where(table.c.timestamp >= since)
        if until is not None:
            query = query.where(table.c.timestamp <= until)
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be >= 0; got {limit}")
            query = query.limit(limit)
        with self._transaction("querying audit events") as conn:
            rows = conn.execute(query).all()
        return [_event(row) for row in rows]

    def prune_audit(self, *, max_entries: int, max_age: float, now: float) -> int:
        """Delete events older than `now - max_age` seconds, then all but the newest
        `max_entries`; return how many were deleted."""
        if max_entries < 0 or max_age < 0:
            raise ValueError("max_entries and max_age must be >= 0")
        table = self._tables.audit
        newest_first = (table.c.timestamp.desc(), table.c.id.desc())
        with self._transaction("pruning the audit log", write=True) as conn:
            deleted = conn.execute(delete(table).where(table.c.timestamp < now - max_age))
            count = deleted.rowcount
            first_dropped = conn.execute(
                select(table.c.timestamp, table.c.id)
                .order_by(*newest_first)
                .offset(max_entries)
                .limit(1)
            ).first()
            if first_dropped is not None:
                stamp, event_id = first_dropped
                older = or_(
                    table.c.timestamp < stamp,
                    and_(table.c.timestamp == stamp, table.c.id <= event_id),
                )
                count += conn.execute(delete(table).where(older)).rowcount
        return count

    # Revisions

    def add_revision(
        self,
        *,
        target: str,
        content: str,
        plan: list[dict[str, Any]],
        actor: str,
        created_at: float,
        kind: str,
        note: str = "",
    ) -> Revision:
        """Keep `content` as the newest revision of `target`; `kind` is "apply", "rollback"
        or "baseline"."""
        if kind not in REVISION_KINDS:
            raise ValueError(f"revision kind must be one of {', '.join(REVISION_KINDS)}")
        rows = plain_json(plan, where=f"plan of the revision of {target}")
        values = {
            "target": target,
            "content": content,
            "sha256": sha256_text(content),
            "plan": rows,
            "actor": actor,
            "created_at": float(created_at),
            "kind": kind,
            "note": note,
        }
        with self._transaction(f"adding a revision of {target}", write=True) as conn:
            table = self._tables.revisions
            inserted = conn.execute(table.insert().values(**values).returning(table.c.id))
            revision_id = int(inserted.scalar_one())
        return Revision(id=revision_id, **values)

    def revision(self, revision_id: int) -> Revision | None:
        table = self._tables.revisions
        with self._transaction(f"reading revision {revision_id}") as conn:
            row = conn.execute(select(table).where(table.c.id == revision_id)).first()
        return None if row is None else _revision(row)

    def revisions(self, target: str | None = None, *, limit: int = 50) -> list[Revision]:
        """Revisions (of `target`, or of all targets), newest (last added) first."""
        table = self._tables.revisions
        query = select(table).order_by(table.c.id.desc()).limit(limit)
        if target is not None:
            query = query.where(table.c.target == target)
        with self._transaction("listing revisions") as conn:
            return [_revision(row) for row in conn.execute(query)]

    def latest_revision(self, target: str) -> Revision | None:
        found = self.revisions(target, limit=1)
        return found[0] if found else None

    # Checkpoints

    def save_checkpoint(self, key: str, data: bytes, *, at: float) -> None:
        """Store `data` under `key`, replacing what was there."""
        table = self._tables.checkpoints
        insert = self._insert(table.name).values(key=key, data=bytes(data), updated_at=at)
        upsert = insert.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"data": insert.excluded.data, "updated_at": insert.excluded.updated_at},
        )
        with self._transaction(f"saving checkpoint {key}", write=True) as conn:
            conn.execute(upsert)

    def load_checkpoint(self, key: str) -> bytes | None:
        table = self._tables.checkpoints
        with self._transaction(f"loading checkpoint {key}") as conn:
            data = conn.scalar(select(table.c.data).where(table.c.key == key))
        return None if data is None else bytes(data)

    # Alert queue

    def enqueue_alert(
        self,
        *,
        dedup_key: str,
        channel: str,
        payload: Mapping[str, Any],
        created_at: float,
        due_at: float | None = None,
    ) -> int:
        """Queue an alert for `channel`, due at `due_at` (default: at once); return its id.
        While an alert with the same `dedup_key` and `channel` is pending, return that one's id
        and change nothing."""
        table = self._tables.alerts
        values = {
            "dedup_key": dedup_key,
            "channel": channel,
            "payload": plain_json(payload, where=f"payload of alert {dedup_key!r}"),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": float(created_at if due_at is None else due_at),
            "last_error": None,
            "created_at": float(created_at),
        }
        insert = (
            self._insert(table.name)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=[table.c.dedup_key, table.c.channel],
                index_where=table.c.status == "pending",
            )
            .returning(table.c.id)
        )
        with self._transaction(f"queueing alert {dedup_key!r}", write=True) as conn:
            alert_id = conn.scalar(insert)
            if alert_id is None:
                alert_id = conn.scalar(
                    select(table.c.id).where(
                        table.c.dedup_key == dedup_key,
                        table.c.channel == channel,
                        table.c.status == "pending",
                    )
                )
            return int(alert_id)

    def due_alerts(
        self, *, now: float, limit: int = 100, channel: str | None = None
    ) -> list[QueuedAlert]:
        """Pending alerts (of `channel`, or of all channels) whose next attempt is due at
        `now`, the longest-waiting first."""
        table = self._tables.alerts
        query = (
            select(table)
            .where(table.c.status == "pending", table.c.next_attempt_at <= now)
            .order_by(table.c.next_attempt_at, table.c.id)
            .limit(limit)
        )
        if channel is not None:
            query = query.where(table.c.channel == channel)
        with self._transaction("reading due alerts") as conn:
            return [_alert(row) for row in conn.execute(query)]

    def latest_alert(
        self, dedup_key: str, channel: str, *, statuses: Sequence[str] = ALERT_STATUSES
    ) -> QueuedAlert | None:
        """The most recently queued alert with `dedup_key` for `channel` whose status is one
        of `statuses` (None if there is none)."""
        table = self._tables.alerts
        query = (
            select(table)
            .where(
                table.c.dedup_key == dedup_key,
                table.c.channel == channel,
                table.c.status.in_(list(statuses)),
            )
            .order_by(table.c.id.desc())
            .limit(1)
        )
        with self._transaction(f"reading the latest alert {dedup_key!r}") as conn:
            row = conn.execute(query).first()
        return None if row is None else _alert(row)

    def alert_counts(self) -> dict[str, tuple[int, int]]:
        """Pending alerts per channel: (never attempted, attempted at least once)."""
        table = self._tables.alerts
        retrying = table.c.attempts > 0
        query = (
            select(table.c.channel, retrying, func.count())
            .where(table.c.status == "pending")
            .group_by(table.c.channel, retrying)
        )
        counts: dict[str, tuple[int, int]] = {}
        with self._transaction("counting pending alerts") as conn:
            for channel, tried, count in conn.execute(query):
                fresh, retried = counts.get(channel, (0, 0))
                counts[channel] = (fresh, retried + count) if tried else (fresh + count, retried)
        return counts

    def expire_alerts(self, *, created_before: float, last_error: str) -> list[QueuedAlert]:
        """Mark every pending alert queued before `created_before` as failed (dead letter)
        with `last_error`; return them as they were before."""
        table = self._tables.alerts
        stale = and_(table.c.status == "pending", table.c.created_at < created_before)
        with self._transaction("expiring old alerts", write=True) as conn:
            rows = [_alert(row) for row in conn.execute(select(table).where(stale))]
            if rows:
                ids = [row.id for row in rows]
                conn.execute(
                    update(table)
                    .where(table.c.id.in_(ids))
                    .values(status="failed", next_attempt_at=None, last_error=last_error)
                )
        return rows

    def alert(self, alert_id: int) -> QueuedAlert | None:
        table = self._tables.alerts
        with self._transaction(f"reading alert {alert_id}") as conn:
            row = conn.execute(select(table).where(table.c.id == alert_id)).first()
        return None if row is None else _alert(row)

    def update_alert(
        self,
        alert_id: int,
        *,
        status: str,
        attempts: int,
        next_attempt_at: float | None,
        last_error: str | None,
    ) -> None:
        """Record a delivery attempt's outcome; a "pending" alert needs `next_attempt_at`."""
        if status not in ALERT_STATUSES:
            raise ValueError(f"alert status must be one of {', '.join(ALERT_STATUSES)}")
        if status == "pending" and next_attempt_at is None:
            raise ValueError("a pending alert needs next_attempt_at")
        table = self._tables.alerts
        change = (
            update(table)
            .where(table.c.id == alert_id)
            .values(
                status=status,
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                last_error=last_error,
            )
        )
        with self._transaction(f"updating alert {alert_id}", write=True) as conn:
            if conn.execute(change).rowcount == 0:
                raise StoreError(f"no queued alert with id {alert_id} in {self.url}")

    def _insert(self, table_name: str) -> sqlite.Insert | postgresql.Insert:
        """The dialect's INSERT, which has ON CONFLICT on both databases."""
        table = self._tables.metadata.tables[table_name]
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)


def _event(row: Row[Any]) -> AuditEvent:
    m = row._mapping
    return AuditEvent(
        timestamp=m["timestamp"],
        level=m["level"],
        category=m["category"],
        component=m["component"],
        action=m["action"],
        tenant=m["tenant"],
        details=m["details"],
        id=m["id"],
    )


def _revision(row: Row[Any]) -> Revision:
    m = row._mapping
    return Revision(
        id=m["id"],
        target=m["target"],
        content=m["content"],
        sha256=m["sha256"],
        plan=list(m["plan"]),
        actor=m["actor"],
        created_at=m["created_at"],
        kind=m["kind"],
        note=m["note"],
    )


def _alert(row: Row[Any]) -> QueuedAlert:
    m = row._mapping
    return QueuedAlert(
        id=m["id"],
        dedup_key=m["dedup_key"],
        channel=m["channel"],
        payload=m["payload"],
        status=m["status"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        last_error=m["last_error"],
        created_at=m["created_at"],
    )
