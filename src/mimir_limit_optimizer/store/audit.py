"""The audit log: every event is stored and also written as one structured JSON log line."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from types import MappingProxyType

from mimir_limit_optimizer.store.errors import StoreError
from mimir_limit_optimizer.store.records import AuditEvent
from mimir_limit_optimizer.store.store import Store

_LOG_LEVELS = MappingProxyType(
    {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
)


class AuditLog:
    def __init__(self, store: Store, *, logger: logging.Logger) -> None:
        self._store = store
        self._logger = logger

    def record(self, event: AuditEvent) -> AuditEvent:
        """Store `event` and log it as JSON at its level; return it with its id.

        When the store fails, the line is still logged (with id null: it is then the only
        record of the event) and the StoreError is raised.
        """
        try:
            event_id = self._store.record(event)
        except StoreError:
            self._emit(event)
            raise
        stored = dataclasses.replace(event, id=event_id)
        self._emit(stored)
        return stored

    def record_many(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        """Store `events` in one transaction and log each; return them with their ids. When
        the store fails, every line is still logged (id null) and the StoreError is raised."""
        try:
            ids = self._store.record_many(events)
        except StoreError:
            for event in events:
                self._emit(event)
            raise
        stored = [dataclasses.replace(e, id=i) for e, i in zip(events, ids, strict=True)]
        for event in stored:
            self._emit(event)
        return stored

    def logged(self, event: AuditEvent) -> AuditEvent:
        """Log an event the store already holds (stored in one transaction with the write it
        records, see store/intents.py); return it."""
        self._emit(event)
        return event

    def _emit(self, event: AuditEvent) -> None:
        data = event.to_json()
        # The message is the JSON itself; `audit_event` serves JSON log formatters.
        self._logger.log(
            _LOG_LEVELS[event.level],
            json.dumps(data, ensure_ascii=False),
            extra={"audit_event": data},
        )
