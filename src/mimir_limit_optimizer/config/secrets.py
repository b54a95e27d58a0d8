"""Recognising secrets in free-form configuration (sections kept as plain mappings, HTTP
headers) so that they are held as SecretStr and never printed."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import SecretStr

REDACTED = "***"

# Substrings of a key (lowercase, without `_` and `-`) that mark its value as secret:
# bearerToken, password, clientSecret, apiKey/integrationKey/routingKey, webhookURL,
# Authorization, credentials, Cookie.
_SECRET_WORDS = ("token", "passw", "secret", "key", "webhook", "auth", "credential", "cookie")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def looks_secret(key: object) -> bool:
    if not isinstance(key, str):
        return False
    folded = key.lower().replace("_", "").replace("-", "")
    return any(word in folded for word in _SECRET_WORDS)


def url_has_secret(text: str) -> bool:
    """A URL carrying a password (`https://user:pw@host`) or a secret query parameter."""
    if not _URL.match(text):
        return False
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return True  # unparseable: do not risk printing it
    return password is not None or any(
        looks_secret(name) for name, _ in parse_qsl(parts.query, keep_blank_values=True)
    )


def redact_url(text: str) -> str:
    """`https://user:pw@host/p?token=x` -> `https://user:***@host/p?token=***`."""
    try:
        parts = urlsplit(text)
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, host = netloc.rpartition("@")
            user = userinfo.partition(":")[0]
            netloc = f"{user}:{REDACTED}@{host}"
        query = "&".join(
            f"{name}={REDACTED if looks_secret(name) else value}"
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return REDACTED


def hide_secrets(value: Any, key: object = None) -> Any:
    """Copy of free-form data with every secret-looking string wrapped in SecretStr: values
    under a secret-looking key, and URLs with credentials under any key."""
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, dict):
        return {k: hide_secrets(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [hide_secrets(v, key) for v in value]
    if isinstance(value, str) and (looks_secret(key) or url_has_secret(value)):
        return SecretStr(value)
    return value
