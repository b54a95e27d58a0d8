"""Where the Prometheus source connects and with what: the URL (credentials split off, a
redacted form for messages), bearer token or basic auth (inline, from a file read now, or
from an environment variable), request headers, TLS, and the secrets to scrub from every
quoted body and library message. Resolved once from the settings, so a bad setting fails
before the first cycle with a `SourceConfigError` that says what to fix.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from mimir_limit_optimizer.config.models import PrometheusSettings
from mimir_limit_optimizer.sources.base import PermanentSourceError

__all__ = ["REDACTED", "ClientSetup", "SourceConfigError", "client_setup", "redact_url"]

REDACTED = "<redacted>"
# Secrets shorter than this are not scrubbed from messages (it would mangle them); such
# secrets should not exist.
_MIN_SCRUB = 4

# Extra headers whose values are credentials (Authorization, X-Api-Key, Cookie, ...).
_SECRET_HEADER = re.compile(r"auth|token|key|secret|passw|cookie|credential", re.IGNORECASE)


class SourceConfigError(PermanentSourceError):
    """The Prometheus source settings cannot work (bad URL, unreadable token file, ...)."""


@dataclass(frozen=True)
class _Endpoint:
    base: str  # scheme://host[:port][/path] with no credentials, no trailing slash
    shown: str  # the same with userinfo redacted
    username: str | None
    password: str | None


def _split_url(url: str) -> _Endpoint:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceConfigError(
            "source.prometheus.url must be an http:// or https:// URL with a host, "
            "e.g. http://prometheus:9090 or https://mimir.example.com"
        )
    try:
        parts.port  # noqa: B018 (urllib checks the range when it is read)
    except ValueError:
        raise SourceConfigError(
            f"source.prometheus.url {url.strip()!r}: the port must be a number from 1 to 65535"
        ) from None
    if parts.query or parts.fragment:
        raise SourceConfigError(
            "source.prometheus.url must not contain a query string or fragment; "
            "put extra request headers in source.prometheus.headers"
        )
    host = parts.netloc.rpartition("@")[2]
    path = parts.path.rstrip("/")
    base = f"{parts.scheme}://{host}{path}"
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    if password is not None:
        shown_userinfo = f"{parts.username}:{REDACTED}@"
    elif username is not None:
        # A lone userinfo is usually a token (https://TOKEN@host): hide it all.
        shown_userinfo = f"{REDACTED}@"
    else:
        shown_userinfo = ""
    shown = f"{parts.scheme}://{shown_userinfo}{host}{path}"
    return _Endpoint(base=base, shown=shown, username=username, password=password)


def _is_loopback(base: str) -> bool:
    host = urllib.parse.urlsplit(base).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return False


def redact_url(url: str) -> str:
    """`url` with the password of its userinfo (or a lone username/token) replaced."""
    try:
        return _split_url(url).shown
    except SourceConfigError:
        return REDACTED


def _secret(
    what: str,
    inline: SecretStr | None,
    file: str | None,
    env_name: str | None,
    env: Mapping[str, str],
) -> str | None:
    """Resolve a secret given inline, as a file (read now) or as an environment variable."""
    given = [name for name, value in (("", inline), ("File", file), ("Env", env_name)) if value]
    if len(given) > 1:
        options = ", ".join(f"{what}{suffix}" for suffix in given)
        raise SourceConfigError(f"set only one of {options}")
    if inline is not None and inline.get_secret_value():
        return inline.get_secret_value()
    if file:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SourceConfigError(
                f"{what}File: cannot read {file}: {exc.strerror or exc}; "
                "check the path and that the file is mounted and readable"
            ) from exc
        if not value:
            raise SourceConfigError(f"{what}File: {file} is empty")
        return value
    if env_name:
        value = env.get(env_name, "").strip()
        if not value:
            raise SourceConfigError(
                f"{what}Env: environment variable {env_name} is not set or empty"
            )
        return value
    return None


@dataclass(frozen=True)
class ClientSetup:
    """Everything the HTTP client needs, resolved from the settings."""

    prefix: str  # "/prometheus" or ""
    base: str  # URL without credentials, prefix included
    shown: str  # redacted base + prefix: the only form of the URL in messages and logs
    headers: httpx.Headers
    auth: httpx.BasicAuth | None
    verify: ssl.SSLContext | bool
    secrets: tuple[str, ...]  # longest first, so a secret containing another goes whole

    def scrub(self, text: str) -> str:
        """`text` with every known secret replaced."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def client_setup(settings: PrometheusSettings, env: Mapping[str, str]) -> ClientSetup:
    """Resolve the URL, credentials (files read now), headers and TLS of `settings`;
    `env`: where `bearerTokenEnv`/`passwordEnv` are looked up."""
    endpoint = _split_url(settings.url)
    prefix = settings.path_prefix.strip().strip("/")
    prefix = f"/{prefix}" if prefix else ""

    token = _secret(
        "source.prometheus.bearerToken",
        settings.bearer_token,
        settings.bearer_token_file,
        settings.bearer_token_env,
        env,
    )
    basic: tuple[str, str] | None = None
    if settings.basic_auth is not None:
        password = _secret(
            "source.prometheus.basicAuth.password",
            settings.basic_auth.password,
            settings.basic_auth.password_file,
            settings.basic_auth.password_env,
            env,
        )
        basic = (settings.basic_auth.username, password or "")
    if endpoint.username is not None:
        if token is not None or basic is not None:
            raise SourceConfigError(
                "source.prometheus.url contains credentials and bearerToken/basicAuth is "
                "also set; keep one of them"
            )
        # Sent as basic auth by us: httpx never sees userinfo, so none of its messages
        # can quote it.
        basic = (endpoint.username, endpoint.password or "")
    if token is not None and basic is not None:
        raise SourceConfigError(
            "source.prometheus: set either a bearer token or basicAuth, not both"
        )

    # Case-insensitive: a configured `x-scope-orgid` is replaced by `tenant`, not doubled.
    headers = httpx.Headers({"Accept": "application/json", "User-Agent": "mimir-limit-optimizer"})
    if _is_loopback(endpoint.base):
        # Over loopback, compression saves no wire time and costs CPU on both sides:
        # Prometheus gzips every response on its query cores (about a tenth of its
        # evaluation time at 1,000 tenants, docs/benchmarks.md) and we inflate it. Over a
        # network httpx asks for gzip; `headers` can set Accept-Encoding either way.
        headers["Accept-Encoding"] = "identity"
    secret_headers: list[str] = []
    for name, value in settings.headers.items():
        # Tolerates SecretStr values, should the settings model hold headers that way.
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        headers[name] = text
        if _SECRET_HEADER.search(name):
            secret_headers.append(text)
    if settings.tenant:
        headers["X-Scope-OrgID"] = settings.tenant
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    for name, text in headers.items():
        if "\r" in text or "\n" in text:
            raise SourceConfigError(
                f"source.prometheus: the value of header {name} contains a line break"
            )
    # Scrubbed from every quoted body and library message: the token, the password, a
    # lone URL userinfo (a token), and the base64 form a misbehaving proxy might echo.
    secrets = [token, *secret_headers]
    if basic is not None:
        user, password = basic
        secrets.append(password)
        secrets.append(base64.b64encode(f"{user}:{password}".encode()).decode("ascii"))
        if endpoint.username is not None and endpoint.password is None:
            secrets.append(endpoint.username)
    return ClientSetup(
        prefix=prefix,
        base=endpoint.base + prefix,
        shown=endpoint.shown + prefix,
        headers=headers,
        auth=httpx.BasicAuth(*basic) if basic is not None else None,
        verify=_tls(settings),
        secrets=tuple(
            sorted({s for s in secrets if s and len(s) >= _MIN_SCRUB}, key=len, reverse=True)
        ),
    )


def _tls(settings: PrometheusSettings) -> ssl.SSLContext | bool:
    if not settings.tls_verify:
        return False
    if settings.ca_file:
        try:
            return ssl.create_default_context(cafile=settings.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SourceConfigError(
                f"source.prometheus.caFile: cannot load {settings.ca_file}: {exc}; "
                "it must be a readable PEM file of CA certificates"
            ) from exc
    return True
