"""`mlo run`: the long-running service. A reconcile loop every updateInterval, config hot
reload, HTTP endpoints, optional leader election, graceful stop (never mid-write: a stop
request is only looked at between cycles, and every write is atomic anyway)."""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from prometheus_client import CollectorRegistry

from mimir_limit_optimizer.alerting import AlertingManager
from mimir_limit_optimizer.alerting.codec import iso
from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.loader import redacted_dump
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.controller.config_provider import ConfigProvider
from mimir_limit_optimizer.controller.config_reload_events import ConfigReloadEvents
from mimir_limit_optimizer.controller.cost import build_cost_control
from mimir_limit_optimizer.controller.leadership import Leadership
from mimir_limit_optimizer.controller.lost_store import recreate_lost_store
from mimir_limit_optimizer.controller.protection import build_protection
from mimir_limit_optimizer.controller.protection_sources import default_fast_source_factory
from mimir_limit_optimizer.controller.reconcile import (
    CycleResult,
    Reconciler,
    last_checkpoint,
)
from mimir_limit_optimizer.controller.ui_wiring import ServiceUi
from mimir_limit_optimizer.controller.wiring import (
    build_target,
    build_verifier,
    check_parts,
    open_store,
    source_factory,
)
from mimir_limit_optimizer.engine import compiled
from mimir_limit_optimizer.observability.health import HealthState
from mimir_limit_optimizer.observability.metrics import ControllerMetrics
from mimir_limit_optimizer.store import AuditEvent, AuditLog, StoreError
from mimir_limit_optimizer.web.protection_api import build_protection_router
from mimir_limit_optimizer.web.server import Servers, start_servers

T = TypeVar("T")

# Hooks for the fast protection loop (blast protection, panic mode: a later version); each is
# called with (config, now) every `fast_interval` seconds while this replica leads.
FastHook = Callable[[Config, float], None]


@dataclass
class ServiceOptions:
    once: bool = False
    fast_interval: float = 15.0
    fast_hooks: list[FastHook] = field(default_factory=list)


class Service:
    def __init__(
        self,
        provider: ConfigProvider,
        catalogue: Catalogue,
        *,
        logger: logging.Logger,
        clock: Callable[[], float] = time.time,
        options: ServiceOptions | None = None,
    ) -> None:
        self.provider = provider
        self.catalogue = catalogue
        self.log = logger
        self.clock = clock
        self.options = options or ServiceOptions()
        config = provider.config
        self._started_config = config
        # What every cycle builds (source, target) must build now: a setting that cannot work
        # fails start-up (WiringError) instead of every cycle after it.
        check_parts(config, os.environ)
        self.registry = CollectorRegistry()
        self.metrics = ControllerMetrics(self.registry, tenant_series=config.server.tenant_metrics)
        self.health = HealthState(stall_after=max(3 * config.update_interval, 60.0))
        self.leadership = Leadership(metrics=self.metrics, health=self.health)
        self.store = open_store(config)
        self.audit = AuditLog(self.store, logger=logging.getLogger("mimir_limit_optimizer.audit"))
        self.target = build_target(config)
        self.applier = Applier(
            self.target,
            self.store,
            catalogue,
            verifier=build_verifier(config),
            rollback_on_failure=config.verify.rollback_on_failure,
            conflict_retries=config.target.config_map.conflict_retries,
            sleep=time.sleep,
            logger=logger,
            is_leader=self.is_leader,  # checked right before every write
        )
        # Alerts are queued in the store; the worker starts with run() (docs/alerting.md).
        self.alerting = AlertingManager(
            config.alerting,
            queue=self.store,
            registry=self.registry,
            logger=logging.getLogger("mimir_limit_optimizer.alerting"),
            clock=clock,
            active=self.is_leader,  # several replicas on one store: only the leader sends
        )
        # Protection (fast loop + guard) and cost control (guard + after each cycle) may only
        # tighten the slow cycle's plan (docs/protection.md, docs/cost.md).
        self.protection = build_protection(
            config,
            catalogue=catalogue,
            applier=self.applier,
            store=self.store,
            audit=self.audit,
            alerts=self.alerting,
            registry=self.registry,
            source_factory=default_fast_source_factory(catalogue, os.environ),
            clock=clock,
            logger=logging.getLogger("mimir_limit_optimizer.protection"),
        )
        self.cost = build_cost_control(
            config,
            store=self.store,
            audit=self.audit,
            alerts=self.alerting,
            registry=self.registry,
            clock=clock,
            catalogue=catalogue,
            logger=logging.getLogger("mimir_limit_optimizer.cost"),
            is_leader=self.is_leader,
            exported_tenants=self.metrics.exported_tenants,  # cost series follow these
        )
        self.options.fast_hooks.append(self.protection.fast_hook)
        self.options.fast_interval = config.circuit_breaker.fast_loop.interval
        self.reconciler = Reconciler(
            guards=[self.protection, self.cost],
            catalogue=catalogue,
            source_factory=source_factory(),
            applier=self.applier,
            store=self.store,
            audit=self.audit,
            metrics=self.metrics,
            health=self.health,
            logger=logger,
            alerts=self.alerting,
        )
        reload_events = ConfigReloadEvents(
            log=logger, clock=clock, alerting=self.alerting, metrics=self.metrics, audit=self.audit
        )
        provider.set_callbacks(
            on_reload=reload_events.reloaded,
            on_failure=reload_events.failed,
            on_recovered=reload_events.recovered,
            check=reload_events.check,
        )
        self.ui = ServiceUi(self)  # the web UI's read model and actions (docs/ui.md)
        self.servers: Servers | None = None
        # What exists now (modules, the catalogue, config models, these parts) lives as long
        # as the process: keep it out of the cyclic collector's full scans. A cycle at 10,000
        # tenants allocates enough to trigger several, each re-scanning these ~300,000
        # objects (~1 s per cycle in all, bench/service_scale.py).
        gc.freeze()

    # --- lifecycle -------------------------------------------------------------------
    def startup_line(self) -> str:
        config = self.provider.config
        source = "synthetic" if config.source.kind == "synthetic" else "prometheus"
        return json.dumps(
            {
                "msg": "starting mimir-limit-optimizer",
                "mode": config.mode.value,
                "source": source,
                "target": self.target.describe(),
                # Without a C compiler at install the engine runs its numpy paths: the same
                # results, about 50% more engine time (docs/benchmarks.md).
                "enginePasses": compiled.which_passes(),
                "config": redacted_dump(config),
            },
            default=str,
        )

    def is_leader(self) -> bool:
        return self.leadership.is_leader()

    def cycle(self) -> CycleResult:
        now = self.clock()
        started = time.monotonic()
        self.provider.reload_if_changed()
        lost = recreate_lost_store(
            self.store,
            now=now,
            metrics=self.metrics,
            log=self.log,
            audit=self.audit,
            alerting=self.alerting,
        )
        if lost is not None:
            self.metrics.reconcile_total.labels(result="failure").inc()
            self.health.cycle_finished(ok=False, now=now, detail=lost.detail)
            self.metrics.health_status.set(0)
            self.log.error("cycle failed: %s", lost.detail)
            self.ui.cycle_finished(lost, at=now, duration=time.monotonic() - started)
            return lost
        config = self.ui.effective(self.provider.config)  # a freeze set in the UI
        result = self.reconciler.run_once(config, now=now, leader=self.is_leader())
        self.metrics.count_changes(
            planned=result.planned, applied=result.applied, held_back=result.held_back
        )
        if result.recommendations is not None:
            with self.metrics.phase("cost"):
                self.cost.after_cycle(None, result.recommendations, self.provider.config, now)
        try:
            with self.metrics.phase("prune"):
                self.store.prune_audit(
                    max_entries=self.provider.config.store.audit_max_entries,
                    max_age=self.provider.config.store.audit_max_age,
                    now=now,
                )
        except StoreError as exc:  # housekeeping: the next cycle prunes again
            self.log.warning("could not prune the audit log: %s", exc)
        with self.metrics.phase("ui"):  # the UI's tenant index of this cycle
            self.ui.cycle_finished(result, at=now, duration=time.monotonic() - started)
        level = logging.INFO if result.ok else logging.ERROR
        self.log.log(level, "cycle %s: %s", "ok" if result.ok else "failed", result.detail)
        return result

    def run(self, stop: threading.Event) -> int:
        """Run until `stop` is set (or one cycle with options.once); exit status 0 when the
        last cycle succeeded."""
        self.log.info(self.startup_line())
        try:
            checkpoint = last_checkpoint(self.store)
        except StoreError as exc:
            self.log.warning("cannot read the last checkpoint: %s", exc)
            checkpoint = None
        if checkpoint is not None:
            at = checkpoint.get("at")
            when = iso(float(at)) if isinstance(at, int | float) else "an unknown time"
            self.log.info("resuming: the last cycle ran at %s", when)
        config = self.provider.config
        self.alerting.start()
        try:
            if config.server.enabled and not self.options.once:
                self.servers = start_servers(
                    config.server,
                    registry=self.registry,
                    health=self.health,
                    alerting_status=self.alerting.status,
                    routers=[build_protection_router(self.protection)],
                    extend_api=self.ui.extend if config.ui.enabled else None,
                )
                host = config.server.host
                if config.ui.enabled:
                    self.ui.prepare_login(self.log)
                    self.log.info("web UI on http://%s:%s/", host, self.servers.api_port)
                self.log.info(
                    "metrics on http://%s:%d/metrics, health on http://%s:%d/healthz, "
                    "API on http://%s:%s/api/v1",
                    host, self.servers.metrics_port, host, self.servers.health_port,
                    host, self.servers.api_port,
                )  # fmt: skip
            self.leadership.start(self.provider.config, stop)
            if self.options.once:
                self.leadership.await_election(self.provider.config, stop)
                self.health.heartbeat(self.clock())
                result = self._guarded("cycle", self.cycle)  # a failure is an exit status
                return 0 if result is not None and result.ok else 1
            return self._loop(stop)
        finally:
            if self.servers is not None:
                self.servers.stop()
            self.alerting.stop(flush=5.0)  # queued alerts are stored before the store closes
            self.store.close()

    def _guarded(self, component: str, step: Callable[[], T]) -> T | None:
        """Run one cycle or fast-loop turn; an unexpected error fails that turn (logged with
        its traceback, counted, audited when the store works) instead of ending the service:
        the next turn runs as usual."""
        try:
            return step()
        except Exception as exc:  # the loop must outlive any one turn's failure
            self.log.exception("%s failed; the service goes on", component)
            self.metrics.errors_total.labels(component=component, reason=type(exc).__name__).inc()
            self.metrics.health_status.set(0)
            try:
                event = AuditEvent(
                    self.clock(), "error", "system", component, f"{component}_crashed", None,
                    {"error": str(exc)},
                )  # fmt: skip
                self.audit.record(event)
            except Exception:  # the store may be what failed; the log line above stands
                self.log.warning("could not audit the %s failure", component)
            return None

    def _fast_loop(self, stop: threading.Event) -> None:
        """Protection on its own thread, every fast_interval while leading, so a slow cycle
        (a long collection, a verification wait) never delays it; writes are serialised by the
        applier."""
        while not stop.is_set():
            started = self.clock()
            if self.is_leader():
                for hook in self.options.fast_hooks:
                    self._guarded(
                        "fast_loop", functools.partial(self._run_fast_hook, hook, started)
                    )
            stop.wait(max(0.05, self.options.fast_interval - (self.clock() - started)))

    def _run_fast_hook(self, hook: FastHook, at: float) -> None:
        hook(self.provider.config, at)

    def _loop(self, stop: threading.Event) -> int:
        last: CycleResult | None = None
        next_cycle = self.clock()
        fast: threading.Thread | None = None
        if self.options.fast_hooks:
            fast = threading.Thread(
                target=self._fast_loop, args=(stop,), name="fast-loop", daemon=True
            )
            fast.start()
        while not stop.is_set():
            now = self.clock()
            self.health.heartbeat(now)
            if now >= next_cycle or self.ui.cycle_requested.is_set():
                self.ui.cycle_requested.clear()
                last = self._guarded("cycle", self.cycle) or CycleResult(False, detail="crashed")
                next_cycle = now + self.provider.config.update_interval
            stop.wait(min(1.0, max(0.0, next_cycle - self.clock())))
        if fast is not None:
            fast.join(timeout=30)  # let a protection turn in progress finish before shutdown
        return 0 if last is None or last.ok else 1
