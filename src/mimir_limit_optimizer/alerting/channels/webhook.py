"""Generic webhook: the alert as JSON (this optimizer's object, or Alertmanager's webhook
payload with `format: alertmanager`) sent with POST, PUT or PATCH and custom headers.

Each request carries `Idempotency-Key` (dedup key, status and alert time): a receiver that
honours it ignores the duplicate a retry or a restart mid-delivery may cause."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from mimir_limit_optimizer.alerting.channels.alertmanager import header_values, secret_values
from mimir_limit_optimizer.alerting.channels.amformat import webhook_payload
from mimir_limit_optimizer.alerting.channels.http import HttpSender
from mimir_limit_optimizer.alerting.codec import to_payload
from mimir_limit_optimizer.alerting.model import Alert
from mimir_limit_optimizer.alerting.redact import Redactor, url_origin
from mimir_limit_optimizer.config.alerting import WebhookSettings

METHODS = ("POST", "PUT", "PATCH")
FORMATS = ("json", "alertmanager")


def idempotency_key(alert: Alert) -> str:
    text = f"{alert.dedup_key}\x00{alert.status.value}\x00{alert.timestamp!r}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class WebhookChannel:
    kind = "webhook"

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        name: str,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        assert settings.url is not None  # checked by channels.build
        self.name = name
        self.settings = settings
        self._url = settings.url.get_secret_value()
        self._method = settings.method.upper()
        self._headers = header_values(settings.headers)
        self.redact = Redactor([self._url, *secret_values(settings.headers)])
        self._http = HttpSender.for_channel(
            f"webhook {name.removeprefix('webhook:')}",
            settings,
            redact=self.redact,
            transport=transport,
        )

    def payload(self, alert: Alert) -> dict[str, Any]:
        if self.settings.format == "alertmanager":
            return webhook_payload(alert, receiver=self.name)
        return to_payload(alert)

    def send(self, alert: Alert) -> None:
        headers = {"Idempotency-Key": idempotency_key(alert), **self._headers}
        self._http.send(self._url, self.payload(alert), method=self._method, headers=headers)

    def describe(self) -> str:
        return f"{self._method} {url_origin(self._url)} ({self.settings.format})"

    def close(self) -> None:
        self._http.close()
