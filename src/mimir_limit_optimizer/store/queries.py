"""Queries of the web UI beside `Store`'s own: read-only audit queries (filtered counts, offset
pages, keyset-paged streaming, so an export never holds the whole log in memory, and facet
values), and the UI's login sessions, kept as rows of the checkpoints table (no schema change).
Additive: only the session functions write, and only their own rows."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, or_, select

from mimir_limit_optimizer.store.records import AuditEvent
from mimir_limit_optimizer.store.store import Store, _event

STREAM_BATCH = 1000  # rows per round trip while streaming an export


@dataclass(frozen=True)
class AuditFilter:
    tenant: str | None = None
    action: str | None = None
    category: str | None = None
    component: str | None = None
    since: float | None = None  # inclusive, unix seconds
    until: float | None = None  # inclusive


def _where(store: Store, f: AuditFilter) -> list[Any]:
    table = store._tables.audit
    clauses: list[Any] = []
    for column, value in (
        (table.c.tenant, f.tenant),
        (table.c.action, f.action),
        (table.c.category, f.category),
        (table.c.component, f.component),
    ):
        if value is not None:
            clauses.append(column == value)
    if f.since is not None:
        clauses.append(table.c.timestamp >= f.since)
    if f.until is not None:
        clauses.append(table.c.timestamp <= f.until)
    return clauses


def audit_page(
    store: Store, f: AuditFilter, *, offset: int, limit: int
) -> tuple[list[AuditEvent], int]:
    """One page of matching events (newest first) and how many match in all."""
    table = store._tables.audit
    where = _where(store, f)
    query = (
        select(table)
        .where(*where)
        .order_by(table.c.timestamp.desc(), table.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    with store._transaction("querying audit events") as conn:
        total = int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)
        rows = [_event(row) for row in conn.execute(query)]
    return rows, total


def audit_stream(store: Store, f: AuditFilter) -> Iterator[AuditEvent]:
    """Every matching event, newest first, fetched STREAM_BATCH at a time (keyset paging on
    (timestamp, id), so concurrent inserts neither repeat nor skip a row)."""
    table = store._tables.audit
    where = _where(store, f)
    after: tuple[float, int] | None = None
    while True:
        query = select(table).where(*where)
        if after is not None:
            stamp, event_id = after
            query = query.where(
                or_(
                    table.c.timestamp < stamp,
                    and_(table.c.timestamp == stamp, table.c.id < event_id),
                )
            )
        query = query.order_by(table.c.timestamp.desc(), table.c.id.desc()).limit(STREAM_BATCH)
        with store._transaction("exporting audit events") as conn:
            batch = [_event(row) for row in conn.execute(query)]
        yield from batch
        if len(batch) < STREAM_BATCH:
            return
        last = batch[-1]
        after = (last.timestamp, int(last.id or 0))


def count_actions(store: Store, actions: Collection[str], *, since: float) -> dict[str, int]:
    """Events per action among `actions` since `since`."""
    table = store._tables.audit
    query = (
        select(table.c.action, func.count())
        .where(table.c.action.in_(list(actions)), table.c.timestamp >= since)
        .group_by(table.c.action)
    )
    with store._transaction("counting audit events") as conn:
        return {str(action): int(count) for action, count in conn.execute(query)}


def audit_facets(store: Store, *, limit: int = 200) -> dict[str, tuple[str, ...]]:
    """Distinct actions, categories and components (for the filter menus)."""
    table = store._tables.audit
    out: dict[str, tuple[str, ...]] = {}
    with store._transaction("listing audit facets") as conn:
        for name in ("action", "category", "component"):
            column = table.c[name]
            values = conn.scalars(select(column).distinct().order_by(column).limit(limit))
            out[name] = tuple(str(v) for v in values if v is not None)
    return out


# -- web UI sessions -------------------------------------------------------------------------
# Rows of the checkpoints table under SESSION_PREFIX + sha256(session id): the data is the user
# name, `updated_at` the session's last recorded activity. No schema change; the session id
# itself is never stored (a copy of the database logs nobody in).

SESSION_PREFIX = "ui-session:"


def session_load(store: Store, key: str) -> tuple[str, float] | None:
    """(user, last activity) of the session row `key`, or None."""
    table = store._tables.checkpoints
    with store._transaction("loading a UI session") as conn:
        row = conn.execute(
            select(table.c.data, table.c.updated_at).where(table.c.key == SESSION_PREFIX + key)
        ).first()
    if row is None:
        return None
    return bytes(row[0]).decode("utf-8", "replace"), float(row[1])


def session_save(store: Store, key: str, user: str, *, at: float) -> None:
    store.save_checkpoint(SESSION_PREFIX + key, user.encode("utf-8"), at=at)


def session_delete(store: Store, key: str) -> None:
    table = store._tables.checkpoints
    with store._transaction("ending a UI session", write=True) as conn:
        conn.execute(delete(table).where(table.c.key == SESSION_PREFIX + key))


def sessions_purge(store: Store, *, idle_since: float) -> int:
    """Delete the session rows without activity since `idle_since`; how many."""
    table = store._tables.checkpoints
    with store._transaction("purging expired UI sessions", write=True) as conn:
        result = conn.execute(
            delete(table).where(
                table.c.key.startswith(SESSION_PREFIX, autoescape=True),
                table.c.updated_at < idle_since,
            )
        )
    return int(result.rowcount or 0)
