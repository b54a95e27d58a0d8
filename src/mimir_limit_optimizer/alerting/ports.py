"""What alerting needs from the persistent queue. The store (`mimir_limit_optimizer.store.
Store`) provides it; alerting does not import the store (sibling adapters stay independent),
the controller passes it in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class QueueRow(Protocol):
    """One delivery of one alert to one channel (the store's QueuedAlert)."""

    @property
    def id(self) -> int: ...
    @property
    def dedup_key(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...
    @property
    def status(self) -> str: ...  # pending | sent | failed | cancelled
    @property
    def attempts(self) -> int: ...
    @property
    def next_attempt_at(self) -> float | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def created_at(self) -> float: ...


class AlertQueue(Protocol):
    def enqueue_alert(
        self,
        *,
        dedup_key: str,
        channel: str,
        payload: Mapping[str, Any],
        created_at: float,
        due_at: float | None = None,
    ) -> int: ...

    def due_alerts(
        self, *, now: float, limit: int = 100, channel: str | None = None
    ) -> Sequence[QueueRow]: ...

    def latest_alert(
        self, dedup_key: str, channel: str, *, statuses: Sequence[str] = ...
    ) -> QueueRow | None: ...

    def update_alert(
        self,
        alert_id: int,
        *,
        status: str,
        attempts: int,
        next_attempt_at: float | None,
        last_error: str | None,
    ) -> None: ...

    def alert_counts(self) -> Mapping[str, tuple[int, int]]: ...

    def expire_alerts(self, *, created_before: float, last_error: str) -> Sequence[QueueRow]: ...
