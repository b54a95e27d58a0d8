"""Delivery never blocks the optimizer and never loses an alert. Proven here with injected
time and real local servers: the circuit breaker's transitions (the seed's table), backoff
with jitter, the full-queue policy of the main queue, routing (rules, priority defaults,
escalation delays), then the manager on a real SQLite store: one delivery per channel,
deduplication within the window, resolved notifications only where the firing one went,
alerts resolved during their escalation delay never sent, retries after 500s and after a
429's Retry-After, dead letters (permanent errors, maxAttempts, maxAge, a full retry
queue), breakers deferring deliveries, a channel with a bad configuration unhealthy while
the others deliver and recovered by a reload, secrets absent from the status, and alerts
surviving a stop and restart, delivered exactly once per channel."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from mimir_limit_optimizer.alerting import Alert, AlertingManager, AlertStatus, Priority, Severity
from mimir_limit_optimizer.alerting.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from mimir_limit_optimizer.alerting.delivery import backoff
from mimir_limit_optimizer.alerting.queue import MainQueue
from mimir_limit_optimizer.alerting.routing import Router
from mimir_limit_optimizer.config.alerting import AlertingSettings, DeliverySettings
from mimir_limit_optimizer.store import Store
from tests.alerting_servers import Receiver, Reply, receiver

T0 = 1_800_000_000.0
LOG = logging.getLogger("test-alerting")
SLACK_PATH = "/services/T0/B0/slack-secret-path"
PD_KEY = "pd-key-0123456789abcdef01234567"
HOOK_TOKEN = "hook-token-secret-42"


# --- circuit breaker ----------------------------------------------------------------------


def test_breaker_transitions_with_injected_time() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=3, recovery_timeout=300))
    t = T0
    # closed: failures below the threshold, and a success resets the count
    assert breaker.record_failure(t) is BreakerState.CLOSED
    assert breaker.record_failure(t) is BreakerState.CLOSED
    breaker.record_success(t)
    assert breaker.record_failure(t) is BreakerState.CLOSED
    assert breaker.record_failure(t) is BreakerState.CLOSED
    # the threshold opens it
    assert breaker.record_failure(t) is BreakerState.OPEN
    assert not breaker.allow(t) and not breaker.allow(t + 299.9)
    assert breaker.retry_at(t + 10) == t + 300
    # after the recovery timeout: half-open, three trial calls, not four
    assert breaker.state(t + 300) is BreakerState.HALF_OPEN
    assert [breaker.allow(t + 300) for _ in range(4)] == [True, True, True, False]
    # a failing trial opens it again, for another recovery timeout
    assert breaker.record_failure(t + 301) is BreakerState.OPEN
    assert breaker.state(t + 600) is BreakerState.OPEN
    assert breaker.state(t + 601) is BreakerState.HALF_OPEN
    # three successful trials close it
    for _ in range(3):
        assert breaker.allow(t + 601)
        state = breaker.record_success(t + 601)
    assert state is BreakerState.CLOSED
    assert breaker.allow(t + 602)
    assert breaker.snapshot(t + 602)["state"] == "closed"


@pytest.mark.parametrize("threshold", [1, 5])
def test_breaker_opens_exactly_at_the_threshold(threshold: int) -> None:
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=threshold, recovery_timeout=60))
    states = [breaker.record_failure(T0) for _ in range(threshold)]
    assert states[-1] is BreakerState.OPEN
    assert all(s is BreakerState.CLOSED for s in states[:-1])


# --- backoff ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "random", "expected"),
    [(1, 0.5, 5.0), (2, 0.5, 10.0), (3, 0.5, 20.0), (6, 0.5, 160.0), (7, 0.5, 300.0),
     (30, 0.5, 300.0), (1, 0.0, 4.0), (1, 1.0, 6.0), (7, 0.0, 240.0)],
)  # fmt: skip
def test_backoff_is_exponential_capped_and_jittered(
    attempt: int, random: float, expected: float
) -> None:
    assert backoff(attempt, DeliverySettings(), lambda: random) == pytest.approx(expected)


# --- the main queue's full-queue policy ------------------------------------------------------


def make(priority: Priority, n: int = 0, **changes: Any) -> Alert:
    return Alert(
        type=changes.pop("type", "apply_failed"),
        priority=priority,
        severity=changes.pop("severity", Severity.ERROR),
        summary=changes.pop("summary", f"alert {n}"),
        component=changes.pop("component", "target"),
        dedup_key=changes.pop("dedup_key", f"key-{priority.value}-{n}"),
        timestamp=changes.pop("timestamp", T0),
        **changes,
    )


def test_full_main_queue_drops_the_least_important_newest_alert() -> None:
    queue = MainQueue(3)
    p3 = [make(Priority.P3, i) for i in range(3)]
    assert [queue.put(a) for a in p3] == [None, None, None]
    # A P0 evicts the newest P3; a P3 arriving then is itself dropped.
    p0 = make(Priority.P0)
    assert queue.put(p0) is p3[2]
    late = make(Priority.P3, 9)
    assert queue.put(late) is late
    # Equal priority: the incoming one is dropped, the waiting ones kept.
    full = MainQueue(1)
    first, second = make(Priority.P1, 1), make(Priority.P1, 2)
    assert full.put(first) is None and full.put(second) is second
    assert queue.dropped == 2 and full.dropped == 1
    # Most important first, then oldest first.
    assert queue.take(10) == [p0, p3[0], p3[1]]
    assert len(queue) == 0


def test_queue_resize_drops_the_least_important() -> None:
    queue = MainQueue(4)
    alerts = [make(Priority.P0), make(Priority.P3, 1), make(Priority.P2), make(Priority.P3, 2)]
    for a in alerts:
        queue.put(a)
    assert queue.resize(2) == [alerts[3], alerts[1]]
    assert queue.take(5) == [alerts[0], alerts[2]]


# --- routing ------------------------------------------------------------------------------

CHANNELS = ["slack", "pagerduty", "email", "webhook:opsgenie", "webhook:servicenow"]


def router(**data: Any) -> Router:
    return Router(AlertingSettings.model_validate(data, by_name=False), CHANNELS)


@pytest.mark.parametrize(
    ("alert", "expected"),
    [
        # the seed's priority table when no rule matches
        (make(Priority.P0), dict.fromkeys(CHANNELS, 0.0)),
        (make(Priority.P1), {"pagerduty": 300.0, "slack": 300.0}),
        (make(Priority.P2), {"slack": 900.0, "email": 900.0}),
        (make(Priority.P3), {"email": 3600.0, "webhook:opsgenie": 3600.0,
                             "webhook:servicenow": 3600.0}),
    ],
)  # fmt: skip
def test_priority_defaults_follow_the_seed_table(alert: Alert, expected: dict[str, float]) -> None:
    routes = router().route(alert)
    assert {r.channel: r.delay for r in routes.routes} == expected
    assert routes.missing == ()


SEED_RULES = {
    "webhooks": {"opsgenie": {"url": "http://h"}, "servicenow": {"url": "http://h"}},
    "routing": [
        {"match": {"severity": "critical"}, "channels": ["pagerduty", "slack"],
         "escalation": "immediate"},
        {"match": {"component": "cost-control"}, "channels": ["email", "slack"],
         "escalation": "15m"},
        {"match": {"tenant": "vip-*", "priority": ["P2", "P3"]}, "channels": ["opsgenie"],
         "continue": True},
        {"match": {"type": "budget_*"}, "channels": ["webhook:servicenow", "alertmanager"]},
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("alert", "expected", "missing"),
    [
        (make(Priority.P2, severity=Severity.CRITICAL), {"pagerduty": 0.0, "slack": 0.0}, ()),
        (make(Priority.P2, component="cost-control"), {"email": 900.0, "slack": 900.0}, ()),
        # continue: the tenant rule and the type rule both route; the default escalation
        (make(Priority.P3, tenant="vip-1", type="budget_threshold"),
         {"webhook:opsgenie": 3600.0, "webhook:servicenow": 3600.0}, ("alertmanager",)),
        (make(Priority.P1, tenant="vip-1"), {"pagerduty": 300.0, "slack": 300.0}, ()),
        (make(Priority.P2, tenant="other"), {"slack": 900.0, "email": 900.0}, ()),
    ],
)  # fmt: skip
def test_routing_rules(alert: Alert, expected: dict[str, float], missing: tuple[str, ...]) -> None:
    routes = router(**SEED_RULES).route(alert)
    assert {r.channel: r.delay for r in routes.routes} == expected
    assert routes.missing == missing


def test_priority_defaults_can_be_changed() -> None:
    r = router(priorities={"P1": {"escalation": "immediate"}, "P3": {"channels": ["slack"]}})
    assert {x.channel: x.delay for x in r.route(make(Priority.P1)).routes} == {
        "pagerduty": 0.0,
        "slack": 0.0,
    }
    assert {x.channel: x.delay for x in r.route(make(Priority.P3)).routes} == {"slack": 3600.0}


# --- the manager on a real store ------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def servers() -> Iterator[dict[str, Receiver]]:
    with receiver() as slack, receiver() as pd, receiver() as hook:
        yield {"slack": slack, "pagerduty": pd, "webhook": hook}


def alerting(servers: dict[str, Receiver], **extra: Any) -> AlertingSettings:
    data: dict[str, Any] = {
        "slack": {"webhookURL": servers["slack"].url + SLACK_PATH, "timeout": 2},
        "pagerduty": {"integrationKey": PD_KEY, "url": servers["pagerduty"].url, "timeout": 2},
        "webhooks": {
            "ops": {
                "url": f"{servers['webhook'].url}/hook?token={HOOK_TOKEN}",
                "headers": {"Authorization": f"Bearer {HOOK_TOKEN}"},
                "timeout": 2,
            }
        },
        # immediate delivery unless a test says otherwise
        "priorities": {p: {"escalation": "immediate"} for p in ("P0", "P1", "P2", "P3")},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return AlertingSettings.model_validate(data, by_name=False)


class Harness:
    def __init__(self, tmp: Path, settings: AlertingSettings) -> None:
        self.db = f"sqlite:///{tmp}/mlo.db"
        self.store = Store.open(self.db)
        self.clock = Clock()
        self.registry = CollectorRegistry()
        self.manager = AlertingManager(
            settings,
            queue=self.store,
            registry=self.registry,
            logger=LOG,
            clock=self.clock,
            random=lambda: 0.5,
        )

    def deliver(self, at: float | None = None) -> None:
        if at is not None:
            self.clock.now = at
        self.manager.pump(wait=5.0)

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(f"mimir_limit_optimizer_{name}", labels)
        return 0.0 if value is None else value

    def close(self) -> None:
        self.manager.stop(flush=0)
        self.store.close()


@pytest.fixture
def harness(tmp_path: Path, servers: dict[str, Receiver]) -> Iterator[Harness]:
    h = Harness(tmp_path, alerting(servers))
    yield h
    h.close()


def counts(servers: dict[str, Receiver]) -> dict[str, int]:
    return {name: len(server.requests) for name, server in servers.items()}


def test_a_p0_reaches_every_channel_once_and_repeats_are_deduplicated(
    harness: Harness, servers: dict[str, Receiver]
) -> None:
    panic = make(Priority.P0, type="panic_mode", dedup_key="panic")
    for _ in range(3):
        harness.manager.emit(panic)
    harness.deliver()
    harness.manager.emit(panic)  # again, within the dedup window
    harness.deliver(T0 + 60)
    assert counts(servers) == {"slack": 1, "pagerduty": 1, "webhook": 1}
    assert (
        harness.metric(
            "alert_delivery_total", channel="slack", alert_type="panic_mode", result="success"
        )
        == 1
    )
    assert (
        harness.metric(
            "alert_delivery_total", channel="slack", alert_type="panic_mode", result="deduplicated"
        )
        == 3
    )
    # After the window the same incident is notified again.
    harness.manager.emit(panic)
    harness.deliver(T0 + 3601)
    assert counts(servers) == {"slack": 2, "pagerduty": 2, "webhook": 2}
    assert harness.metric("last_successful_alert_timestamp", channel="slack") == T0 + 3601


def test_resolved_goes_only_where_the_firing_alert_went_and_only_once(
    harness: Harness, servers: dict[str, Receiver]
) -> None:
    p2 = make(Priority.P2, type="collection_failed", dedup_key="collect")  # slack + email
    harness.manager.emit(p2)
    harness.deliver()
    assert counts(servers) == {"slack": 1, "pagerduty": 0, "webhook": 0}
    harness.manager.emit(p2.resolved(T0 + 10))
    harness.manager.emit(p2.resolved(T0 + 11))
    harness.deliver(T0 + 20)
    assert counts(servers) == {"slack": 2, "pagerduty": 0, "webhook": 0}
    assert servers["slack"].requests[1].json()["text"].startswith("[P2] RESOLVED")
    # Resolving something never notified sends nothing; firing again after a resolution
    # is a new notification even within the dedup window.
    harness.manager.emit(make(Priority.P2, dedup_key="never").resolved(T0 + 30))
    harness.manager.emit(p2)
    harness.deliver(T0 + 40)
    assert counts(servers) == {"slack": 3, "pagerduty": 0, "webhook": 0}


def test_pagerduty_only_gets_p0_and_p1(harness: Harness, servers: dict[str, Receiver]) -> None:
    harness.manager.emit(make(Priority.P1, dedup_key="p1"))
    harness.manager.emit(make(Priority.P3, dedup_key="p3"))  # email + webhooks by default
    harness.deliver()
    assert counts(servers) == {"slack": 1, "pagerduty": 1, "webhook": 1}


def test_an_alert_resolved_within_its_escalation_delay_is_never_sent(
    tmp_path: Path, servers: dict[str, Receiver]
) -> None:
    h = Harness(tmp_path, alerting(servers, priorities={"P2": {"escalation": "15m"}}))
    try:
        flap = make(Priority.P2, dedup_key="flap")
        stays = make(Priority.P2, dedup_key="stays")
        h.manager.emit(flap)
        h.manager.emit(stays)
        h.deliver()
        h.deliver(T0 + 600)
        assert counts(servers)["slack"] == 0
        h.manager.emit(flap.resolved(T0 + 600))
        h.deliver(T0 + 601)  # routed: the pending firing notification is cancelled
        h.deliver(T0 + 900)
        (request,) = servers["slack"].requests
        assert _incident("slack", request.json()) == "stays"
        h.deliver(T0 + 2000)
        assert counts(servers)["slack"] == 1
    finally:
        h.close()


def test_retries_with_backoff_then_succeeds(harness: Harness, servers: dict[str, Receiver]) -> None:
    servers["webhook"].script(Reply(500), Reply(503))
    harness.manager.emit(make(Priority.P3, dedup_key="retry"))
    harness.deliver()  # attempt 1: 500 -> retry in 5s
    harness.deliver(T0 + 4.9)  # not yet
    assert len(servers["webhook"].requests) == 1
    harness.deliver(T0 + 5)  # attempt 2: 503 -> retry in 10s
    harness.deliver(T0 + 14.9)
    assert len(servers["webhook"].requests) == 2
    harness.deliver(T0 + 15)  # attempt 3: ok
    assert len(servers["webhook"].requests) == 3
    # The receiver can tell it is the same delivery.
    keys = {r.headers["Idempotency-Key"] for r in servers["webhook"].requests}
    assert len(keys) == 1
    labels = {"channel": "webhook:ops", "alert_type": "apply_failed"}
    assert harness.metric("alert_retry_attempts_total", **labels) == 2
    assert harness.metric("alert_delivery_total", result="failure", **labels) == 2
    assert harness.metric("alert_delivery_total", result="success", **labels) == 1
    assert (
        harness.metric(
            "alert_channel_errors_total", channel="webhook:ops", error_type="send_failed"
        )
        == 2
    )
    assert harness.metric("alert_channel_health", channel="webhook:ops") == 1


def test_429_retry_after_is_honoured(harness: Harness, servers: dict[str, Receiver]) -> None:
    servers["slack"].script(Reply(429, {"Retry-After": "30"}))
    harness.manager.emit(make(Priority.P1, dedup_key="rl"))
    harness.deliver()
    harness.deliver(T0 + 29)
    assert len(servers["slack"].requests) == 1
    harness.deliver(T0 + 30)
    assert len(servers["slack"].requests) == 2


def test_dead_letters(tmp_path: Path, servers: dict[str, Receiver]) -> None:
    settings = alerting(servers, delivery={"maxAttempts": 2, "maxAge": "1h"})
    h = Harness(tmp_path, settings)
    try:
        servers["slack"].default = Reply(400, body=b"invalid_payload")
        servers["webhook"].default = Reply(500)
        h.manager.emit(make(Priority.P3, dedup_key="perm", type="t"))  # webhook: 500s
        h.manager.emit(make(Priority.P2, dedup_key="bad", type="t"))  # slack: 400
        h.deliver()
        assert h.metric("alert_delivery_total", channel="slack", alert_type="t",
                        result="dead_letter") == 1  # fmt: skip
        h.deliver(T0 + 5)  # second 500: maxAttempts
        assert h.metric("alert_delivery_total", channel="webhook:ops", alert_type="t",
                        result="dead_letter") == 1  # fmt: skip
        h.deliver(T0 + 1000)
        assert counts(servers) == {"slack": 1, "pagerduty": 0, "webhook": 2}
        # maxAge: a delivery that could never be attempted (its breaker held it back)
        servers["webhook"].default = Reply(200)
        h.manager.configure(alerting(servers, delivery={"maxAge": "1h"}, webhooks={
            "ops": {"url": "http://127.0.0.1:9/never", "enabled": True}}))  # fmt: skip
        h.manager.emit(make(Priority.P3, dedup_key="old", type="t"))
        h.deliver(T0 + 1001)
        h.deliver(T0 + 1001 + 3601)
        assert h.metric("alert_delivery_total", channel="webhook:ops", alert_type="t",
                        result="dead_letter") == 2  # fmt: skip
    finally:
        h.close()


def test_breaker_defers_deliveries_while_open(
    harness: Harness, servers: dict[str, Receiver]
) -> None:
    servers["pagerduty"].default = Reply(500)
    for i in range(5):
        harness.manager.emit(make(Priority.P1, i, dedup_key=f"b{i}"))
    harness.deliver()  # 3 failures open PagerDuty's breaker (threshold 3); 2 deferred
    assert len(servers["pagerduty"].requests) == 3
    assert harness.metric("alert_channel_circuit_breaker_state", channel="pagerduty") == 1
    assert harness.metric("alert_channel_health", channel="pagerduty") == 0
    assert (
        harness.metric(
            "alert_channel_errors_total", channel="pagerduty", error_type="circuit_breaker_open"
        )
        == 2
    )
    harness.deliver(T0 + 299)  # retries are due but the breaker is still open
    assert len(servers["pagerduty"].requests) == 3
    servers["pagerduty"].default = Reply(202)
    harness.deliver(T0 + 300)  # half-open: 3 trials succeed, closed, the rest delivered
    harness.deliver(T0 + 301)
    assert harness.metric("alert_channel_circuit_breaker_state", channel="pagerduty") == 0
    assert harness.metric("alert_channel_health", channel="pagerduty") == 1
    delivered = {r.json()["dedup_key"] for r in servers["pagerduty"].requests[3:]}
    assert delivered == {f"mlo:b{i}" for i in range(5)}
    # Slack was unaffected throughout.
    assert len(servers["slack"].requests) == 5


def test_a_full_retry_queue_dead_letters_new_failures(
    tmp_path: Path, servers: dict[str, Receiver]
) -> None:
    h = Harness(tmp_path, alerting(servers, delivery={"retryQueueSize": 1}))
    try:
        servers["webhook"].default = Reply(500)
        h.manager.emit(make(Priority.P3, 1, dedup_key="r1", type="t"))
        h.manager.emit(make(Priority.P3, 2, dedup_key="r2", type="t"))
        h.deliver()
        assert h.metric("alert_channel_errors_total", channel="webhook:ops",
                        error_type="queue_full") == 1  # fmt: skip
        assert h.metric("alert_queue_size", channel="retry") == 1
    finally:
        h.close()


def test_a_full_main_queue_drops_and_counts_without_blocking(
    tmp_path: Path, servers: dict[str, Receiver]
) -> None:
    h = Harness(tmp_path, alerting(servers, delivery={"mainQueueSize": 2}))
    try:
        start = time.perf_counter()
        for i in range(1000):
            h.manager.emit(make(Priority.P3, i, type="flood"))
        h.manager.emit(make(Priority.P0, type="panic_mode", dedup_key="panic"))
        assert time.perf_counter() - start < 1.0
        assert (
            h.metric("alert_channel_errors_total", channel="queue", error_type="queue_full") == 999
        )
        assert h.metric("alert_delivery_total", channel="queue", alert_type="flood",
                        result="dropped") == 999  # fmt: skip
        h.deliver()
        assert [r.json()["dedup_key"] for r in servers["pagerduty"].requests] == ["mlo:panic"]
    finally:
        h.close()


def test_a_bad_channel_is_unhealthy_while_the_others_work_and_a_reload_recovers_it(
    tmp_path: Path, servers: dict[str, Receiver]
) -> None:
    broken = alerting(servers, slack={"webhookURL": None})
    h = Harness(tmp_path, broken)
    try:
        h.manager.emit(make(Priority.P1, dedup_key="x"))
        h.deliver()
        assert counts(servers) == {"slack": 0, "pagerduty": 1, "webhook": 0}
        assert h.metric("alert_configuration_errors_total", channel="slack",
                        config_error_type="missing_field") == 1  # fmt: skip
        assert h.metric("alert_channel_health", channel="slack") == 0
        (slack,) = [c for c in h.manager.status()["channels"] if c["name"] == "slack"]
        assert slack["healthy"] is False and slack["pending"] == 1
        assert "alerting.slack.webhookURL is not set" in slack["configError"]
        h.manager.configure(broken)  # the same bad config again: counted once
        assert h.metric("alert_configuration_errors_total", channel="slack",
                        config_error_type="missing_field") == 1  # fmt: skip
        h.manager.configure(alerting(servers))  # fixed through hot reload
        h.deliver(T0 + 1)
        assert counts(servers) == {"slack": 1, "pagerduty": 1, "webhook": 0}
        assert h.metric("alert_channel_health", channel="slack") == 1
    finally:
        h.close()


def test_a_rule_naming_an_unconfigured_channel_counts_channel_not_found(
    tmp_path: Path, servers: dict[str, Receiver]
) -> None:
    h = Harness(tmp_path, alerting(servers, routing=[{"channels": ["email", "slack"]}]))
    try:
        h.manager.emit(make(Priority.P2))
        h.deliver()
        assert h.metric("alert_channel_errors_total", channel="email",
                        error_type="channel_not_found") == 1  # fmt: skip
        assert counts(servers)["slack"] == 1
    finally:
        h.close()


def test_status_shows_health_breakers_queues_and_never_a_secret(
    harness: Harness, servers: dict[str, Receiver]
) -> None:
    servers["webhook"].default = Reply(500, body=f"echo {HOOK_TOKEN}".encode())
    servers["slack"].default = Reply(500, body=f"bad {SLACK_PATH}".encode())
    harness.manager.emit(make(Priority.P0, dedup_key="s"))
    harness.deliver()
    status = harness.manager.status()
    text = json.dumps(status)
    for secret in (PD_KEY, HOOK_TOKEN, SLACK_PATH, "slack-secret-path"):
        assert secret not in text
    by_name = {c["name"]: c for c in status["channels"]}
    assert set(by_name) == {"slack", "pagerduty", "webhook:ops"}
    hook = by_name["webhook:ops"]
    assert hook["healthy"] is False and hook["retrying"] == 1
    assert hook["lastError"].startswith("webhook ops returned HTTP 500: echo ***")
    assert hook["circuitBreaker"]["state"] == "closed"
    assert hook["circuitBreaker"]["failureThreshold"] == 5
    assert by_name["pagerduty"]["healthy"] is True and by_name["pagerduty"]["sent"] == 1
    assert status["queues"]["main"] == {"size": 0, "capacity": 1000, "dropped": 0}
    assert status["queues"]["retry"] == {"size": 2, "capacity": 500}


def test_every_seed_metric_is_exported(harness: Harness) -> None:
    harness.manager.emit(make(Priority.P0, dedup_key="m"))
    harness.deliver()
    text = generate_latest(harness.registry).decode()
    for name in (
        "alert_delivery_total", "alert_delivery_duration_seconds", "alert_channel_health",
        "alert_channel_errors_total", "alert_retry_attempts_total",
        "alert_channel_circuit_breaker_state", "alert_queue_size",
        "alert_configuration_errors_total", "last_successful_alert_timestamp",
        "alert_channel_response_time_seconds",
    ):  # fmt: skip
        assert f"# TYPE mimir_limit_optimizer_{name} " in text, name


def test_alerts_survive_a_stop_and_restart_and_arrive_once_per_channel(
    tmp_path: Path, servers: dict[str, Receiver]
) -> None:
    settings = alerting(servers)
    for server in servers.values():
        server.script(Reply(503))  # the first attempt anywhere fails
    first = Harness(tmp_path, settings)
    for i in range(6):
        first.manager.emit(make(Priority.P0, i, dedup_key=f"k{i % 3}"))  # 3 distinct incidents
    first.deliver()  # one attempt per channel fails, the rest go out
    first.manager.emit(make(Priority.P0, 9, dedup_key="late"))
    first.close()  # stop: "late" is stored, not sent
    before = counts(servers)

    assert all(n <= 3 for n in before.values())  # "late" was not sent before the restart

    second = Harness(tmp_path, settings)
    second.clock.now = T0 + 10
    for i in range(3):  # the restarted service sees the same incidents again
        second.manager.emit(make(Priority.P0, i, dedup_key=f"k{i}"))
    second.deliver()
    second.deliver(T0 + 20)
    assert second.store.due_alerts(now=T0 + 1e6) == []
    second.close()
    for name, server in servers.items():
        delivered = [_incident(name, r.json()) for r in server.requests]
        # each incident exactly once, plus the one attempt that failed
        assert sorted(set(delivered)) == ["k0", "k1", "k2", "late"], name
        assert len(delivered) == 5, (name, delivered)


def _incident(channel: str, body: Any) -> str:
    if channel == "pagerduty":
        return str(body["dedup_key"]).removeprefix("mlo:")
    if channel == "webhook":
        return str(body["dedupKey"])
    return str(body["attachments"][0]["blocks"][2]["fields"][-1]["text"].split("\n")[1])


def test_the_worker_thread_delivers_and_stops(tmp_path: Path, servers: dict[str, Receiver]) -> None:
    settings = alerting(servers, delivery={"pollInterval": "50ms"})
    store = Store.open(f"sqlite:///{tmp_path}/mlo.db")
    manager = AlertingManager(settings, queue=store, registry=CollectorRegistry(), logger=LOG)
    manager.start()
    try:
        manager.emit(make(Priority.P0, dedup_key="live", timestamp=time.time()))
        assert len(servers["slack"].wait_for(1, timeout=5)) == 1
    finally:
        manager.stop(flush=1.0)
        store.close()


def test_emit_never_raises_even_when_the_store_is_gone(
    tmp_path: Path, servers: dict[str, Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(tmp_path, alerting(servers))
    h.store.close()
    h.manager.emit(make(Priority.P0))
    h.manager.emit("not an alert")  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR):
        h.deliver()
    assert "could not store alert" in caplog.text
    h.manager.stop(flush=0)


def test_an_alert_survives_a_store_outage_and_is_delivered_after_it(
    tmp_path: Path, servers: dict[str, Receiver]
) -> None:
    h = Harness(tmp_path, alerting(servers))
    store = h.store

    class Outage:
        """The store, failing its first two writes (a database restart, say)."""

        failures = 2

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def enqueue_alert(self, *args: Any, **kwargs: Any) -> Any:
            if Outage.failures:
                Outage.failures -= 1
                raise RuntimeError("database unavailable")
            return store.enqueue_alert(*args, **kwargs)

    h.manager.queue = Outage()  # type: ignore[assignment]
    h.manager.emit(make(Priority.P0, type="panic_mode", dedup_key="outage"))
    h.deliver()
    h.deliver(T0 + 1)
    h.deliver(T0 + 2)
    assert counts(servers) == {"slack": 1, "pagerduty": 1, "webhook": 1}
    h.close()


def test_disabled_alerting_ignores_alerts(tmp_path: Path, servers: dict[str, Receiver]) -> None:
    h = Harness(tmp_path, alerting(servers, enabled=False))
    try:
        h.manager.emit(make(Priority.P0))
        h.deliver()
        assert counts(servers) == {"slack": 0, "pagerduty": 0, "webhook": 0}
    finally:
        h.close()


def test_resolved_alert_helper_keeps_the_dedup_key() -> None:
    fired = make(Priority.P1)
    done = fired.resolved(T0 + 5)
    assert (done.status, done.dedup_key, done.timestamp) == (
        AlertStatus.RESOLVED,
        fired.dedup_key,
        T0 + 5,
    )
    assert fired.id == f"apply_failed-{int(T0 * 1000)}"


def test_only_an_active_replica_delivers(tmp_path: Path, servers: dict[str, Receiver]) -> None:
    leading = {"now": False}
    store = Store.open(f"sqlite:///{tmp_path}/mlo.db")
    manager = AlertingManager(
        alerting(servers),
        queue=store,
        registry=CollectorRegistry(),
        logger=LOG,
        clock=lambda: T0,
        active=lambda: leading["now"],
    )
    try:
        manager.emit(make(Priority.P0, dedup_key="follower"))
        manager.pump(wait=5.0)
        manager.flush(timeout=1.0)
        assert counts(servers) == {"slack": 0, "pagerduty": 0, "webhook": 0}
        assert store.alert_counts()["slack"] == (1, 0)  # queued, for the leader to send
        leading["now"] = True
        manager.pump(wait=5.0)
        assert counts(servers) == {"slack": 1, "pagerduty": 1, "webhook": 1}
    finally:
        manager.stop(flush=0)
        store.close()
