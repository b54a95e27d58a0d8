"""PagerDuty Events API v2: trigger and resolve with a deterministic dedup_key, so a resend
(a retry, a restart mid-delivery) updates the same incident instead of opening another.

Limits, applied by truncation: summary 1024 characters, dedup_key 255, source/component/
group/class 255 (PagerDuty rejects longer fields with 400)."""

from __future__ import annotations

import hashlib
from types import MappingProxyType
from typing import Any

import httpx

from mimir_limit_optimizer.alerting.channels.http import HttpSender
from mimir_limit_optimizer.alerting.codec import SOURCE, iso, plain_details, truncate
from mimir_limit_optimizer.alerting.model import Alert, AlertStatus, Severity
from mimir_limit_optimizer.alerting.redact import Redactor, url_origin
from mimir_limit_optimizer.config.alerting import PagerDutySettings

SUMMARY_LIMIT = 1024
DEDUP_LIMIT = 255
FIELD_LIMIT = 255

# Our severities are PagerDuty's four, one to one.
SEVERITIES = MappingProxyType(
    {
        Severity.CRITICAL: "critical",
        Severity.ERROR: "error",
        Severity.WARNING: "warning",
        Severity.INFO: "info",
    }
)


def dedup_key(alert: Alert) -> str:
    """`mlo:<dedup key>`; a key too long for PagerDuty keeps a prefix and a hash of all."""
    key = f"mlo:{alert.dedup_key}"
    if len(key) <= DEDUP_LIMIT:
        return key
    digest = hashlib.sha256(alert.dedup_key.encode("utf-8")).hexdigest()
    return f"{key[: DEDUP_LIMIT - len(digest) - 1]}:{digest}"


class PagerDutyChannel:
    kind = "pagerduty"

    def __init__(
        self,
        settings: PagerDutySettings,
        *,
        name: str = "pagerduty",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        assert settings.integration_key is not None  # checked by channels.build
        self.name = name
        self.settings = settings
        self._key = settings.integration_key.get_secret_value()
        self.redact = Redactor([self._key])
        self._http = HttpSender.for_channel(
            "PagerDuty", settings, redact=self.redact, transport=transport
        )

    def payload(self, alert: Alert) -> dict[str, Any]:
        event: dict[str, Any] = {"routing_key": self._key, "dedup_key": dedup_key(alert)}
        if alert.status is AlertStatus.RESOLVED:
            event["event_action"] = "resolve"
            return event
        details = plain_details(alert.details)
        details.update(priority=alert.priority.value, type=alert.type, alert_id=alert.id)
        if alert.tenant:
            details["tenant"] = alert.tenant
        event["event_action"] = "trigger"
        event["payload"] = {
            "summary": truncate(alert.summary or alert.type, SUMMARY_LIMIT),
            "source": truncate(self.settings.source, FIELD_LIMIT),
            "severity": SEVERITIES[alert.severity],
            "timestamp": iso(alert.timestamp),
            "component": truncate(alert.component, FIELD_LIMIT),
            "group": truncate(alert.tenant or SOURCE, FIELD_LIMIT),
            "class": truncate(alert.type, FIELD_LIMIT),
            "custom_details": details,
        }
        event["client"] = "Mimir Limit Optimizer"
        return event

    def send(self, alert: Alert) -> None:
        self._http.send(self.settings.url, self.payload(alert))

    def describe(self) -> str:
        return f"PagerDuty Events API v2 at {url_origin(self.settings.url)}"

    def close(self) -> None:
        self._http.close()
