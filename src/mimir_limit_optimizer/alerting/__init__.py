"""Alerting: the alert model, routing, channels and fault-tolerant delivery.

Producers emit `Alert`s into an `AlertSink` (the `AlertingManager` in the service); the
manager routes them, stores one delivery per channel in the persistent queue and delivers
them through the retry stage. See docs/alerting.md."""

from mimir_limit_optimizer.alerting.manager import AlertingManager
from mimir_limit_optimizer.alerting.model import (
    Alert,
    AlertSink,
    AlertStatus,
    CollectingSink,
    Priority,
    Severity,
)
from mimir_limit_optimizer.alerting.probe import ProbeResult, send_test_alert

__all__ = [
    "Alert",
    "AlertSink",
    "AlertStatus",
    "AlertingManager",
    "CollectingSink",
    "Priority",
    "ProbeResult",
    "Severity",
    "send_test_alert",
]
