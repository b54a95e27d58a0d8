"""The web UI's login sessions and CSRF key in the service's store (web.ui.auth.SessionStore),
so that a restart (or another replica on the same PostgreSQL) keeps everyone logged in.

Rows are keyed by the SHA-256 of the session id (store/queries.py): the id itself is only ever
in the visitor's cookie. A store that fails is logged and the UI falls back to what it holds in
memory: a broken database must not lock the operator out of the switch that stops the writes.
"""

from __future__ import annotations

import logging
import secrets

from mimir_limit_optimizer.store import Store, StoreError
from mimir_limit_optimizer.store.queries import (
    session_delete,
    session_load,
    session_save,
    sessions_purge,
)
from mimir_limit_optimizer.web.ui.auth import SessionStoreError

CSRF_KEY = "ui-csrf-key"  # checkpoint with the key CSRF tokens are signed with (32 bytes)


class StoreSessions:
    def __init__(self, store: Store, logger: logging.Logger) -> None:
        self.store = store
        self.log = logger

    def _failed(self, doing: str, exc: StoreError) -> None:
        self.log.warning("UI sessions: %s failed (%s); kept in memory only", doing, exc)

    def load(self, key: str) -> tuple[str, float] | None:
        try:
            return session_load(self.store, key)
        except StoreError as exc:
            self._failed("reading a session", exc)
            raise SessionStoreError(str(exc)) from exc

    def save(self, key: str, user: str, at: float) -> None:
        try:
            session_save(self.store, key, user, at=at)
        except StoreError as exc:
            self._failed("recording a session", exc)

    def delete(self, key: str) -> None:
        try:
            session_delete(self.store, key)
        except StoreError as exc:
            self._failed("ending a session", exc)

    def purge(self, idle_since: float) -> int:
        try:
            return sessions_purge(self.store, idle_since=idle_since)
        except StoreError as exc:
            self._failed("purging expired sessions", exc)
            return 0

    def secret(self, now: float) -> bytes:
        """The CSRF key, made once and kept: an open page still posts after a restart."""
        try:
            key = self.store.load_checkpoint(CSRF_KEY)
            if key is None or len(key) < 32:
                key = secrets.token_bytes(32)
                self.store.save_checkpoint(CSRF_KEY, key, at=now)
            return key
        except StoreError as exc:
            self._failed("reading the CSRF key", exc)
            return secrets.token_bytes(32)
