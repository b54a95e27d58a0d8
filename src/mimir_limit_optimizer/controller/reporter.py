"""One way to report, shared by the reconcile cycle, protection and cost control: audit events
(store + JSON log line) and alerts (the AlertSink). Reporting never raises: a store failure is
logged (AuditLog still writes the event's log line), and an alert sink never blocks."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from mimir_limit_optimizer.alerting.model import Alert, AlertSink, AlertStatus, Priority, Severity
from mimir_limit_optimizer.store import AuditEvent, AuditLog, StoreError


class Reporter:
    """`component` and `category` are the defaults of this reporter's events; every call may
    name others (a cycle reports for the source, the target and the verifier)."""

    def __init__(
        self,
        *,
        audit: AuditLog,
        alerts: AlertSink | None,
        logger: logging.Logger,
        component: str,
        category: str = "system",
    ) -> None:
        self.audit = audit
        self.alerts = alerts  # None: alerts go nowhere
        self.log = logger
        self.component = component
        self.category = category

    def event(
        self,
        now: float,
        action: str,
        *,
        level: str = "info",
        tenant: str | None = None,
        component: str | None = None,
        category: str | None = None,
        details: Mapping[str, Any] | None = None,
        **more: object,
    ) -> None:
        """Audit `action`. Details come from `details` and keyword arguments."""
        payload = {**(details or {}), **more}
        event = AuditEvent(
            now,
            level,
            category or self.category,
            component or self.component,
            action,
            tenant,
            payload,
        )
        try:
            self.audit.record(event)
        except StoreError as exc:
            self.log.error("audit event %s not stored: %s", action, exc)

    def events(self, events: Sequence[AuditEvent]) -> None:
        """Audit `events` in one store transaction (a cycle's dry-run changes)."""
        try:
            self.audit.record_many(events)
        except StoreError as exc:
            self.log.error("%d audit events not stored: %s", len(events), exc)

    def alert(
        self,
        now: float,
        kind: str,
        dedup_key: str,
        level: tuple[Priority, Severity],
        summary: str = "",
        *,
        component: str | None = None,
        tenant: str | None = None,
        resolved: bool = False,
        details: Mapping[str, Any] | None = None,
        **more: object,
    ) -> None:
        """Emit an alert, or (`resolved`) the end of the incident `dedup_key`: channels that
        were notified of it hear it is over; the others hear nothing."""
        if self.alerts is None:
            return
        priority, severity = level
        self.alerts.emit(
            Alert(
                type=kind,
                priority=priority,
                severity=severity,
                summary=summary or kind,
                component=component or self.component,
                dedup_key=dedup_key,
                timestamp=now,
                tenant=tenant,
                details={**(details or {}), **more},
                status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
            )
        )


def audit_quietly(audit: AuditLog, event: AuditEvent, log: logging.Logger) -> None:
    """Audit `event`; a failing store is logged, not raised (the log line stands)."""
    try:
        audit.record(event)
    except StoreError as exc:
        log.warning("could not audit %s: %s", event.action, exc)
