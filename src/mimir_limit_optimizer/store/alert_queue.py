"""The alert queue: alerts wait here until a channel accepts them (retries with backoff, the
deduplication of a repeated incident, expiry), so a failed delivery stays queued across
restarts (docs/reliability.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Row, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mimir_limit_optimizer.store.errors import StoreError
from mimir_limit_optimizer.store.records import ALERT_STATUSES, QueuedAlert, plain_json
from mimir_limit_optimizer.store.schema import Tables


class AlertQueueMixin:
    """The alert queue methods of `Store` (it provides `_tables`, `_transaction`, `_insert`
    and `url`)."""

    _tables: Tables

    @property
    def url(self) -> str:  # pragma: no cover - provided by Store
        raise NotImplementedError

    def _transaction(
        self, doing: str, *, write: bool = False
    ) -> AbstractContextManager[Connection]:  # pragma: no cover - provided by Store
        raise NotImplementedError

    def _insert(
        self, table_name: str
    ) -> sqlite.Insert | postgresql.Insert:  # pragma: no cover - provided by Store
        raise NotImplementedError

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
