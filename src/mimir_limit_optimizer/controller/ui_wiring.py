"""Builds the web UI's read model and actions from a running service's parts, and the hook
that installs the UI onto the UI port's app. The service calls `ServiceUi.cycle_finished`
after each cycle and `ServiceUi.effective` to apply a freeze set from the UI."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.read_model import ServiceReadModel
from mimir_limit_optimizer.controller.reconcile import CycleResult
from mimir_limit_optimizer.controller.ui_actions import ActionParts, ServiceActions
from mimir_limit_optimizer.controller.ui_parts import ServiceParts, SharedParts
from mimir_limit_optimizer.controller.ui_sessions import StoreSessions
from mimir_limit_optimizer.controller.ui_tools import ServiceTools
from mimir_limit_optimizer.controller.wiring import source_factory

if TYPE_CHECKING:
    from mimir_limit_optimizer.controller.service import Service

TOKEN_FILE = "ui-token"


class ServiceUi:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.cycle_requested = threading.Event()
        provider = service.provider
        env = dict(getattr(provider, "_env", {}) or os.environ)
        cli: dict[str, Any] = dict(getattr(provider, "_cli", {}) or {})

        def path() -> str | None:
            return str(provider.path) if provider.path is not None else None

        factory = source_factory(env)
        shared = SharedParts(
            config=lambda: provider.config,
            config_path=path,
            env=env,
            cli=cli,
            catalogue=service.catalogue,
            store=service.store,
            applier=service.applier,
            clock=service.clock,
        )
        self.actions = ServiceActions(
            ActionParts(
                **vars(shared),
                audit=service.audit,
                protection_enable=service.protection.enable,
                protection_disable=service.protection.disable,
                request_cycle=self.cycle_requested.set,
            )
        )
        self.read_model = ServiceReadModel(
            ServiceParts(
                **vars(shared),
                health=service.health,
                protection_status=service.protection.status,
                alerting_status=service.alerting.status,
                cost_by_tenant=self._costs,
                source_factory=factory,
                runtime_freeze=self.actions.frozen_by,
                peak_memory=lambda: service.reconciler.peak_memory.memory,
                logger=logging.getLogger("mimir_limit_optimizer.ui"),
            )
        )
        self.tools = ServiceTools(self.read_model, factory)
        self._generated: str | None = None

    def _costs(self) -> tuple[dict[str, float], str] | None:
        """Month-to-date cost per tenant from cost control's last report (None: no report)."""
        report = self.service.cost.report
        if report is None or "month" not in report.spent:
            return None
        spent = report.spent["month"]
        tenants = report.scopes.tenants
        return {t: float(spent[i]) for i, t in enumerate(tenants)}, report.currency

    def effective(self, config: Config) -> Config:
        """The config a cycle runs with: `safety.freeze` on while frozen from the UI."""
        if self.actions.frozen_by() is None or config.safety.freeze:
            return config
        return config.model_copy(
            update={"safety": config.safety.model_copy(update={"freeze": True})}
        )

    def cycle_finished(self, result: CycleResult, *, at: float, duration: float) -> None:
        self.read_model.cycle_finished(result, at=at, duration=duration)

    def _fallback_token(self) -> str | None:
        return self._generated

    def prepare_login(self, log: logging.Logger) -> None:
        """Without `ui.auth`, a random token is written to <dataDir>/ui-token (mode 0600) so
        the operator can log in; its path (never the token) goes to the log."""
        auth = self.service.provider.config.ui.auth
        if auth.token is not None or auth.token_file or auth.users:
            return
        folder = Path(self.service.provider.config.data_dir)
        path = folder / TOKEN_FILE
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if path.exists():
                token = path.read_text(encoding="utf-8").strip()
            else:
                token = secrets.token_urlsafe(24)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(token + "\n")
        except OSError as exc:
            log.warning("no UI login: cannot write %s (%s); set ui.auth", path, exc)
            return
        self._generated = token or None
        log.info("UI login token (no ui.auth configured): in %s", path)

    def extend(self, app: FastAPI) -> None:
        from mimir_limit_optimizer.web.ui import UiParts, install_ui  # templates load on serving

        provider = self.service.provider
        install_ui(
            app,
            UiParts(
                read=self.read_model,
                actions=self.actions,
                settings=lambda: provider.config.ui,
                host=provider.config.server.host,
                clock=self.service.clock,
                tools=self.tools,
                fallback_token=self._fallback_token,
                sessions=StoreSessions(
                    self.service.store, logging.getLogger("mimir_limit_optimizer.ui")
                ),
            ),
        )
