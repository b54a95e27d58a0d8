"""Alerts as plain JSON (the store's payload column, webhook bodies) and back, and the
helpers every channel formats with: ISO times, truncation to a service's limits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mimir_limit_optimizer.alerting.model import Alert, AlertStatus, Priority, Severity

SOURCE = "mimir-limit-optimizer"
ELLIPSIS = "…"


def iso(timestamp: float) -> str:
    """Unix seconds as RFC 3339 UTC with milliseconds ("2024-01-15T10:30:00.000Z")."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marked with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS


def plain_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Details as JSON data; what JSON cannot hold becomes its str() (never an error: a
    producer's odd value must not cost the alert)."""
    data = json.loads(json.dumps(dict(details), default=str))
    return data if isinstance(data, dict) else {}


def to_payload(alert: Alert) -> dict[str, Any]:
    """The alert as the JSON object the store keeps and generic webhooks receive."""
    return {
        "id": alert.id,
        "type": alert.type,
        "status": alert.status.value,
        "priority": alert.priority.value,
        "severity": alert.severity.value,
        "summary": alert.summary,
        "component": alert.component,
        "tenant": alert.tenant,
        "dedupKey": alert.dedup_key,
        "timestamp": alert.timestamp,
        "time": iso(alert.timestamp),
        "details": plain_details(alert.details),
        "source": SOURCE,
    }


def from_payload(data: Mapping[str, Any]) -> Alert:
    """Inverse of `to_payload` (extra keys are ignored)."""
    tenant = data.get("tenant")
    return Alert(
        type=str(data["type"]),
        priority=Priority(data["priority"]),
        severity=Severity(data["severity"]),
        summary=str(data["summary"]),
        component=str(data["component"]),
        dedup_key=str(data["dedupKey"]),
        timestamp=float(data["timestamp"]),
        tenant=None if tenant is None else str(tenant),
        details=dict(data.get("details") or {}),
        status=AlertStatus(data.get("status", "firing")),
    )


def title(alert: Alert) -> str:
    """One line: "[P1] FIRING apply_failed: the write to runtime.yaml failed"."""
    state = "RESOLVED" if alert.status is AlertStatus.RESOLVED else "FIRING"
    return f"[{alert.priority.value}] {state} {alert.type}: {alert.summary}"


def detail_lines(alert: Alert) -> list[str]:
    """ "key: value" lines of the details (values as compact JSON when not strings)."""
    lines = []
    for key, value in plain_details(alert.details).items():
        shown = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        lines.append(f"{key}: {shown}")
    return lines
