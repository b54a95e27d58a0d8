"""Blast protection and panic mode in the service: the fast loop, the plan guard, runtime
control and status.

`Protection.fast_hook(config, now)` is one fast-loop tick: read the fast signals (one query per
signal for all tenants), advance the pure state machines (engine.protection), then
- prod, enabled: write the caps (and recovery steps, restores) through the Applier as a plan
  of changes with reasons: compare-and-swap, validation, revision, verify, rollback;
- dry-run, or disabled at runtime: audit and alert the same as "would ..." and write nothing
  (in prod a runtime disable restores the values protection had written);
and persist the state in a store checkpoint, so a restart resumes open breakers and caps.

`Protection` is a PlanGuard for the slow cycle: it hands every active cap to the planning
function (engine/planning.py), which holds it (a change may only end at or below the cap), so
the slow cycle never undoes protection. The decisions live in engine/protection/guard.py.
Only values protection wrote itself are ever raised back (recovery, restore); a value someone
else changed meanwhile is left alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from mimir_limit_optimizer.alerting.model import AlertSink, AlertStatus, Priority, Severity
from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import Config, Mode
from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.controller.protection_report import ProtectionReporter
from mimir_limit_optimizer.controller.protection_sources import FastSourceFactory
from mimir_limit_optimizer.controller.protection_state import (
    CHECKPOINT_KEY,
    acting,
    load_runtime_switch,
    load_state,
    runtime_switch,
    save_runtime_switch,
    stored_caps,
)
from mimir_limit_optimizer.controller.protection_status import status_of
from mimir_limit_optimizer.controller.protection_writes import ClampWriter
from mimir_limit_optimizer.engine.overrides import (
    OverridesDocument,
    OverridesParseError,
    parse_overrides,
)
from mimir_limit_optimizer.engine.planning import CyclePlan, GuardInputs
from mimir_limit_optimizer.engine.protection import (
    ProtectionState,
    StepResult,
    TenantPolicy,
    resolve_policy,
    settle,
    step,
    tenant_states,
)
from mimir_limit_optimizer.engine.protection.guard import (
    active_caps,
    file_limits,
    in_force,
)
from mimir_limit_optimizer.observability.protection_metrics import ProtectionMetrics
from mimir_limit_optimizer.sources.base import SourceError
from mimir_limit_optimizer.sources.fast_signals import FastSource
from mimir_limit_optimizer.store import AuditLog, Store, StoreError
from mimir_limit_optimizer.targets.base import Content, TargetError

__all__ = [
    "CHECKPOINT_KEY",
    "FastSourceFactory",
    "Protection",
    "build_protection",
    "stored_caps",
]

# Consecutive failed ticks before the "fast loop failing" alert.
FAILURES_BEFORE_ALERT = 4
# The state is checkpointed when something changed, and at least this often (seconds).
CHECKPOINT_EVERY = 60.0
# After this many fast-loop intervals without a tick, the checkpoint is re-read first.
STALE_AFTER = 4


# --- the service part -----------------------------------------------------------------------
class Protection:
    """Fast loop, plan guard, runtime switch and status. Thread-safe: the service loop calls
    `fast_hook` and `guard`, the API thread `status`, `enable`, `disable`."""

    def __init__(
        self,
        config: Config,
        *,
        catalogue: Catalogue,
        applier: Applier,
        store: Store,
        audit: AuditLog,
        alerts: AlertSink,
        registry: CollectorRegistry,
        source_factory: FastSourceFactory,
        clock: Callable[[], float],
        logger: logging.Logger | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.applier = applier
        self.store = store
        self.audit = audit
        self.alerts = alerts
        self.source_factory = source_factory
        self.clock = clock
        self.log = logger or logging.getLogger("mimir_limit_optimizer.protection")
        self.metrics = ProtectionMetrics(registry)
        self.report = ProtectionReporter(
            audit=audit, alerts=alerts, metrics=self.metrics, logger=self.log
        )
        self.writer = ClampWriter(
            applier=applier, catalogue=catalogue, report=self.report, metrics=self.metrics
        )
        self._lock = threading.RLock()
        self._config = config
        self._source: FastSource | None = None
        self._source_config: Config | None = None
        self._policy_cache: tuple[int, tuple[str, ...], TenantPolicy] | None = None
        self._doc_cache: tuple[str, OverridesDocument] | None = None
        self._limits_cache: tuple[str, dict[str, dict[str, float]]] | None = None
        self._last: StepResult | None = None
        self._failures = 0
        self._last_error: str | None = None
        self._last_saved = -math.inf
        self._override: bool | None = None
        self._override_base: bool | None = None
        self.state = self._load_state()
        self._load_runtime()

    # -- persistence ------------------------------------------------------------------------
    def _load_state(self) -> ProtectionState:
        return load_state(self.store, self.log)

    def _save(self, now: float, *, force: bool) -> None:
        if not force and now - self._last_saved < CHECKPOINT_EVERY:
            return
        data = json.dumps(self.state.to_json(), separators=(",", ":")).encode()
        self.store.save_checkpoint(CHECKPOINT_KEY, data, at=now)
        self._last_saved = now

    def _load_runtime(self) -> None:
        try:
            switch = load_runtime_switch(self.store)
        except (ValueError, KeyError, TypeError):
            self.log.warning("protection runtime switch checkpoint unreadable; using the config")
            return
        if switch is not None:
            self._override, self._override_base = switch

    # -- runtime switch ---------------------------------------------------------------------
    def runtime_enabled(self, config: Config | None = None) -> tuple[bool, str]:
        """(enabled, where from): the API's last word, until the config file's
        runtimeEnabled changes (then the file's value wins: the latest change wins)."""
        return runtime_switch(config or self._config, self._override, self._override_base)

    def acting(self, config: Config | None = None) -> bool:
        """Protection writes: prod, enabled at runtime, and not under safety.freeze."""
        config = config or self._config
        return acting(config, self.runtime_enabled(config)[0])

    def _switch(self, enabled: bool, actor: str) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            before = self.runtime_enabled()
            self._override = enabled
            self._override_base = self._config.circuit_breaker.runtime_enabled
            save_runtime_switch(self.store, enabled, self._override_base, now)
            self.report.shared.event(
                now,
                "circuit_breaker_enabled" if enabled else "circuit_breaker_disabled",
                level="warning" if not enabled else "info",
                category="user",
                actor=actor,
                before=before[0],
                after=enabled,
                mode=self._mode(),
            )
            self.metrics.circuit_breaker_enabled.set(1 if self.acting() else 0)
            return self.status()

    def enable(self, *, actor: str = "api") -> dict[str, Any]:
        """Let protection write again (in prod); the next tick applies the open caps."""
        return self._switch(True, actor)

    def disable(self, *, actor: str = "api") -> dict[str, Any]:
        """Stop protective writes; in prod the next tick restores what protection wrote.
        Detection and "would" reports go on."""
        return self._switch(False, actor)

    def api_token(self) -> SecretStr | None:
        """The bearer token of the mutating API endpoints (apiToken, or apiTokenFile read
        now so that a rotated file is picked up); None when unset."""
        settings = self._config.circuit_breaker
        if settings.api_token is not None:
            return settings.api_token if settings.api_token.get_secret_value() else None
        if settings.api_token_file:
            try:
                text = Path(settings.api_token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                self.log.error("circuitBreaker.apiTokenFile unreadable: %s", exc.strerror)
                return None
            return SecretStr(text) if text else None
        return None

    def _mode(self, config: Config | None = None) -> str:
        return (config or self._config).mode.value

    # -- the fast loop ----------------------------------------------------------------------
    def fast_hook(self, config: Config, now: float) -> None:
        """One fast-loop tick (a ServiceOptions.fast_hooks entry)."""
        with self._lock:
            self._config = config
            started = time.perf_counter()
            ok = self._tick(config, now)
            self.metrics.fast_loop_total.labels(result="success" if ok else "failure").inc()
            self.metrics.fast_loop_duration.observe(max(0.0, time.perf_counter() - started))

    def _source_for(self, config: Config, now: float) -> FastSource:
        if self._source is None or self._source_config is not config:
            self._source = self.source_factory(config, now)
            self._source_config = config
        return self._source

    def _policy(self, config: Config, tenants: Sequence[str]) -> TenantPolicy:
        key = (id(config), tuple(tenants))
        cached = self._policy_cache
        if cached is not None and cached[0] == key[0] and cached[1] == key[1]:
            return cached[2]
        policy = resolve_policy(config, tenants)
        self._policy_cache = (key[0], key[1], policy)
        return policy

    def _document(self, content: Content) -> OverridesDocument:
        digest = hashlib.sha256(content.text.encode()).hexdigest()
        if self._doc_cache is None or self._doc_cache[0] != digest:
            self._doc_cache = (digest, parse_overrides(content.text, source_name=self.applier.name))
        return self._doc_cache[1]

    def _file_limits(self, doc: OverridesDocument | None) -> dict[str, dict[str, float]]:
        """tenant -> protected limit -> value the file sets (cached per parsed document)."""
        parsed = self._doc_cache
        digest = parsed[0] if parsed is not None and parsed[1] is doc else None
        cached = self._limits_cache
        if digest is not None and cached is not None and cached[0] == digest:
            return cached[1]
        out = file_limits(doc, self.catalogue)
        if digest is not None:
            self._limits_cache = (digest, out)
        return out

    def _tick(self, config: Config, now: float) -> bool:
        idle = now - self.state.last_tick
        if math.isnan(idle) or idle > STALE_AFTER * config.circuit_breaker.fast_loop.interval:
            # Not ticking for a while (a follower that now leads, a paused process): another
            # replica may have acted meanwhile; its checkpoint is the truth.
            fresh = self._load_state()
            if not fresh.last_tick < self.state.last_tick:
                self.state = fresh
        content: Content | None = None
        doc: OverridesDocument | None = None
        try:
            content = self.applier.target.read()
            doc = self._document(content)
        except (TargetError, OverridesParseError) as exc:
            self.log.error("protection cannot read %s: %s", self.applier.name, exc)
            content = None
        file_limits = self._file_limits(doc)
        adaptation = config.circuit_breaker.auto_config.realtime_adaptation
        warmup = adaptation.warmup_window if not self.state.has_baselines else 0.0
        try:
            source = self._source_for(config, now)
            obs = source.read(
                now, warmup=warmup, percentile=adaptation.percentile, limits_in_force=file_limits
            )
        except SourceError as exc:
            self._failed(now, f"fast signals unavailable: {exc}")
            return False
        result = step(
            self.state,
            obs,
            in_force(config, self.catalogue, obs.tenants, obs.limits, file_limits),
            config,
            self.catalogue,
            now=now,
            policy=self._policy,
        )
        self._last = result
        acting = self.acting(config)
        for event in result.events:
            self.report.record(event, config, now, acting=acting, why=self._why_not_acting(config))
        wrote = False
        # Prod writes caps (acting) or restores them (switched off); safety.freeze: nothing.
        if config.mode is Mode.PROD and not config.safety.freeze and content is not None:
            wrote = self.writer.write(
                self.state, self._document, config, content, now, acting=acting
            )
        if not acting:
            self.writer.report_would(self.state, config, now, doc, self._why_not_acting(config))
        settle(self.state)
        self._publish(acting)
        self._recovered(now)
        try:
            self._save(now, force=bool(result.events) or wrote or result.adapted)
        except StoreError as exc:
            self.log.error("protection state not checkpointed: %s", exc)
        return True

    def _failed(self, now: float, error: str) -> None:
        self._failures += 1
        self._last_error = error
        self.log.error("protection fast loop: %s", error)
        if self._failures == FAILURES_BEFORE_ALERT:
            self.report.alert(
                "protection_fast_loop_failing",
                Priority.P2,
                Severity.WARNING,
                f"Protection is blind: {self._failures} fast-loop ticks failed ({error})",
                dedup_key="protection:fast_loop",
                now=now,
            )

    def _recovered(self, now: float) -> None:
        if self._failures >= FAILURES_BEFORE_ALERT:
            self.report.alert(
                "protection_fast_loop_failing",
                Priority.P2,
                Severity.INFO,
                "Protection reads its fast signals again",
                dedup_key="protection:fast_loop",
                now=now,
                status=AlertStatus.RESOLVED,
            )
        self._failures = 0
        self._last_error = None

    def _why_not_acting(self, config: Config) -> str:
        if config.mode is Mode.DRY_RUN:
            return "dry-run mode"
        enabled, origin = self.runtime_enabled(config)
        if not enabled:
            return f"disabled at runtime ({origin})"
        return "safety.freeze is on" if config.safety.freeze else "acting"

    def _publish(self, acting: bool) -> None:
        self.metrics.states.update(self.state.tenants, tenant_states(self.state).tolist())
        for resource, value in self.state.pressure.last.items():
            if math.isfinite(value):
                self.metrics.resource_usage_percent.labels(resource=resource).set(value)
        self.metrics.emergency_level.set(self.state.pressure.level)
        self.metrics.circuit_breaker_enabled.set(1 if acting else 0)

    # -- the plan guard ---------------------------------------------------------------------
    def guard_inputs(self, config: Config, now: float) -> GuardInputs:
        """PlanGuard: every active cap, which the slow cycle's plan must hold (a change may
        end at or below the cap, never above it); nothing when protection does not act."""
        del now
        if not self.acting(config):
            return GuardInputs()
        with self._lock:
            return GuardInputs(protection=active_caps(self.state.clamps))

    def planned(self, plan: CyclePlan, config: Config, now: float) -> None:
        """PlanGuard: the holds show in the plan's reasons; nothing else to report."""
        del plan, config, now

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What the API shows: switch, mode, breakers that are not closed, level, caps."""
        with self._lock:
            enabled, origin = self.runtime_enabled(self._config)
            return status_of(
                self._config, self.state, self._last, enabled=enabled, origin=origin,
                last_error=self._last_error,
            )  # fmt: skip


def build_protection(
    config: Config,
    *,
    catalogue: Catalogue,
    applier: Applier,
    store: Store,
    audit: AuditLog,
    alerts: AlertSink,
    registry: CollectorRegistry,
    source_factory: FastSourceFactory,
    clock: Callable[[], float],
    logger: logging.Logger | None = None,
) -> Protection:
    """The service's protection: pass `protection.fast_hook` in ServiceOptions.fast_hooks
    (with fast_interval = config.circuit_breaker.fast_loop.interval), `protection` in
    the Reconciler's guards, and mount `build_protection_router(protection)`."""
    return Protection(
        config,
        catalogue=catalogue,
        applier=applier,
        store=store,
        audit=audit,
        alerts=alerts,
        registry=registry,
        source_factory=source_factory,
        clock=clock,
        logger=logger,
    )
