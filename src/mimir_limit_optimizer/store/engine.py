"""Engines for the two supported databases.

SQLite (the default): a file, created with its parent directory; WAL so readers (HTTP threads)
never block the writer (the loop); a busy timeout so concurrent writers wait instead of failing;
write transactions start with BEGIN IMMEDIATE, so two writers never deadlock upgrading a read
lock. PostgreSQL: psycopg 3 through SQLAlchemy's pool, with pre-ping to survive restarts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from mimir_limit_optimizer.store.errors import StoreError, redact_url

# Execution option set on a connection whose transaction will write (see `_begin`).
WRITE_OPTION = "mlo_write"
_PG_DRIVERS = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
_SQLITE_DRIVERS = frozenset({"sqlite", "sqlite+pysqlite"})
_HELP = "use sqlite:///path/to/mlo.db or postgresql+psycopg://user:password@host:5432/database"


def parse_url(raw: str) -> URL:
    """The SQLAlchemy URL for `raw`; plain postgresql:// and postgres:// mean psycopg 3."""
    try:
        url = make_url(raw)
    except sa_exc.ArgumentError as error:
        raise StoreError(f"store URL {redact_url(raw)} is not a database URL: {_HELP}") from error
    if url.drivername in _PG_DRIVERS:
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in _SQLITE_DRIVERS:
        database = url.database or ""
        if database in ("", ":memory:") or url.query.get("mode") == "memory":
            raise StoreError(
                f"store URL {redact_url(url)} is an in-memory SQLite database, which each "
                "connection would see empty: use sqlite:///path/to/mlo.db"
            )
        return url
    raise StoreError(f"store URL {redact_url(url)} names an unsupported database: {_HELP}")


def create(url: URL, *, busy_timeout: float, connect_timeout: float) -> Engine:
    """An engine for `url` (from `parse_url`); timeouts in seconds."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout=busy_timeout)
    connect_args: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
    if "application_name" not in url.query:
        connect_args["application_name"] = "mimir-limit-optimizer"
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_engine(url: URL, *, busy_timeout: float) -> Engine:
    path = Path(url.database or "")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(
            f"cannot create the directory of the store {redact_url(url)}: {error}; "
            "create it or set store.url / dataDir to a writable place"
        ) from error
    engine = create_engine(
        url,
        # One engine serves the loop and the HTTP threads; the pool hands each thread its own
        # connection, so sharing across threads is safe.
        connect_args={"check_same_thread": False, "timeout": busy_timeout},
    )
    busy_ms = max(1, round(busy_timeout * 1000))

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN is off: `_begin` issues it (and transactional DDL
        # works for migrations).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            # Durable across process crashes in WAL mode; only a power loss may lose the
            # last transactions.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    def on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    return engine
