"""Keep secrets out of logs, stored errors and the status page (Alertmanager's RedactURL).

Channels build messages from safe parts; `Redactor` is the second line of defence: it masks
every known secret value (and its URL-encoded form) wherever it appears in a text."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, urlsplit

from mimir_limit_optimizer.config.secrets import REDACTED

# Shorter values are not masked (they would mask ordinary words; nobody uses such secrets).
_MIN_SECRET = 4


# Parts of a secret that are masked on their own when at least this long: the token of
# "Bearer <token>", a secret URL's path segments (Slack's T/B/x), query values.
_MIN_PART = 8


def secret_parts(secret: str) -> set[str]:
    """`secret` and the parts of it that are secret on their own."""
    parts = {secret, *secret.split()}
    if "://" in secret:
        try:
            url = urlsplit(secret)
            parts.update({url.password or "", url.path, url.query})
            parts.update(url.path.split("/"))
            parts.update(value for _, value in parse_qsl(url.query))
        except ValueError:
            pass
    return {p for p in parts if len(p) >= _MIN_PART or (p == secret and len(p) >= _MIN_SECRET)}


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        values: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= _MIN_SECRET:
                for part in secret_parts(secret):
                    values.update({part, quote(part, safe=""), quote(part)})
        # Longest first: a URL is masked whole before its parts are.
        self._values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, REDACTED)
        return text


def url_origin(url: str) -> str:
    """`https://hooks.slack.com/services/T/B/x` -> `https://hooks.slack.com/***`: enough to
    say where alerts go without the secret path, query or credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return REDACTED
    tail = f"/{REDACTED}" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{tail}"
