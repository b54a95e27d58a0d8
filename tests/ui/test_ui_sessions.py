"""UI sessions kept in the service's store (controller/ui_sessions.py, web/ui/auth.py): a
restart keeps the login, a logout ends it everywhere, expiry holds across restarts, only the
hash of the session id is stored, and a failing store leaves logins working in memory."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from mimir_limit_optimizer.config.ui import UiAuth, UiSettings
from mimir_limit_optimizer.controller.ui_sessions import StoreSessions
from mimir_limit_optimizer.store import Store
from mimir_limit_optimizer.store.queries import SESSION_PREFIX
from mimir_limit_optimizer.web.ui.auth import TOUCH_EVERY, Authenticator, session_key

TTL = 600.0
SETTINGS = UiSettings(auth=UiAuth(token="t0ken-for-sessions", session_ttl=TTL))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Store, Path]]:
    path = tmp_path / "mlo.db"
    store = Store.open(f"sqlite:///{path}")
    yield store, path
    store.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def service(store: Store, clock: Clock) -> Authenticator:
    """One process of the service (a restart, or another replica, is a new one)."""
    sessions = StoreSessions(store, logging.getLogger("test-ui-sessions"))
    return Authenticator(lambda: SETTINGS, clock=clock, host="127.0.0.1", sessions=sessions)


def test_a_restart_keeps_the_login_and_the_csrf_tokens(db: tuple[Store, Path]) -> None:
    store, path = db
    clock = Clock()
    first = service(store, clock)
    session = first.start("alice")
    token = first.csrf_token(session.id)
    clock.now += 30
    after_restart = service(store, clock)
    found = after_restart.session(session.id)
    assert found is not None and found.user == "alice"
    assert after_restart.csrf_ok(session.id, token)  # an open page still posts
    assert after_restart.session("not-a-session-id") is None
    # Only the hash of the id is in the database.
    rows = sqlite3.connect(path).execute("SELECT key, data FROM checkpoints").fetchall()
    assert (SESSION_PREFIX + session_key(session.id), b"alice") in rows
    assert not any(session.id in key or session.id.encode() in bytes(data) for key, data in rows)


def test_logout_ends_the_session_in_every_process(db: tuple[Store, Path]) -> None:
    store, _path = db
    clock = Clock()
    one, two = service(store, clock), service(store, clock)
    session = one.start("bob")
    assert two.session(session.id) is not None  # the other replica knows it from the store
    one.end(session.id)
    assert one.session(session.id) is None
    clock.now += TOUCH_EVERY  # the other one checks the store again within TOUCH_EVERY
    assert two.session(session.id) is None
    assert service(store, clock).session(session.id) is None  # and after a restart


def test_expiry_holds_across_restarts_and_expired_rows_are_purged(
    db: tuple[Store, Path],
) -> None:
    store, path = db
    clock = Clock()
    first = service(store, clock)
    stale = first.start("carol")
    clock.now += TTL - 1
    assert first.session(stale.id) is not None  # activity pushes the expiry back (and records it)
    clock.now += TTL - 1
    assert service(store, clock).session(stale.id) is not None
    clock.now += TTL + 1
    assert service(store, clock).session(stale.id) is None  # idle longer than the TTL
    abandoned = first.start("dave")
    clock.now += TTL + 1
    first.start("erin")  # a login purges the rows idle longer than the TTL
    keys = {k for (k,) in sqlite3.connect(path).execute("SELECT key FROM checkpoints")}
    assert SESSION_PREFIX + session_key(abandoned.id) not in keys
    assert sum(k.startswith(SESSION_PREFIX) for k in keys) == 1


def test_a_failing_store_keeps_logins_in_memory(db: tuple[Store, Path]) -> None:
    store, _path = db
    clock = Clock()
    auth = service(store, clock)
    store.close()  # every store call now fails
    session = auth.start("frank")
    clock.now += TOUCH_EVERY + 1  # the store is asked again, cannot answer: memory decides
    found = auth.session(session.id)
    assert found is not None and found.user == "frank"
    assert auth.session("never-issued") is None
    auth.end(session.id)
    assert auth.session(session.id) is None
