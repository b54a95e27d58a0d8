"""The alert model every producer uses (controller, protection, cost) and the sink protocol
they emit into. Emitting never blocks and never raises: delivery is the alerting package's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol


class Priority(StrEnum):
    P0 = "P0"  # all channels, immediately
    P1 = "P1"  # PagerDuty + Slack
    P2 = "P2"  # Slack + email
    P3 = "P3"  # email + webhook


class Severity(StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Alert:
    type: str  # e.g. "limits_applied", "reload_failed", "budget_threshold", "blast_detected"
    priority: Priority
    severity: Severity
    summary: str
    component: str
    dedup_key: str  # same key = same incident (deduplicated, resolved together)
    timestamp: float  # unix seconds, passed in (no clock reads in producers)
    tenant: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    status: AlertStatus = AlertStatus.FIRING

    @property
    def id(self) -> str:
        """The Go optimizer's alert id: type and creation time in milliseconds
        ("cost_violation-1642248600123"); for logs, not for deduplication."""
        return f"{self.type}-{round(self.timestamp * 1000)}"

    def resolved(self, timestamp: float) -> Alert:
        """The resolved notification of this alert (same dedup key), at `timestamp`."""
        return replace(self, status=AlertStatus.RESOLVED, timestamp=timestamp)


class AlertSink(Protocol):
    def emit(self, alert: Alert) -> None:
        """Queue `alert` for delivery; never blocks, never raises."""
        ...


class CollectingSink:
    """An AlertSink that keeps what it is given (tests, dry runs)."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)
