"""The alerting manager: the AlertSink the optimizer emits into, and the worker behind it.

emit(alert)  -> main queue (memory, bounded, never blocks; full-queue policy in queue.py)
worker       -> route each alert (routing.py), deduplicate, store one delivery per channel
                in the persistent queue (so it survives a restart), then hand each channel's
                due deliveries to the retry stage (delivery.py), one task per channel so a
                slow or dead channel never delays the others.

Deduplication per channel and dedup key: dedup.py (the rules and why). The status
document of `status()`: status.py.

Delivery is at least once: a process killed between a channel's 2xx and the queue's
update sends that one delivery again on restart. PagerDuty (dedup_key), Alertmanager
(labels) and webhook receivers honouring Idempotency-Key absorb it.
"""

from __future__ import annotations

import logging
import random as random_module
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any

from prometheus_client import CollectorRegistry

from mimir_limit_optimizer.alerting.breaker import STATE_VALUES, CircuitBreaker
from mimir_limit_optimizer.alerting.channels import (
    Channel,
    ChannelSpec,
    build_channel,
    channel_specs,
)
from mimir_limit_optimizer.alerting.dedup import queue_delivery
from mimir_limit_optimizer.alerting.delivery import ChannelState, RetryStage
from mimir_limit_optimizer.alerting.errors import CHANNEL_NOT_FOUND, QUEUE_FULL, ChannelConfigError
from mimir_limit_optimizer.alerting.metrics import AlertingMetrics
from mimir_limit_optimizer.alerting.model import Alert
from mimir_limit_optimizer.alerting.ports import AlertQueue
from mimir_limit_optimizer.alerting.queue import MainQueue
from mimir_limit_optimizer.alerting.routing import Router
from mimir_limit_optimizer.alerting.status import alerting_status
from mimir_limit_optimizer.config.alerting import AlertingSettings

ChannelFactory = Callable[[ChannelSpec], Channel]
ROUTE_BATCH = 200  # alerts routed per worker turn
SEND_BATCH = 50  # due deliveries one channel task handles before yielding
SWEEP_EVERY = 30.0  # seconds between dead-letter sweeps of deliveries older than maxAge
STOP_TIMEOUT = 10.0  # seconds to wait for the worker and sends in flight when stopping


class AlertingManager:
    """Thread-safe. `clock`: unix seconds (store times, breakers); `timer`: a monotonic
    clock for durations; `random`: [0, 1) for jitter; `channel_factory`: builds a channel
    from its spec (tests may inject fakes); `active`: whether this process delivers now
    (the service passes "is the leader": with several replicas on one store only the
    leader sends, the others only queue)."""

    def __init__(
        self,
        settings: AlertingSettings,
        *,
        queue: AlertQueue,
        registry: CollectorRegistry,
        logger: logging.Logger,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
        random: Callable[[], float] = random_module.random,
        channel_factory: ChannelFactory = build_channel,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.queue = queue
        self._active = active
        self.log = logger
        self.clock = clock
        self.metrics = AlertingMetrics(registry)
        self._factory = channel_factory
        self._settings = settings
        self._main = MainQueue(settings.delivery.main_queue_size)
        self._stage = RetryStage(
            queue=queue,
            metrics=self.metrics,
            settings=settings.delivery,
            clock=clock,
            timer=timer,
            random=random,
            logger=logger,
        )
        self._lock = threading.Lock()  # channels, router, settings
        self._pump_lock = threading.Lock()
        self._channels: dict[str, ChannelState] = {}
        self._router = Router(settings, [])
        self._inflight: dict[str, Future[None]] = {}
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="mlo-alert-send")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_sweep = 0.0
        self._flushing = False
        self.configure(settings)

    # --- the sink ----------------------------------------------------------------------
    def emit(self, alert: Alert) -> None:
        """Queue `alert`; never blocks on I/O, never raises."""
        try:
            if not self._settings.enabled:
                return
            dropped = self._main.put(alert)
            if dropped is not None:
                self.metrics.channel_errors_total.labels("queue", QUEUE_FULL).inc()
                self.metrics.delivery_total.labels("queue", dropped.type, "dropped").inc()
                self.log.warning(
                    "alert queue full (%d): dropped %s alert %s (%s)",
                    self._main.capacity,
                    dropped.priority.value,
                    dropped.id,
                    dropped.dedup_key,
                )
            self._wake.set()
        except Exception:  # the optimizer must never fail because of alerting
            self.log.exception("could not queue alert %s", getattr(alert, "type", alert))

    # --- configuration ------------------------------------------------------------------
    def configure(self, settings: AlertingSettings) -> None:
        """Apply (new) settings: channels whose settings are unchanged keep their state
        and breaker; changed or new ones are rebuilt, a bad one is marked unhealthy with
        its error while the others work; removed ones are closed."""
        with self._lock:
            old = self._channels
            new: dict[str, ChannelState] = {}
            for spec in channel_specs(settings):
                kept = old.get(spec.name)
                if kept is not None and kept.spec == spec:
                    new[spec.name] = kept
                else:
                    new[spec.name] = self._build(spec)
            for name, state in old.items():
                if new.get(name) is not state:
                    self._retire(state)
                    if name not in new:
                        self.metrics.forget(name)
            self._channels = new
            self._router = Router(settings, list(new))
            self._settings = settings
            self._stage.settings = settings.delivery
            self.metrics.queue_capacity.labels("main").set(settings.delivery.main_queue_size)
            self.metrics.queue_capacity.labels("retry").set(settings.delivery.retry_queue_size)
            for dropped in self._main.resize(settings.delivery.main_queue_size):
                self.metrics.channel_errors_total.labels("queue", QUEUE_FULL).inc()
                self.metrics.delivery_total.labels("queue", dropped.type, "dropped").inc()
        now = self.clock()
        for state in new.values():
            self.metrics.breaker_state.labels(state.name).set(
                STATE_VALUES[state.breaker.state(now)]
            )
            self.metrics.channel_health.labels(state.name).set(1 if state.healthy(now) else 0)
        self._wake.set()

    def _build(self, spec: ChannelSpec) -> ChannelState:
        breaker = CircuitBreaker(spec.breaker)
        try:
            channel = self._factory(spec)
        except ChannelConfigError as exc:
            self.metrics.configuration_errors_total.labels(spec.name, exc.kind).inc()
            self.log.warning(
                "channel_init_failed channel=%s error=%s impact=%s alerts wait in the queue "
                "until the configuration is fixed",
                spec.name,
                exc,
                spec.name,
            )
            return ChannelState(spec, None, breaker, config_error=str(exc))
        self.log.info("alert channel %s initialized: %s", spec.name, channel.describe())
        return ChannelState(spec, channel, breaker)

    def _retire(self, state: ChannelState) -> None:
        state.retired = True
        future = self._inflight.get(state.name)
        if state.channel is not None and (future is None or future.done()):
            state.channel.close()

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mlo-alerting", daemon=True)
        self._thread.start()

    def stop(self, *, flush: float = 5.0) -> None:
        """Stop the worker: every queued alert is stored (nothing emitted is lost), then
        for up to `flush` seconds the deliveries due now are attempted (0: none). Sends in
        flight finish their current alert (each is bounded by its channel's timeout); the
        queue's store may be closed once this returns. Idempotent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT)
            self._thread = None
        try:
            if flush > 0:
                self._flushing = True
                self.flush(timeout=flush)
            else:
                self.pump(deliver=False)
        finally:
            self._flushing = False
            running = [f for f in self._inflight.values() if not f.done()]
            if running:
                wait_for(running, timeout=STOP_TIMEOUT)
            self._executor.shutdown(wait=False, cancel_futures=True)
            with self._lock:
                for state in self._channels.values():
                    self._retire(state)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.pump()
            except Exception:
                self.log.exception("alerting worker turn failed; retrying")
            self._wake.wait(self._settings.delivery.poll_interval)
            self._wake.clear()

    def flush(self, timeout: float = 5.0) -> None:
        """Store every queued alert and attempt every delivery due now, for at most
        `timeout` seconds (a channel that keeps failing is retried later, not waited for)."""
        deadline = time.monotonic() + timeout
        self.pump(wait=max(0.0, deadline - time.monotonic()))
        while time.monotonic() < deadline and self._due_now():
            self.pump(wait=max(0.0, deadline - time.monotonic()))

    def _due_now(self) -> bool:
        if not self._active():
            return False
        now = self.clock()
        with self._lock:
            states = [s for s in self._channels.values() if s.channel is not None]
        try:
            return any(
                s.breaker.retry_at(now) <= now
                and self.queue.due_alerts(now=now, limit=1, channel=s.name)
                for s in states
            )
        except Exception as exc:  # a store outage: nothing more to flush now
            self.log.warning("cannot read due alerts: %s", exc)
            return False

    # --- one worker turn ----------------------------------------------------------------
    def pump(self, *, wait: float | None = None, deliver: bool = True) -> None:
        """Route and store the queued alerts, expire old deliveries, start a delivery task
        for each channel with nothing in flight (unless not `deliver`); with `wait`, wait
        up to that many seconds for every task in flight to finish."""
        with self._pump_lock:
            now = self.clock()
            while batch := self._main.take(ROUTE_BATCH):
                failed_at = next(
                    (i for i, alert in enumerate(batch) if not self._route(alert, now)), None
                )
                if failed_at is not None:
                    # The store is down: keep this alert and the rest of the batch in memory
                    # and try again next turn (channels already queued deduplicate it).
                    for alert in batch[failed_at:]:
                        self._main.put(alert)
                    break
            if now >= self._next_sweep:
                self._next_sweep = now + SWEEP_EVERY
                try:
                    self._sweep(now)
                except Exception:  # a store outage: the next sweep tries again
                    self.log.exception("expiring old alert deliveries failed")
            with self._lock:
                states = list(self._channels.values())
            deliver = deliver and self._active()
            for state in states:
                future = self._inflight.get(state.name)
                if state.channel is None or (future is not None and not future.done()):
                    continue
                if not deliver or (self._stop.is_set() and not self._flushing):
                    continue
                try:
                    future = self._executor.submit(self._deliver_channel, state)
                except RuntimeError:  # executor shut down: stopping
                    continue
                self._inflight[state.name] = future
            self._update_queue_gauges()
            running = [f for f in self._inflight.values() if not f.done()]
        if wait is not None and running:
            wait_for(running, timeout=wait)
            self._update_queue_gauges()

    def _deliver_channel(self, state: ChannelState) -> None:
        try:
            rows = self.queue.due_alerts(now=self.clock(), limit=SEND_BATCH, channel=state.name)
            for row in rows:
                if state.retired or (self._stop.is_set() and not self._flushing):
                    break
                self._stage.deliver(state, row)
            if rows:
                self._update_queue_gauges()
        except Exception:
            self.log.exception("delivering alerts to %s failed; retrying later", state.name)
        finally:
            if state.retired and state.channel is not None:
                state.channel.close()

    def _route(self, alert: Alert, now: float) -> bool:
        """Queue `alert` in the store for each routed channel; False when the store failed
        (the caller keeps the alert and retries)."""
        if not isinstance(alert, Alert):  # a producer's bug: nothing to retry
            self.log.error("dropping %r: not an Alert", alert)
            return True
        try:
            with self._lock:
                routing = self._router.route(alert)
                channels = dict(self._channels)
            for name in routing.missing:
                self.metrics.channel_errors_total.labels(name, CHANNEL_NOT_FOUND).inc()
                self.log.warning(
                    "alert %s routed to channel %r, which is not configured", alert.id, name
                )
            for route in routing.routes:
                state = channels.get(route.channel)
                if state is None or alert.priority.value not in state.spec.priorities:
                    continue
                queued = queue_delivery(
                    self.queue,
                    alert,
                    route.channel,
                    delay=route.delay,
                    now=now,
                    dedup_window=self._settings.delivery.dedup_window,
                )
                if not queued:
                    self.metrics.delivery_total.labels(
                        route.channel, alert.type, "deduplicated"
                    ).inc()
        except Exception:  # a store outage: kept in memory, retried next turn
            self.log.exception(
                "could not store alert %s (%s); retrying next turn", alert.id, alert.dedup_key
            )
            return False
        return True

    def _sweep(self, now: float) -> None:
        max_age = self._settings.delivery.max_age
        expired = self.queue.expire_alerts(
            created_before=now - max_age,
            last_error=f"dead letter: not delivered within maxAge ({max_age:g}s)",
        )
        for row in expired:
            alert_type = str(row.payload.get("type", "unknown"))
            self.metrics.delivery_total.labels(row.channel, alert_type, "dead_letter").inc()
            self.log.error(
                "alert %s to %s dead-lettered: not delivered within %gs (last error: %s)",
                row.dedup_key,
                row.channel,
                max_age,
                row.last_error,
            )

    def _update_queue_gauges(self) -> None:
        try:
            counts = self.queue.alert_counts()
        except Exception as exc:  # a store outage: keep the last values
            self.log.warning("cannot count queued alerts: %s", exc)
            return
        self.metrics.queue_size.labels("main").set(len(self._main))
        self.metrics.queue_size.labels("retry").set(sum(r for _, r in counts.values()))
        with self._lock:
            names = list(self._channels)
        for name in names:
            fresh, retrying = counts.get(name, (0, 0))
            self.metrics.queue_size.labels(name).set(fresh + retrying)

    # --- status -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What `/debug/alerting/status` shows: channels, health, breakers, queue depths,
        the last error of each channel (redacted). Never a secret."""
        now = self.clock()
        try:
            counts: dict[str, tuple[int, int]] = dict(self.queue.alert_counts())
            queue_error = None
        except Exception as exc:
            counts, queue_error = {}, f"cannot read the queue: {type(exc).__name__}"
        with self._lock:
            states = list(self._channels.values())
            settings = self._settings
        return alerting_status(
            now=now,
            states=states,
            counts=counts,
            queue_error=queue_error,
            settings=settings,
            main=self._main,
        )
