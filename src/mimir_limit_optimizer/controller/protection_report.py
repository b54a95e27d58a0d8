"""How protection reports the engine's events: audit events (category `security`) and alerts
through the shared Reporter, and its counters (declared in observability/protection_metrics.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from mimir_limit_optimizer.alerting.model import AlertSink, AlertStatus, Priority, Severity
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.reporter import Reporter
from mimir_limit_optimizer.engine.protection import Event, Level
from mimir_limit_optimizer.observability.protection_metrics import ProtectionMetrics
from mimir_limit_optimizer.store import AuditLog

COMPONENT = "protection"
# Engine events that imply a limit change: reported as "would_<action>" when not acting.
ACTING_EVENTS = frozenset(
    {
        "circuit_breaker_open",
        "circuit_breaker_relapse",
        "circuit_breaker_half_open",
        "circuit_breaker_recovery_step",
        "circuit_breaker_closed",
        "emergency_action",
        "emergency_recovery_step",
    }
)
_LEVEL_PRIORITY = MappingProxyType(
    {
        Level.WARNING: Priority.P2,
        Level.EMERGENCY: Priority.P1,
        Level.PANIC: Priority.P0,
    }
)
_LEVEL_SEVERITY = MappingProxyType(
    {
        Level.WARNING: Severity.WARNING,
        Level.EMERGENCY: Severity.ERROR,
        Level.PANIC: Severity.CRITICAL,
    }
)


class ProtectionReporter:
    """Audit, alerts and metrics of protection. Emitting never raises: a store failure is
    logged (the audit line is still written to the log by AuditLog)."""

    def __init__(
        self,
        *,
        audit: AuditLog,
        alerts: AlertSink,
        metrics: ProtectionMetrics,
        logger: logging.Logger,
    ) -> None:
        self.metrics = metrics
        self.log = logger
        self.shared = Reporter(
            audit=audit, alerts=alerts, logger=logger, component=COMPONENT, category="security"
        )

    def event(
        self, now: float, action: str, tenant: str | None, details: Mapping[str, Any], level: str
    ) -> None:
        self.shared.event(now, action, level=level, tenant=tenant, details=details)

    def alert(
        self,
        kind: str,
        priority: Priority,
        severity: Severity,
        summary: str,
        *,
        dedup_key: str,
        now: float,
        tenant: str | None = None,
        details: Mapping[str, Any] | None = None,
        status: AlertStatus = AlertStatus.FIRING,
    ) -> None:
        self.shared.alert(
            now,
            kind,
            dedup_key,
            (priority, severity),
            summary,
            tenant=tenant,
            resolved=status is AlertStatus.RESOLVED,
            details=details,
        )

    def record(self, event: Event, config: Config, now: float, *, acting: bool, why: str) -> None:
        """Audit, alert and count one engine event."""
        mode = config.mode.value
        action = (
            event.action if acting or event.action not in ACTING_EVENTS else f"would_{event.action}"
        )
        details = {**event.details, "mode": mode}
        if not acting and event.action in ACTING_EVENTS:
            details["why"] = why
        self.event(now, action, event.tenant, details, event.level)
        would = "" if acting else "would "
        suffix = "" if acting else f" [{why}: nothing written]"
        d = event.details
        if event.action in ("circuit_breaker_open", "circuit_breaker_relapse"):
            self.metrics.blast_detections_total.labels(kind=str(d["kind"])).inc()
            relapse = event.action.endswith("relapse")
            verb = (
                ("re-open" if relapse else "open")
                if would
                else ("re-opened" if relapse else "opened")
            )
            caps = ", ".join(
                f"{c['limit']} {c['old']:g} -> {c['new']:g}" for c in d.get("changes", [])
            )
            self.alert(
                "circuit_breaker_open",
                Priority.P1,
                Severity.ERROR if acting else Severity.WARNING,
                f"Circuit breaker {would}{verb} for {event.tenant} ({d['kind']}): {d['reason']}"
                + (f"; {would}clamp {caps}" if caps else "; no limit tighter than Mimir's own")
                + suffix,
                dedup_key=f"circuit_breaker:{event.tenant}:{d['kind']}",
                now=now,
                tenant=event.tenant,
                details=details,
            )
        elif event.action == "circuit_breaker_closed":
            self.alert(
                "circuit_breaker_open",
                Priority.P3,
                Severity.INFO,
                f"Circuit breaker {'would close' if would else 'closed'} for {event.tenant} "
                f"({d['kind']}): limits restored{suffix}",
                dedup_key=f"circuit_breaker:{event.tenant}:{d['kind']}",
                now=now,
                tenant=event.tenant,
                details=details,
                status=AlertStatus.RESOLVED,
            )
        elif event.action == "circuit_breaker_recovery_step":
            self.metrics.recovery_attempts_total.labels(kind="breaker").inc()
        elif event.action == "blast_detected":
            self.metrics.blast_detections_total.labels(kind=f"global_{d['detector']}").inc()
            self.alert(
                "blast_detected",
                Priority.P1,
                Severity.ERROR,
                f"Cluster {d['detector']} blast: {d['total']:g} > {d['threshold']:g}; "
                + (
                    f"top contributors: {', '.join(d['contributors'])}"
                    if d["contributors"]
                    else "no tenant is above its baseline"
                ),
                dedup_key=f"blast:{d['detector']}",
                now=now,
                details=details,
            )
        elif event.action == "blast_cleared":
            self.alert(
                "blast_detected",
                Priority.P3,
                Severity.INFO,
                f"Cluster {d['detector']} back under {d['threshold']:g}",
                dedup_key=f"blast:{d['detector']}",
                now=now,
                details=details,
                status=AlertStatus.RESOLVED,
            )
        elif event.action == "emergency_level_changed":
            self.level_alerts(event, now, details)
        elif event.action == "emergency_action":
            self.metrics.emergency_actions_total.labels(action=str(d["action"]), mode=mode).inc()
            if d.get("note"):
                self.alert(
                    "emergency_unattributable",
                    Priority.P1,
                    Severity.ERROR,
                    f"Cluster pressure ({d['level']}) is not caused by tenants above their "
                    "baselines: add capacity (nothing was reduced)",
                    dedup_key="emergency:unattributable",
                    now=now,
                    details=details,
                )
        elif event.action == "emergency_recovery_step":
            self.metrics.recovery_attempts_total.labels(kind="emergency").inc()
        elif event.action == "emergency_recovery_complete":
            self.alert(
                "emergency_recovery_complete",
                Priority.P3,
                Severity.INFO,
                f"Emergency recovery {'would be ' if would else ''}complete: every limit is "
                f"back where it was{suffix}",
                dedup_key="emergency:recovery",
                now=now,
                details=details,
            )

    def level_alerts(self, event: Event, now: float, details: Mapping[str, Any]) -> None:
        d = event.details
        new, old = Level[str(d["to"]).upper()], Level[str(d["from"]).upper()]
        if new > old:
            for level in Level:
                if old < level <= new:
                    self.metrics.panic_mode_activations_total.labels(level=level.label).inc()
            if d.get("alert", True):
                signals = ", ".join(f"{k} {v}" for k, v in dict(d.get("signals", {})).items())
                self.alert(
                    "emergency_level",
                    _LEVEL_PRIORITY[new],
                    _LEVEL_SEVERITY[new],
                    f"Mimir cluster at {new.label.upper()} level ({signals})",
                    dedup_key=f"emergency_level:{new.label}",
                    now=now,
                    details=details,
                )
        for level in Level:
            if new < level <= old and level is not Level.NORMAL:
                self.alert(
                    "emergency_level",
                    _LEVEL_PRIORITY[level],
                    Severity.INFO,
                    f"Mimir cluster back under the {level.label} level (now {new.label})",
                    dedup_key=f"emergency_level:{level.label}",
                    now=now,
                    details=details,
                    status=AlertStatus.RESOLVED,
                )
