"""How protection reports: its metrics (the seed's circuit breaker and emergency metrics,
on an injected registry), audit events (category `security`) and alerts (through the injected
AlertSink), from the engine's events."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from mimir_limit_optimizer.alerting.model import Alert, AlertSink, AlertStatus, Priority, Severity
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.config.protection import PROTECTED_LIMITS
from mimir_limit_optimizer.engine.protection import KINDS, Event, Level
from mimir_limit_optimizer.store import AuditEvent, AuditLog, StoreError

PREFIX = "mimir_limit_optimizer"
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


class ProtectionMetrics:
    """The seed's circuit breaker and emergency metrics, on an injected registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.blast_detections_total = Counter(
            f"{PREFIX}_blast_detections_total",
            "Blasts detected: per-tenant breakers opened (kind) and cluster-wide detectors "
            "(global_<detector>), in every mode.",
            ["kind"],
            registry=registry,
        )
        self.throttled_requests_total = Counter(
            f"{PREFIX}_throttled_requests_total",
            "Tenant limits clamped by protection (the optimizer is not in the data path: each "
            "clamp is one tenant x limit tightened); mode=dry-run counts the would-be clamps.",
            ["limit", "mode"],
            registry=registry,
        )
        self.panic_mode_activations_total = Counter(
            f"{PREFIX}_panic_mode_activations_total",
            "Escalations of the cluster to an emergency level (warning, emergency, panic).",
            ["level"],
            registry=registry,
        )
        self.emergency_actions_total = Counter(
            f"{PREFIX}_emergency_actions_total",
            "Emergency actions taken (mode=prod) or reported as would-be (mode=dry-run).",
            ["action", "mode"],
            registry=registry,
        )
        self.recovery_attempts_total = Counter(
            f"{PREFIX}_recovery_attempts_total",
            "Recovery steps raising clamped limits back (kind=breaker: half-open steps; "
            "kind=emergency: auto-recovery steps).",
            ["kind"],
            registry=registry,
        )
        self.resource_usage_percent = Gauge(
            f"{PREFIX}_resource_usage_percent",
            "Cluster pressure signals in percent of their capacity (the highest instance).",
            ["resource"],
            registry=registry,
        )
        self.emergency_level = Gauge(
            f"{PREFIX}_emergency_level",
            "Cluster emergency level: 0 normal, 1 warning, 2 emergency, 3 panic.",
            registry=registry,
        )
        self.circuit_breaker_enabled = Gauge(
            f"{PREFIX}_circuit_breaker_enabled",
            "1 when protection may write (prod and enabled at runtime), 0 otherwise.",
            registry=registry,
        )
        self.fast_loop_total = Counter(
            f"{PREFIX}_fast_loop_total",
            "Fast-loop ticks by result (success, failure).",
            ["result"],
            registry=registry,
        )
        self.fast_loop_duration = Histogram(
            f"{PREFIX}_fast_loop_duration_seconds",
            "Duration of one fast-loop tick (read, step, write).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        for result in ("success", "failure"):
            self.fast_loop_total.labels(result=result)
        for kind in (
            *(k.value for k in KINDS),
            "global_ingestion",
            "global_query",
            "global_series",
        ):
            self.blast_detections_total.labels(kind=kind)
        for limit in PROTECTED_LIMITS:  # 0 before the first clamp: dashboards see 0
            for mode in ("prod", "dry-run"):
                self.throttled_requests_total.labels(limit=limit, mode=mode)
        for level in ("warning", "emergency", "panic"):
            self.panic_mode_activations_total.labels(level=level)
        for kind in ("breaker", "emergency"):
            self.recovery_attempts_total.labels(kind=kind)
        self.states = BreakerStateCollector()
        registry.register(self.states)


# Index = the value of circuit_breaker_state.
BREAKER_STATE_NAMES = ("closed", "open", "half_open")


class BreakerStateCollector(Collector):
    """`circuit_breaker_state{user}` at scrape time (0 closed, 1 open, 2 half-open) for the
    tenants of the last tick; a tenant's state is its worst breaker. Closed breakers (the
    normal state, 10,000 series at 10,000 tenants) are left out unless `closed_too`: an
    absent series reads as closed. `circuit_breaker_tenants{state}` counts tenants per state."""

    def __init__(self, *, closed_too: bool = False) -> None:
        self._snapshot: tuple[tuple[str, ...], list[int]] | None = None
        self._closed_too = closed_too

    def update(self, tenants: Sequence[str], states: Iterable[int]) -> None:
        self._snapshot = (tuple(tenants), list(states))

    def describe(self) -> Iterable[Metric]:
        return [self._family(), self._counts()]

    def collect(self) -> Iterable[Metric]:
        snapshot = self._snapshot
        if snapshot is None:
            return []
        family = self._family()
        for tenant, value in zip(*snapshot, strict=True):
            if value or self._closed_too:
                family.add_metric([tenant], float(value))
        # Cluster totals, every state always present (0 included): dashboards and alerts work
        # whatever subset of the per-tenant series is exported.
        counts = self._counts()
        states = snapshot[1]
        for value, name in enumerate(BREAKER_STATE_NAMES):
            counts.add_metric([name], float(sum(1 for s in states if s == value)))
        return [family, counts]

    @staticmethod
    def _counts() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            f"{PREFIX}_circuit_breaker_tenants",
            "Tenants by circuit breaker state (closed, open, half_open) in the last fast-loop "
            "tick; a tenant counts once, in its worst state.",
            labels=["state"],
        )

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            f"{PREFIX}_circuit_breaker_state",
            "Per-tenant circuit breaker state: 1 open, 2 half-open; closed breakers are not "
            "exported (an absent series means closed).",
            labels=["user"],
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
        self.audit = audit
        self.alerts = alerts
        self.metrics = metrics
        self.log = logger

    def event(
        self, now: float, action: str, tenant: str | None, details: Mapping[str, Any], level: str
    ) -> None:
        try:
            self.audit.record(
                AuditEvent(now, level, "security", COMPONENT, action, tenant, dict(details))
            )
        except StoreError as exc:
            self.log.error("audit event %s not stored: %s", action, exc)

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
        self.alerts.emit(
            Alert(
                type=kind,
                priority=priority,
                severity=severity,
                summary=summary,
                component=COMPONENT,
                dedup_key=dedup_key,
                timestamp=now,
                tenant=tenant,
                details=dict(details or {}),
                status=status,
            )
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
