"""The channels and the one place that turns settings into them, checking each channel's
settings first: a bad one raises ChannelConfigError (what is wrong, which key, the fix)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from mimir_limit_optimizer.alerting.breaker import BreakerPolicy
from mimir_limit_optimizer.alerting.channels.alertmanager import AlertmanagerChannel
from mimir_limit_optimizer.alerting.channels.base import Channel
from mimir_limit_optimizer.alerting.channels.email import EmailChannel
from mimir_limit_optimizer.alerting.channels.pagerduty import PagerDutyChannel
from mimir_limit_optimizer.alerting.channels.slack import SlackChannel
from mimir_limit_optimizer.alerting.channels.webhook import FORMATS, METHODS, WebhookChannel
from mimir_limit_optimizer.alerting.errors import ChannelConfigError
from mimir_limit_optimizer.config.alerting import (
    AlertingSettings,
    AlertmanagerSettings,
    EmailSettings,
    PagerDutySettings,
    SlackSettings,
    WebhookSettings,
)

__all__ = ["Channel", "ChannelSpec", "build_channel", "channel_specs", "resolve_channel_name"]

ChannelSettings = (
    SlackSettings | PagerDutySettings | EmailSettings | WebhookSettings | AlertmanagerSettings
)


@dataclass(frozen=True)
class ChannelSpec:
    """A configured, enabled channel: its name, kind and settings (not yet checked)."""

    name: str
    kind: str
    settings: ChannelSettings

    @property
    def key(self) -> str:
        """The config key of its settings, for messages: alerting.slack, alerting.webhooks.x"""
        if self.kind == "webhook":
            return f"alerting.webhooks.{self.name.removeprefix('webhook:')}"
        return f"alerting.{self.kind}"

    @property
    def priorities(self) -> frozenset[str]:
        return frozenset(self.settings.priorities)

    @property
    def breaker(self) -> BreakerPolicy:
        cb = self.settings.circuit_breaker
        return BreakerPolicy(cb.failure_threshold, cb.recovery_timeout, cb.half_open_max_calls)


def channel_specs(settings: AlertingSettings) -> list[ChannelSpec]:
    specs: list[ChannelSpec] = []
    singles: list[tuple[str, ChannelSettings | None]] = [
        ("slack", settings.slack),
        ("pagerduty", settings.pagerduty),
        ("email", settings.email),
        ("alertmanager", settings.alertmanager),
    ]
    for kind, single in singles:
        if single is not None and single.enabled:
            specs.append(ChannelSpec(kind, kind, single))
    for hook, hook_settings in settings.webhooks.items():
        if hook_settings.enabled:
            specs.append(ChannelSpec(f"webhook:{hook}", "webhook", hook_settings))
    return specs


def resolve_channel_name(settings: AlertingSettings, name: str) -> str | None:
    """The channel `name` designates ("opsgenie" and "webhook:opsgenie" are the webhook
    opsgenie), or None when no enabled channel has that name."""
    names = {spec.name for spec in channel_specs(settings)}
    for candidate in (name, f"webhook:{name}"):
        if candidate in names:
            return candidate
    return None


# Settings type -> (secret field, its file field, the secret's config key).
_SECRET_FILES: dict[type, tuple[str, str, str]] = {
    SlackSettings: ("webhook_url", "webhook_url_file", "webhookURL"),
    PagerDutySettings: ("integration_key", "integration_key_file", "integrationKey"),
    EmailSettings: ("password", "password_file", "password"),
    WebhookSettings: ("url", "url_file", "url"),
}


def _with_secret_file(settings: ChannelSettings, key: str) -> ChannelSettings:
    """`settings` with its secret read from `<secret>File` when that is set (a mounted
    Kubernetes Secret: the configuration names the file, never the value)."""
    fields = _SECRET_FILES.get(type(settings))
    if fields is None:
        return settings
    field, file_field, name = fields
    path = getattr(settings, file_field)
    if path is None:
        return settings
    if getattr(settings, field) is not None:
        raise ChannelConfigError(
            f"{key}: both {name} and {name}File are set: keep one", kind="invalid_value"
        )
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ChannelConfigError(
            f"{key}.{name}File: cannot read {path} ({exc.strerror}): check the path and the "
            "mounted Secret",
            kind="missing_field",
        ) from exc
    if not value:
        raise ChannelConfigError(f"{key}.{name}File: {path} is empty", kind="missing_field")
    return settings.model_copy(update={field: SecretStr(value)})


def build_channel(spec: ChannelSpec, *, transport: httpx.BaseTransport | None = None) -> Channel:
    """The channel for `spec`; ChannelConfigError when its settings cannot work."""
    key = spec.key
    s = _with_secret_file(spec.settings, key)
    if isinstance(s, SlackSettings):
        _require(s.webhook_url, f"{key}.webhookURL", "the incoming webhook URL")
        assert s.webhook_url is not None
        _check_url(s.webhook_url.get_secret_value(), f"{key}.webhookURL", secret=True)
        _check_ca(s.ca_file, key)
        return SlackChannel(s, name=spec.name, transport=transport)
    if isinstance(s, PagerDutySettings):
        _require(s.integration_key, f"{key}.integrationKey", "the Events API v2 integration key")
        assert s.integration_key is not None
        if any(c.isspace() for c in s.integration_key.get_secret_value()):
            raise ChannelConfigError(
                f"{key}.integrationKey contains whitespace: paste the key alone"
            )
        _check_url(s.url, f"{key}.url")
        _check_ca(s.ca_file, key)
        return PagerDutyChannel(s, name=spec.name, transport=transport)
    if isinstance(s, EmailSettings):
        _require(s.smtp_host, f"{key}.smtpHost", "the SMTP server's host name")
        _require(s.from_address, f"{key}.from", "the sender address")
        if not s.to:
            raise ChannelConfigError(
                f"{key}.to is empty: list at least one recipient", kind="missing_field"
            )
        for field, address in [("from", s.from_address or ""), *(("to", a) for a in s.to)]:
            if "@" not in address or any(c.isspace() for c in address.strip()):
                raise ChannelConfigError(
                    f"{key}.{field}: {address!r} is not an email address (user@domain)"
                )
        if s.tls == "none" and s.username:
            raise ChannelConfigError(
                f"{key}: a username (AUTH) over an unencrypted connection would send the "
                "password in clear: set tls to starttls or implicit"
            )
        _check_ca(s.ca_file, key)
        return EmailChannel(s, name=spec.name)
    if isinstance(s, WebhookSettings):
        _require(s.url, f"{key}.url", "the endpoint URL")
        assert s.url is not None
        _check_url(s.url.get_secret_value(), f"{key}.url", secret=True)
        if s.method.upper() not in METHODS:
            raise ChannelConfigError(
                f"{key}.method {s.method!r} is not supported: use " + ", ".join(METHODS)
            )
        if s.format not in FORMATS:
            raise ChannelConfigError(
                f"{key}.format {s.format!r} is not supported: use " + " or ".join(FORMATS)
            )
        _check_ca(s.ca_file, key)
        return WebhookChannel(s, name=spec.name, transport=transport)
    _require(s.url, f"{key}.url", "Alertmanager's base URL (http://alertmanager:9093)")
    assert s.url is not None
    _check_url(s.url, f"{key}.url")
    _check_ca(s.ca_file, key)
    return AlertmanagerChannel(s, name=spec.name, transport=transport)


def _require(value: object, key: str, what: str) -> None:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ChannelConfigError(f"{key} is not set: set it to {what}", kind="missing_field")
    reveal = getattr(value, "get_secret_value", None)
    if callable(reveal) and not str(reveal()).strip():
        raise ChannelConfigError(f"{key} is empty: set it to {what}", kind="missing_field")


def _check_url(url: str, key: str, *, secret: bool = False) -> None:
    shown = "" if secret else f" {url!r}"
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        host, parts = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ChannelConfigError(
            f"{key}{shown} is not an http(s) URL with a host", kind="invalid_url"
        )


def _check_ca(ca_file: str | None, key: str) -> None:
    if ca_file is not None and not Path(ca_file).is_file():
        raise ChannelConfigError(f"{key}.caFile {ca_file!r} is not a readable file")
