"""Tables (SQLAlchemy Core) and versioned migrations.

`schema_version` holds one row per applied step. `migrate` applies the steps the database lacks,
in order, in one transaction under a lock (BEGIN IMMEDIATE on SQLite, an advisory lock on
PostgreSQL), so concurrent openers neither race nor see half a schema. A database newer than
the code is refused: running old code on it could lose data.

Adding a step: append `Migration(n + 1, ...)` and change the tables below to the new shape.
Step 1 creates the tables from the current definitions, so before a step changes an existing
table, copy step 1's definition of that table into step 1 (it must keep creating version 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    text,
)

from mimir_limit_optimizer.store.errors import StoreError

# Any constant works; it only has to be the same for every process using the database.
_PG_MIGRATION_LOCK = 0x6D6C6F  # "mlo"
_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY (rowid)


@dataclass(frozen=True)
class Tables:
    metadata: MetaData
    schema_version: Table
    audit: Table
    revisions: Table
    checkpoints: Table
    alerts: Table
    intents: Table
    peak_memory: Table


def build_tables() -> Tables:
    """Fresh table definitions (one MetaData per store: nothing shared between stores)."""
    metadata = MetaData()
    schema_version = Table(
        "schema_version",
        metadata,
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("description", String(200), nullable=False),
        Column("applied_at", Double, nullable=False),  # unix seconds
    )
    audit = Table(
        "audit_events",
        metadata,
        Column("id", _ID, primary_key=True),
        Column("timestamp", Double, nullable=False),  # unix seconds
        Column("level", String(16), nullable=False),
        Column("category", String(32), nullable=False),
        Column("component", String(100), nullable=False),
        Column("action", String(200), nullable=False),
        Column("tenant", String(512)),
        Column("details", JSON, nullable=False),
        # Queries are "newest first, optionally for one tenant / action / category".
        Index("ix_audit_events_timestamp", "timestamp", "id"),
        Index("ix_audit_events_tenant", "tenant", "timestamp"),
        Index("ix_audit_events_action", "action", "timestamp"),
        Index("ix_audit_events_category", "category", "timestamp"),
        sqlite_autoincrement=True,  # ids are never reused after pruning
    )
    revisions = Table(
        "revisions",
        metadata,
        Column("id", _ID, primary_key=True),
        Column("target", String(1000), nullable=False),
        Column("content", Text, nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("plan", JSON, nullable=False),
        Column("actor", String(200), nullable=False),
        Column("created_at", Double, nullable=False),  # unix seconds
        Column("kind", String(16), nullable=False),
        Column("note", Text, nullable=False, default=""),
        Index("ix_revisions_target", "target", "id"),
        sqlite_autoincrement=True,
    )
    checkpoints = Table(
        "checkpoints",
        metadata,
        Column("key", String(200), primary_key=True),
        Column("data", LargeBinary, nullable=False),
        Column("updated_at", Double, nullable=False),  # unix seconds
    )
    pending = "status = 'pending'"
    alerts = Table(
        "alert_queue",
        metadata,
        Column("id", _ID, primary_key=True),
        Column("dedup_key", String(500), nullable=False),
        Column("channel", String(100), nullable=False),
        Column("payload", JSON, nullable=False),
        Column("status", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("next_attempt_at", Double),  # unix seconds
        Column("last_error", Text),
        Column("created_at", Double, nullable=False),  # unix seconds
        Index("ix_alert_queue_due", "status", "next_attempt_at"),
        # At most one pending alert per (dedup_key, channel): enqueueing again is a no-op.
        Index(
            "uq_alert_queue_pending",
            "dedup_key",
            "channel",
            unique=True,
            sqlite_where=text(pending),
            postgresql_where=text(pending),
        ),
        sqlite_autoincrement=True,
    )
    intents = Table(
        "intents",
        metadata,
        Column("id", _ID, primary_key=True),
        Column("target", String(1000), nullable=False),
        Column("actor", String(200), nullable=False),
        Column("created_at", Double, nullable=False),  # unix seconds
        Column("plan", JSON, nullable=False),
        Column("old_content", Text, nullable=False),
        Column("old_sha256", String(64), nullable=False),
        Column("new_content", Text, nullable=False),
        Column("new_sha256", String(64), nullable=False),
        Column("events", JSON, nullable=False),
        Column("verify", Integer, nullable=False),  # 1: waits for Mimir's confirmation
        Column("state", String(16), nullable=False),
        Column("revision_id", _ID),
        Column("note", Text, nullable=False, default=""),
        Column("updated_at", Double, nullable=False),  # unix seconds
        Index("ix_intents_open", "target", "state", "id"),
        sqlite_autoincrement=True,
    )
    # The engine's long-term peak memory (engine/peak_memory.py): one row per limit, its
    # tenants, levels and times encoded in one blob (controller/peak_memory.py), so a cycle
    # at 100,000 tenants writes ~10 rows, not a million.
    peak_memory = Table(
        "peak_memory",
        metadata,
        Column("limit_name", String(200), primary_key=True),
        Column("data", LargeBinary, nullable=False),
        Column("entries", Integer, nullable=False),  # tenants with a remembered level
        Column("updated_at", Double, nullable=False),  # unix seconds
    )
    return Tables(
        metadata, schema_version, audit, revisions, checkpoints, alerts, intents, peak_memory
    )


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection, Tables], None]


def _create_v1(conn: Connection, tables: Tables) -> None:
    tables.metadata.create_all(
        conn,
        tables=[tables.audit, tables.revisions, tables.checkpoints, tables.alerts],
        checkfirst=False,
    )


def _create_v2(conn: Connection, tables: Tables) -> None:
    tables.intents.create(conn, checkfirst=False)


def _create_v3(conn: Connection, tables: Tables) -> None:
    tables.peak_memory.create(conn, checkfirst=False)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "audit events, revisions, checkpoints, alert queue", _create_v1),
    Migration(2, "intended writes (recorded before each write)", _create_v2),
    Migration(3, "long-term peak memory of the engine (one row per limit)", _create_v3),
)


def current_version(conn: Connection, tables: Tables) -> int:
    return int(conn.scalar(select(func.max(tables.schema_version.c.version))) or 0)


def migrate(
    conn: Connection, tables: Tables, migrations: Sequence[Migration], *, now: float, url: str
) -> int:
    """Apply the missing steps inside the caller's write transaction; return the new version.

    `url` (already redacted) only names the database in errors.
    """
    expected = list(range(1, len(migrations) + 1))
    if [step.version for step in migrations] != expected:
        raise ValueError("migration versions must be 1, 2, 3, ... in order")
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
    tables.schema_version.create(conn, checkfirst=True)
    version = current_version(conn, tables)
    known = len(migrations)
    if version > known:
        raise StoreError(
            f"the store at {url} has schema version {version}, newer than this "
            f"mimir-limit-optimizer knows (version {known}): upgrade mimir-limit-optimizer, or "
            "point store.url at another database"
        )
    for step in migrations[version:]:
        step.apply(conn, tables)
        conn.execute(
            insert(tables.schema_version).values(
                version=step.version, description=step.description, applied_at=now
            )
        )
    return known
