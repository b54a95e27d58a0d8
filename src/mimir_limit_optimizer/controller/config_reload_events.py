"""What the service does when its config file changes (controller/config_provider.py calls
these): refuse a config that cannot build what start-up built, and report a reload, a refused
reload and its recovery to the log, the alert channels, the reload metrics and the audit log."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from mimir_limit_optimizer.alerting import Alert, AlertingManager, Priority, Severity
from mimir_limit_optimizer.config.loader import ConfigError, LoadedConfig
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.reporter import audit_quietly
from mimir_limit_optimizer.controller.wiring import WiringError, check_parts
from mimir_limit_optimizer.observability.metrics import ControllerMetrics
from mimir_limit_optimizer.store import AuditEvent, AuditLog


class ConfigReloadEvents:
    def __init__(
        self,
        *,
        log: logging.Logger,
        clock: Callable[[], float],
        alerting: AlertingManager,
        metrics: ControllerMetrics,
        audit: AuditLog,
    ) -> None:
        self.log = log
        self.clock = clock
        self.alerting = alerting
        self.metrics = metrics
        self.audit = audit

    def check(self, config: Config) -> None:
        """A reloaded config must build what start-up built (config_provider.py)."""
        try:
            check_parts(config, os.environ)
        except WiringError as exc:
            raise ConfigError(f"{exc}: refused, the running config is kept") from exc

    def failed(self, error: ConfigError) -> None:
        now = self.clock()
        self.log.error("config reload failed, keeping the last good config: %s", error)
        self.alerting.emit(self._alert(now, f"config reload failed: {error}"))
        self.metrics.config_reloads_total.labels(result="failure").inc()
        self.metrics.config_last_reload_successful.set(0)
        audit_quietly(
            self.audit,
            AuditEvent(
                now,
                "error",
                "system",
                "config",
                "config_reload_failed",
                None,
                {"error": str(error)},
            ),
            self.log,
        )

    def recovered(self, loaded: LoadedConfig) -> None:
        """The refused file was replaced by the running one again: the failure is over."""
        now = self.clock()
        self.log.info("config file is back to the running config: reload failure cleared")
        self.alerting.emit(self._alert(now, "config file restored").resolved(now))
        self.metrics.config_last_reload_successful.set(1)
        audit_quietly(
            self.audit,
            AuditEvent(now, "info", "system", "config", "config_reload_recovered", None,
                       {"mode": loaded.config.mode.value}),
            self.log,
        )  # fmt: skip

    def _alert(self, now: float, summary: str) -> Alert:
        return Alert(
            "config_reload_failed",
            Priority.P2,
            Severity.ERROR,
            summary,
            "config",
            "config_reload_failed",
            now,
        )

    def reloaded(self, loaded: LoadedConfig) -> None:
        now = self.clock()
        self.log.info("config reloaded: mode %s", loaded.config.mode.value)
        # Keys that need a restart never reach here: the provider refuses such a reload
        # (config_provider.RESTART_ONLY).
        self.alerting.configure(loaded.config.alerting)  # channels recover without a restart
        self.alerting.emit(self._alert(now, "config reloaded").resolved(now))
        self.metrics.config_reloads_total.labels(result="success").inc()
        self.metrics.config_last_reload_successful.set(1)
        audit_quietly(
            self.audit,
            AuditEvent(
                now,
                "info",
                "system",
                "config",
                "config_reloaded",
                None,
                {"mode": loaded.config.mode.value},
            ),
            self.log,
        )
