"""The retry stage: the one place that owns backoff, deadlines, circuit breakers and the
delivery metrics (Alertmanager's RetryStage). Channels only send and say whether a failure
is retryable.

For one due delivery (a row of the persistent queue):
1. A resolved notification waits while the firing one of the same alert is still pending
   for the channel (it must not overtake it).
2. An open breaker defers the delivery to the breaker's half-open time (not an attempt).
3. One send. Success: sent. A retryable failure: retried after an exponential backoff with
   jitter (or the service's Retry-After), unless maxAttempts or maxAge is reached, or it
   would be a new entry in a full retry queue: then dead-lettered. A permanent failure is
   dead-lettered at once. Every failure counts for the breaker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from mimir_limit_optimizer.alerting.breaker import STATE_VALUES, BreakerState, CircuitBreaker
from mimir_limit_optimizer.alerting.channels import Channel, ChannelSpec
from mimir_limit_optimizer.alerting.codec import from_payload
from mimir_limit_optimizer.alerting.errors import CIRCUIT_BREAKER_OPEN, QUEUE_FULL, ChannelError
from mimir_limit_optimizer.alerting.metrics import AlertingMetrics
from mimir_limit_optimizer.alerting.model import AlertStatus
from mimir_limit_optimizer.alerting.ports import AlertQueue, QueueRow
from mimir_limit_optimizer.config.alerting import DeliverySettings

HOLD_UNTIL = "holdUntil"  # payload key: end of the escalation delay (unix seconds)


def store_key(dedup_key: str, status: AlertStatus) -> str:
    """The queue's key of an alert: firing and resolved notifications are separate
    deliveries of the same alert."""
    return f"{dedup_key}#{status.value}"


def backoff(attempt: int, settings: DeliverySettings, random: Callable[[], float]) -> float:
    """Seconds before retry `attempt` (1 = the first retry): exponential, capped, and
    spread by +/- `jitter` so that many failed alerts do not retry in lockstep."""
    base = settings.initial_backoff * settings.backoff_multiplier ** max(0, attempt - 1)
    base = min(settings.max_backoff, base)
    return max(0.0, base * (1.0 + settings.jitter * (2.0 * random() - 1.0)))


@dataclass
class ChannelState:
    """A configured channel as the manager tracks it. `channel` is None when its settings
    are unusable (`config_error` says why); deliveries then wait in the queue."""

    spec: ChannelSpec
    channel: Channel | None
    breaker: CircuitBreaker
    config_error: str | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    last_success_at: float | None = None
    last_attempt_ok: bool | None = None
    sent: int = 0
    dead_letters: int = 0
    retired: bool = field(default=False)

    @property
    def name(self) -> str:
        return self.spec.name

    def healthy(self, now: float) -> bool:
        return (
            self.channel is not None
            and self.breaker.state(now) is not BreakerState.OPEN
            and self.last_attempt_ok is not False
        )


class RetryStage:
    def __init__(
        self,
        *,
        queue: AlertQueue,
        metrics: AlertingMetrics,
        settings: DeliverySettings,
        clock: Callable[[], float],
        timer: Callable[[], float],
        random: Callable[[], float],
        logger: logging.Logger,
    ) -> None:
        self.queue = queue
        self.metrics = metrics
        self.settings = settings
        self.clock = clock
        self.timer = timer
        self.random = random
        self.log = logger

    def deliver(self, state: ChannelState, row: QueueRow) -> str:
        """Handle one due delivery; return what happened: sent, retry, dead_letter,
        deferred (breaker open, or waiting for its firing notification)."""
        channel = state.channel
        assert channel is not None, "deliveries of a misconfigured channel are not started"
        now = self.clock()
        alert = from_payload(row.payload)
        if alert.status is AlertStatus.RESOLVED:
            firing = self.queue.latest_alert(
                store_key(alert.dedup_key, AlertStatus.FIRING), row.channel, statuses=("pending",)
            )
            if firing is not None and firing.id < row.id:
                self._defer(row, max(now, firing.next_attempt_at or now), row.last_error)
                return "deferred"
        if not state.breaker.allow(now):
            self.metrics.channel_errors_total.labels(state.name, CIRCUIT_BREAKER_OPEN).inc()
            self._defer(row, state.breaker.retry_at(now), row.last_error)
            self._gauges(state, now)
            return "deferred"
        start = self.timer()
        error: ChannelError | None = None
        try:
            channel.send(alert)
        except ChannelError as exc:
            error = exc
        except Exception as exc:  # a channel bug must not stop delivery to the others
            # No traceback: its frames and messages may hold the channel's secrets.
            self.log.error(
                "alert channel %s raised unexpectedly: %s",
                state.name,
                channel.redact(f"{type(exc).__name__}: {exc}"),
            )
            error = ChannelError(channel.redact(f"{type(exc).__name__}: {exc}"), retryable=True)
        elapsed = max(0.0, self.timer() - start)
        self.metrics.delivery_duration.labels(state.name).observe(elapsed)
        now = self.clock()
        attempts = row.attempts + 1
        if error is None:
            self.queue.update_alert(
                row.id, status="sent", attempts=attempts, next_attempt_at=None, last_error=None
            )
            state.breaker.record_success(now)
            state.last_success_at, state.last_attempt_ok = now, True
            state.sent += 1
            self.metrics.delivery_total.labels(state.name, alert.type, "success").inc()
            self.metrics.last_success.labels(state.name).set(now)
            self.metrics.response_time.labels(state.name).observe(max(0.0, now - row.created_at))
            self._log(
                logging.INFO,
                "alert_sent",
                state,
                alert_id=alert.id,
                alert_type=alert.type,
                elapsed=elapsed,
                attempts=attempts,
            )
            self._gauges(state, now)
            return "sent"
        message = channel.redact(str(error))
        breaker = state.breaker.record_failure(now)
        state.last_error, state.last_error_at, state.last_attempt_ok = message, now, False
        self.metrics.channel_errors_total.labels(state.name, error.error_type).inc()
        outcome = self._after_failure(row, error, message, attempts, now)
        result = "failure" if outcome == "retry" else "dead_letter"
        self.metrics.delivery_total.labels(state.name, alert.type, result).inc()
        if outcome == "retry":
            self.metrics.retry_attempts_total.labels(state.name, alert.type).inc()
        else:
            state.dead_letters += 1
        self._log(
            logging.WARNING if outcome == "retry" else logging.ERROR,
            "send_failed" if outcome == "retry" else "dead_letter",
            state,
            alert_id=alert.id,
            alert_type=alert.type,
            elapsed=elapsed,
            attempts=attempts,
            error=message,
            breaker=breaker.value,
        )
        self._gauges(state, now)
        return outcome

    def _after_failure(
        self, row: QueueRow, error: ChannelError, message: str, attempts: int, now: float
    ) -> str:
        s = self.settings
        age = now - row.created_at
        reason = ""
        if not error.retryable:
            reason = "permanent failure"
        elif attempts >= s.max_attempts:
            reason = f"{attempts} attempts (maxAttempts)"
        elif age >= s.max_age:
            reason = f"older than maxAge ({age:.0f}s)"
        elif row.attempts == 0 and self._retry_queue_full():
            reason = f"retry queue full ({s.retry_queue_size})"
            self.metrics.channel_errors_total.labels(row.channel, QUEUE_FULL).inc()
        if reason:
            self.queue.update_alert(
                row.id,
                status="failed",
                attempts=attempts,
                next_attempt_at=None,
                last_error=f"{message} [dead letter: {reason}]",
            )
            return "dead_letter"
        wait = (
            error.retry_after
            if error.retry_after is not None
            else backoff(attempts, s, self.random)
        )
        self.queue.update_alert(
            row.id,
            status="pending",
            attempts=attempts,
            next_attempt_at=now + wait,
            last_error=message,
        )
        return "retry"

    def _retry_queue_full(self) -> bool:
        retrying = sum(r for _, r in self.queue.alert_counts().values())
        return retrying >= self.settings.retry_queue_size

    def _defer(self, row: QueueRow, until: float, last_error: str | None) -> None:
        self.queue.update_alert(
            row.id,
            status="pending",
            attempts=row.attempts,
            next_attempt_at=until,
            last_error=last_error,
        )

    def _gauges(self, state: ChannelState, now: float) -> None:
        self.metrics.breaker_state.labels(state.name).set(STATE_VALUES[state.breaker.state(now)])
        self.metrics.channel_health.labels(state.name).set(1 if state.healthy(now) else 0)

    def _log(
        self,
        level: int,
        action: str,
        state: ChannelState,
        *,
        alert_id: str,
        alert_type: str,
        elapsed: float,
        attempts: int,
        **extra: str,
    ) -> None:
        """One structured line per attempt, as the Go optimizer's examples (never a secret)."""
        fields = {
            "component": f"{state.spec.kind}-channel",
            "action": action,
            "channel": state.name,
            "alert_id": alert_id,
            "alert_type": alert_type,
            "duration": f"{elapsed:.3f}s",
            "retry_count": attempts - 1,
            **extra,
        }
        self.log.log(level, json.dumps(fields))
