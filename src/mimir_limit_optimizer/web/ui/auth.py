"""Sessions and logins of the web UI.

Two cookies, both HttpOnly and SameSite=Strict (Secure when the request came over HTTPS, or
always/never by `ui.auth.secureCookie`):
- `mlo_session`: set at login, removed at logout; expires `ui.auth.sessionTtl` seconds after
  the last request. It is only ever set by a login, so arriving from another site (Strict:
  no cookie on that first request) never replaces a logged-in session.
- `mlo_anon`: a random id for visitors who are not logged in, so the login form itself has a
  CSRF token.
CSRF tokens are HMAC(key, session or anonymous id): a token of one session is worthless in
another. With a `SessionStore` (the service's store) sessions and the key survive a restart:
the store has each session's user and last activity under the SHA-256 of its id (never the id),
written at login, at logout and at most every TOUCH_EVERY seconds of activity; a session found
in memory is checked against the store as often, so a logout on another replica ends it there
within that time. Without one (tests, a store that fails) they live in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mimir_limit_optimizer.config.ui import UiSettings
from mimir_limit_optimizer.web.ui.passwords import verify_password

SESSION_COOKIE = "mlo_session"
ANON_COOKIE = "mlo_anon"
MAX_SESSIONS = 10_000  # oldest evicted beyond this (memory bound)
# Failed logins per client address within FAIL_WINDOW seconds before logins are refused.
MAX_FAILURES = 10
FAIL_WINDOW = 300.0
LOOPBACK = ("127.0.0.1", "::1", "localhost")
TOUCH_EVERY = 60.0  # seconds between store reads/writes of one session's activity


@dataclass
class Session:
    id: str
    user: str
    expires: float
    checked: float = 0.0  # when the store last confirmed (and recorded) the session


class SessionStoreError(Exception):
    """The session store cannot answer: sessions held in memory stay valid meanwhile."""


class SessionStore(Protocol):
    """Where sessions outlive the process (controller/ui_sessions.py). `key` is the SHA-256
    of the session id, hex."""

    # (user, last activity); None: no such session; SessionStoreError: cannot tell.
    def load(self, key: str) -> tuple[str, float] | None: ...

    def save(self, key: str, user: str, at: float) -> None: ...

    def delete(self, key: str) -> None: ...

    def purge(self, idle_since: float) -> int: ...

    def secret(self, now: float) -> bytes: ...


def session_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class Authenticator:
    """Checks credentials against `ui.auth` (read on every login: a config reload applies at
    once) and keeps the sessions."""

    def __init__(
        self,
        settings: Callable[[], UiSettings],
        *,
        clock: Callable[[], float],
        host: str,
        fallback_token: Callable[[], str | None] = lambda: None,
        sessions: SessionStore | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.loopback = host in LOOPBACK
        self._fallback = fallback_token
        self._store = sessions
        self._key = sessions.secret(clock()) if sessions else secrets.token_bytes(32)
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    # -- policy -------------------------------------------------------------------------
    def login_required_for_reading(self) -> bool:
        mode = self.settings().auth.require_login
        return mode == "always" or (mode == "auto" and not self.loopback)

    def can_log_in(self) -> bool:
        auth = self.settings().auth
        return bool(auth.users) or self._token() is not None

    def _token(self) -> str | None:
        auth = self.settings().auth
        if auth.token is not None:
            return auth.token.get_secret_value()
        if auth.token_file:
            try:
                text = Path(auth.token_file).read_text(encoding="utf-8").strip()
            except OSError:
                return None
            return text or None
        return self._fallback()

    # -- credentials --------------------------------------------------------------------
    def throttled(self, client: str) -> bool:
        now = self.clock()
        with self._lock:
            fails = self._failures.get(client)
            while fails and fails[0] < now - FAIL_WINDOW:
                fails.popleft()
            return fails is not None and len(fails) >= MAX_FAILURES

    def check(self, client: str, username: str, secret: str) -> str | None:
        """The user name on success (\"token\" for the shared token); None otherwise."""
        user: str | None = None
        if username.strip():
            for candidate in self.settings().auth.users:
                if hmac.compare_digest(candidate.username.encode(), username.strip().encode()):
                    hashed = candidate.password_hash.get_secret_value()
                    user = candidate.username if verify_password(secret, hashed) else None
                    break
        else:
            token = self._token()
            if token is not None and hmac.compare_digest(secret.encode(), token.encode()):
                user = "token"
        if user is None:
            with self._lock:
                self._failures.setdefault(client, deque(maxlen=MAX_FAILURES)).append(self.clock())
        return user

    # -- sessions -----------------------------------------------------------------------
    def start(self, user: str) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), user, self._expiry(now), checked=now)
        self._remember(session)
        if self._store is not None:
            self._store.save(session_key(session.id), user, now)
            self._store.purge(now - self.settings().auth.session_ttl)
        return session

    def _remember(self, session: Session) -> None:
        with self._lock:
            self._sessions[session.id] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)

    def _expiry(self, now: float) -> float:
        return now + self.settings().auth.session_ttl

    def session(self, session_id: str | None) -> Session | None:
        """The live session of `session_id` (its expiry pushed back), or None."""
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(session_id)
        if session is not None and session.expires <= now:
            self.end(session_id)
            return None
        if self._store is not None and (session is None or now - session.checked >= TOUCH_EVERY):
            key = session_key(session_id)
            try:
                found = self._store.load(key)
            except SessionStoreError:
                found = None if session is None else (session.user, now)
            if found is None or found[1] + self.settings().auth.session_ttl <= now:
                self.end(session_id)  # logged out elsewhere, or expired while we were away
                return None
            if session is None:  # made before a restart, or by another replica
                session = Session(session_id, found[0], now, checked=now)
                self._remember(session)
            session.checked = now
            self._store.save(key, session.user, now)
        if session is None:
            return None
        with self._lock:
            session.expires = self._expiry(now)
            if session_id in self._sessions:
                self._sessions.move_to_end(session_id)
        return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)
            if self._store is not None:
                self._store.delete(session_key(session_id))

    def csrf_token(self, identity: str) -> str:
        return hmac.new(self._key, b"csrf:" + identity.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, identity: str, presented: str | None) -> bool:
        if not identity or not presented:
            return False
        return hmac.compare_digest(self.csrf_token(identity), presented)
