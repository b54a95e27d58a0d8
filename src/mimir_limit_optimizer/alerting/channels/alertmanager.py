"""Alertmanager API v2: POST <url>/api/v2/alerts with one alert, so the routing, grouping,
silences and inhibitions already set up in Alertmanager apply to the optimizer's alerts."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from mimir_limit_optimizer.alerting.channels.amformat import api_alert
from mimir_limit_optimizer.alerting.channels.http import HttpSender
from mimir_limit_optimizer.alerting.model import Alert
from mimir_limit_optimizer.alerting.redact import Redactor
from mimir_limit_optimizer.config.alerting import AlertmanagerSettings
from mimir_limit_optimizer.config.secrets import redact_url

API_PATH = "/api/v2/alerts"


def header_values(headers: Mapping[str, str | SecretStr]) -> dict[str, str]:
    """Plain header values (SecretStr unwrapped: they are sent, never shown)."""
    return {
        key: value if isinstance(value, str) else value.get_secret_value()
        for key, value in headers.items()
    }


def secret_values(headers: Mapping[str, str | SecretStr]) -> list[str]:
    return [value.get_secret_value() for value in headers.values() if isinstance(value, SecretStr)]


class AlertmanagerChannel:
    kind = "alertmanager"

    def __init__(
        self,
        settings: AlertmanagerSettings,
        *,
        name: str = "alertmanager",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        assert settings.url is not None  # checked by channels.build
        self.name = name
        self.settings = settings
        self._url = settings.url.rstrip("/") + API_PATH
        self._headers = header_values(settings.headers)
        password = urlsplit(settings.url).password if "@" in settings.url else None
        self.redact = Redactor([password, *secret_values(settings.headers)])
        self._http = HttpSender.for_channel(
            "Alertmanager", settings, redact=self.redact, transport=transport
        )

    def payload(self, alert: Alert) -> list[dict[str, object]]:
        return [
            api_alert(
                alert,
                extra_labels=self.settings.extra_labels,
                generator_url=self.settings.generator_url,
                resolve_timeout=self.settings.resolve_timeout,
            )
        ]

    def send(self, alert: Alert) -> None:
        self._http.send(self._url, self.payload(alert), headers=self._headers)

    def describe(self) -> str:
        return f"Alertmanager {redact_url(self._url)}"

    def close(self) -> None:
        self._http.close()
