"""Slack incoming webhook: a coloured attachment (colour by priority, green when resolved)
holding Block Kit blocks: header, summary, fields, details, context.

Slack's limits, applied by truncation: header text 150 characters, section text 3000,
at most 10 fields of 2000 each, fallback `text` 3000 (shown in notifications)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import httpx

from mimir_limit_optimizer.alerting.channels.http import HttpSender
from mimir_limit_optimizer.alerting.codec import detail_lines, iso, title, truncate
from mimir_limit_optimizer.alerting.model import Alert, AlertStatus, Priority
from mimir_limit_optimizer.alerting.redact import Redactor, url_origin
from mimir_limit_optimizer.config.alerting import SlackSettings

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10
TEXT_LIMIT = 3000

COLOURS = MappingProxyType(
    {
        Priority.P0: "#B00020",  # dark red
        Priority.P1: "#E01E5A",  # red
        Priority.P2: "#ECB22E",  # amber
        Priority.P3: "#36C5F0",  # blue
    }
)
RESOLVED_COLOUR = "#2EB67D"  # green


class SlackChannel:
    kind = "slack"

    def __init__(
        self,
        settings: SlackSettings,
        *,
        name: str = "slack",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        assert settings.webhook_url is not None  # checked by channels.build
        self.name = name
        self.settings = settings
        self._url = settings.webhook_url.get_secret_value()
        self.redact = Redactor([self._url])
        self._http = HttpSender.for_channel(
            "Slack", settings, redact=self.redact, transport=transport
        )

    def payload(self, alert: Alert) -> dict[str, Any]:
        resolved = alert.status is AlertStatus.RESOLVED
        colour = RESOLVED_COLOUR if resolved else COLOURS[alert.priority]
        fields = [
            ("Priority", alert.priority.value),
            ("Severity", alert.severity.value),
            ("Status", alert.status.value),
            ("Type", alert.type),
            ("Component", alert.component),
            ("Tenant", alert.tenant),
            ("Time", iso(alert.timestamp)),
            ("Dedup key", alert.dedup_key),
        ]
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": truncate(title(alert), HEADER_LIMIT)},
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate(alert.summary or "-", SECTION_LIMIT)},
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": truncate(f"*{label}*\n{value}", FIELD_LIMIT)}
                    for label, value in fields
                    if value
                ][:MAX_FIELDS],
            },
        ]
        lines = detail_lines(alert)
        if lines:
            body = truncate("\n".join(lines), SECTION_LIMIT - 8)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{body}```"}})
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"mimir-limit-optimizer · {alert.id}"}],
            }
        )
        payload: dict[str, Any] = {
            "username": self.settings.username,
            "text": truncate(title(alert), TEXT_LIMIT),
            "attachments": [{"color": colour, "fallback": truncate(title(alert), TEXT_LIMIT),
                             "blocks": blocks}],
        }  # fmt: skip
        if self.settings.channel:
            payload["channel"] = self.settings.channel
        if self.settings.icon_emoji:
            payload["icon_emoji"] = self.settings.icon_emoji
        return payload

    def send(self, alert: Alert) -> None:
        self._http.send(self._url, self.payload(alert))

    def describe(self) -> str:
        where = f" {self.settings.channel}" if self.settings.channel else ""
        return f"Slack webhook {url_origin(self._url)}{where}"

    def close(self) -> None:
        self._http.close()
