"""Alerts as Alertmanager sees them: the API v2 alert object (POST /api/v2/alerts) and the
webhook receiver payload (version 4), for the Alertmanager channel and for webhooks with
`format: alertmanager`.

Labels identify an alert in Alertmanager (its fingerprint), so they hold only fields that
stay the same between firing and resolved: alertname (the type), severity, priority,
component, tenant and dedup_key. The summary and the details are annotations."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from mimir_limit_optimizer.alerting.codec import SOURCE, detail_lines, iso, title, truncate
from mimir_limit_optimizer.alerting.model import Alert, AlertStatus

ANNOTATION_LIMIT = 4096
# Alertmanager's "zero" endsAt of a firing alert in webhook payloads.
ZERO_TIME = "0001-01-01T00:00:00Z"


def labels(alert: Alert, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    out = {
        **(extra or {}),
        "alertname": alert.type,
        "severity": alert.severity.value,
        "priority": alert.priority.value,
        "component": alert.component,
        "dedup_key": alert.dedup_key,
        "source": SOURCE,
    }
    if alert.tenant:
        out["tenant"] = alert.tenant
    return out


def annotation_set(alert: Alert) -> dict[str, str]:
    out = {"summary": truncate(alert.summary, ANNOTATION_LIMIT)}
    lines = detail_lines(alert)
    if lines:
        out["description"] = truncate("\n".join(lines), ANNOTATION_LIMIT)
    return out


def api_alert(
    alert: Alert,
    *,
    extra_labels: Mapping[str, str] | None = None,
    generator_url: str | None = None,
    resolve_timeout: float | None = None,
) -> dict[str, Any]:
    """One postableAlert of Alertmanager's API v2. A resolved alert carries endsAt = the
    resolution time (Alertmanager resolves it); a firing one carries endsAt only when
    `resolve_timeout` is set (else Alertmanager applies its own resolve_timeout)."""
    body: dict[str, Any] = {
        "labels": labels(alert, extra_labels),
        "annotations": annotation_set(alert),
        "startsAt": iso(alert.timestamp),
    }
    if alert.status is AlertStatus.RESOLVED:
        body["endsAt"] = iso(alert.timestamp)
    elif resolve_timeout is not None:
        body["endsAt"] = iso(alert.timestamp + resolve_timeout)
    if generator_url:
        body["generatorURL"] = generator_url
    return body


def fingerprint(label_set: Mapping[str, str]) -> str:
    """A stable 16-hex-digit id of a label set (the role of Alertmanager's fingerprint)."""
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(label_set.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def webhook_payload(alert: Alert, *, receiver: str) -> dict[str, Any]:
    """Alertmanager's webhook_config payload (version 4) holding this one alert."""
    label_set = labels(alert)
    notes = annotation_set(alert)
    resolved = alert.status is AlertStatus.RESOLVED
    group = {"alertname": alert.type}
    return {
        "version": "4",
        "groupKey": "{}:{" + ",".join(f'{k}="{v}"' for k, v in sorted(group.items())) + "}",
        "truncatedAlerts": 0,
        "status": alert.status.value,
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": label_set,
        "commonAnnotations": notes,
        "externalURL": "",
        "title": title(alert),
        "alerts": [
            {
                "status": alert.status.value,
                "labels": label_set,
                "annotations": notes,
                "startsAt": iso(alert.timestamp),
                "endsAt": iso(alert.timestamp) if resolved else ZERO_TIME,
                "generatorURL": "",
                "fingerprint": fingerprint(label_set),
            }
        ],
    }
