"""The store: audit events, target revisions, engine checkpoints, the alert queue
(store/alert_queue.py), intended writes (store/intents.py) and the engine's long-term peak
memory (store/peak_memory.py).

One `Store` per process is shared by the controller loop and the HTTP threads: every call takes
its own pooled connection and transaction, so calls are thread-safe. Times are passed in (unix
seconds); the store reads no clock except to stamp applied migrations.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, Row, and_, delete, or_, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL

from mimir_limit_optimizer.store import engine as engines
from mimir_limit_optimizer.store.alert_queue import AlertQueueMixin
from mimir_limit_optimizer.store.errors import StoreError, redact_url, wrap
from mimir_limit_optimizer.store.intents import IntentsMixin
from mimir_limit_optimizer.store.peak_memory import PeakMemoryMixin
from mimir_limit_optimizer.store.records import (
    REVISION_KINDS,
    AuditEvent,
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


class Store(IntentsMixin, PeakMemoryMixin, AlertQueueMixin):
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
