"""The Go optimizer's alerting metrics, on an injected registry (`mimir_limit_optimizer_` prefix).

delivery results: success; failure (an attempt failed, a retry is scheduled); dead_letter
(given up: permanent error, maxAttempts, maxAge, retry queue full); deduplicated (not sent:
the channel already has it, or it was resolved within its escalation delay); dropped (the
main queue was full, channel="queue")."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "mimir_limit_optimizer"
RESULTS = ("success", "failure", "dead_letter", "deduplicated", "dropped")
# Seconds: webhooks answer in milliseconds, SMTP with TLS in up to seconds.
SEND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# End to end (queued -> delivered): includes escalation delays and retries.
E2E_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 21600, 86400)


class AlertingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.delivery_total = Counter(
            f"{PREFIX}_alert_delivery_total",
            "Alert deliveries by channel, alert type and result "
            "(success, failure, dead_letter, deduplicated, dropped).",
            ["channel", "alert_type", "result"],
            registry=registry,
        )
        self.delivery_duration = Histogram(
            f"{PREFIX}_alert_delivery_duration_seconds",
            "Duration of one send attempt to a channel.",
            ["channel"],
            buckets=SEND_BUCKETS,
            registry=registry,
        )
        self.channel_health = Gauge(
            f"{PREFIX}_alert_channel_health",
            "1 when the channel is configured correctly, its breaker is not open and its "
            "last attempt succeeded; 0 otherwise.",
            ["channel"],
            registry=registry,
        )
        self.channel_errors_total = Counter(
            f"{PREFIX}_alert_channel_errors_total",
            "Alerting errors by channel and type (channel_not_found, circuit_breaker_open, "
            "send_failed, invalid_config, timeout, queue_full).",
            ["channel", "error_type"],
            registry=registry,
        )
        self.retry_attempts_total = Counter(
            f"{PREFIX}_alert_retry_attempts_total",
            "Retries scheduled after a failed attempt.",
            ["channel", "alert_type"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            f"{PREFIX}_alert_channel_circuit_breaker_state",
            "Circuit breaker of the channel: 0 closed, 1 open, 2 half-open.",
            ["channel"],
            registry=registry,
        )
        self.queue_size = Gauge(
            f"{PREFIX}_alert_queue_size",
            "Alerts waiting: channel=main the in-memory main queue, channel=retry the retry "
            "queue, channel=<name> the deliveries pending for that channel.",
            ["channel"],
            registry=registry,
        )
        self.queue_capacity = Gauge(
            f"{PREFIX}_alert_queue_capacity",
            "Capacity of the alert queues (channel=main, channel=retry) from the settings, so "
            "that a queue's fill ratio is alert_queue_size / alert_queue_capacity.",
            ["channel"],
            registry=registry,
        )
        self.configuration_errors_total = Counter(
            f"{PREFIX}_alert_configuration_errors_total",
            "Channel configurations found unusable (at start or reload), by error type.",
            ["channel", "config_error_type"],
            registry=registry,
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_successful_alert_timestamp",
            "Unix time of the last successful delivery to the channel.",
            ["channel"],
            registry=registry,
        )
        self.response_time = Histogram(
            f"{PREFIX}_alert_channel_response_time_seconds",
            "End-to-end time from queueing an alert to its delivery by the channel.",
            ["channel"],
            buckets=E2E_BUCKETS,
            registry=registry,
        )
        for queue in ("main", "retry"):
            self.queue_size.labels(channel=queue).set(0)

    def forget(self, channel: str) -> None:
        """Drop the gauges of a channel removed from the configuration."""
        for gauge in (self.channel_health, self.breaker_state, self.queue_size):
            with contextlib.suppress(KeyError):
                gauge.remove(channel)
