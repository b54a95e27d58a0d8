"""Store errors. Every database failure surfaces as `StoreError`, naming the database with its
password redacted, chaining the driver's exception, and saying whether trying again can help."""

from __future__ import annotations

import re

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

REDACTED = "REDACTED"
# For strings SQLAlchemy cannot parse: `scheme://user:secret@host` and `?password=secret`.
_USERINFO_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


class StoreError(Exception):
    """The store could not do what was asked.

    `retryable` is True when the cause is transient (the database is unreachable, busy or
    restarting): the same call may succeed later. Otherwise the URL, the schema or the call
    itself needs fixing.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def redact_url(url: str | URL) -> str:
    """`url` as text with any password replaced by REDACTED (in the userinfo and the query)."""
    if isinstance(url, str):
        try:
            parsed = make_url(url)
        except sa_exc.ArgumentError:
            return _QUERY_PASSWORD.sub(rf"\g<1>{REDACTED}", _USERINFO_PASSWORD.sub(
                rf"\g<1>{REDACTED}@", url
            ))  # fmt: skip
    else:
        parsed = url
    if parsed.password is not None:
        parsed = parsed.set(password=REDACTED)
    secret_keys = [key for key in parsed.query if key.lower() == "password"]
    if secret_keys:
        parsed = parsed.update_query_dict(dict.fromkeys(secret_keys, REDACTED))
    return parsed.render_as_string(hide_password=False)


def scrub(text: str, url: URL) -> str:
    """`text` with the URL's password (wherever a driver may have echoed it) redacted."""
    secrets = [url.password] if url.password else []
    for key, value in url.query.items():
        if key.lower() == "password":
            secrets.extend([value] if isinstance(value, str) else list(value))
    for secret in secrets:
        if secret:
            text = text.replace(str(secret), REDACTED)
    return text


_TRANSIENT = (sa_exc.OperationalError, sa_exc.DisconnectionError, sa_exc.TimeoutError)


def wrap(error: sa_exc.SQLAlchemyError, *, doing: str, url: URL) -> StoreError:
    """A StoreError for `error`, raised while `doing` (e.g. "recording an audit event")."""
    cause = error.orig if isinstance(error, sa_exc.DBAPIError) and error.orig else error
    detail = " ".join(str(cause).split()) or type(cause).__name__
    retryable = isinstance(error, _TRANSIENT)
    if "readonly" in detail.lower() or "read-only" in detail.lower():
        retryable = False
        hint = (
            "; the store is read-only: make the database file and its directory writable, "
            "or set store.url (or dataDir) to a writable place"
        )
    elif retryable:
        hint = "; check that the database is reachable and store.url is right (retried next time)"
    else:
        hint = ""
    # Scrubbed before the redacted URL is added: a short password must not mangle it.
    message = f"{doing} failed on {redact_url(url)}: {scrub(detail, url)}{hint}"
    return StoreError(message, retryable=retryable)
