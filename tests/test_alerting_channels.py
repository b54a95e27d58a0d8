"""Each channel against a real local server (127.0.0.1): the exact payload shapes (Slack
blocks and colours, PagerDuty Events v2 trigger/resolve with a deterministic dedup_key,
Alertmanager v2 alert objects, webhook JSON and the Alertmanager-webhook format), fields
truncated to each service's limits, Retry-After read as seconds or an HTTP date, bad
settings refused with the key to fix, and ONE conformance table run against every channel
(email included): success, 5xx, 429 with Retry-After, a rejected request, a timeout and a
refused connection each give the same verdict (retryable or not, error type), and no
secret ever appears in an error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mimir_limit_optimizer.alerting.channels import (
    build_channel,
    channel_specs,
    resolve_channel_name,
)
from mimir_limit_optimizer.alerting.channels.http import retry_after_seconds
from mimir_limit_optimizer.alerting.channels.pagerduty import dedup_key
from mimir_limit_optimizer.alerting.codec import from_payload, to_payload
from mimir_limit_optimizer.alerting.errors import ChannelConfigError, ChannelError
from mimir_limit_optimizer.alerting.model import Alert, AlertStatus, Priority, Severity
from mimir_limit_optimizer.config.alerting import AlertingSettings
from tests.alerting_servers import (
    Mailbox,
    Receiver,
    Reply,
    receiver,
    refused_url,
    silent_server,
    smtp_server,
)

T0 = 1_705_314_600.0  # 2024-01-15T10:30:00Z
SLACK_SECRET = "T000/B000/slack-s3cret-path"
PD_KEY = "pd0123456789abcdef0123456789abcd"
HOOK_TOKEN = "hook-t0ken-s3cret"


def alert(**changes: Any) -> Alert:
    base: dict[str, Any] = {
        "type": "apply_failed",
        "priority": Priority.P1,
        "severity": Severity.ERROR,
        "summary": "writing runtime.yaml failed: disk full",
        "component": "target",
        "dedup_key": "apply_failed:runtime.yaml",
        "timestamp": T0,
        "tenant": "team-a",
        "details": {"changes": 3, "error": "disk full"},
    }
    base.update(changes)
    return Alert(**base)


def settings(data: dict[str, Any]) -> AlertingSettings:
    return AlertingSettings.model_validate(data, by_name=False)


def channel_for(data: dict[str, Any], name: str) -> Any:
    config = settings(data)
    resolved = resolve_channel_name(config, name)
    assert resolved is not None
    spec = next(s for s in channel_specs(config) if s.name == resolved)
    return build_channel(spec)


def slack_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {"slack": {"webhookURL": url, "channel": "#mimir-alerts", **extra}}


# --- payload shapes -----------------------------------------------------------------------


def test_slack_payload_has_colour_blocks_fields_channel_and_username() -> None:
    with receiver() as server:
        slack = channel_for(slack_settings(f"{server.url}/services/{SLACK_SECRET}"), "slack")
        slack.send(alert())
        slack.send(alert(status=AlertStatus.RESOLVED))
        slack.close()
        first, resolved = server.wait_for(2)
    assert first.path == f"/services/{SLACK_SECRET}"
    assert first.headers["Content-Type"] == "application/json"
    body = first.json()
    assert body["channel"] == "#mimir-alerts"
    assert body["username"] == "Mimir Limit Optimizer"
    assert body["text"] == "[P1] FIRING apply_failed: writing runtime.yaml failed: disk full"
    (attachment,) = body["attachments"]
    assert attachment["color"] == "#E01E5A"
    blocks = attachment["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "section", "context"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": body["text"]}
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in blocks[2]["fields"]}
    assert fields == {
        "*Priority*": "P1",
        "*Severity*": "error",
        "*Status*": "firing",
        "*Type*": "apply_failed",
        "*Component*": "target",
        "*Tenant*": "team-a",
        "*Time*": "2024-01-15T10:30:00.000Z",
        "*Dedup key*": "apply_failed:runtime.yaml",
    }
    assert all(f["type"] == "mrkdwn" for f in blocks[2]["fields"])
    assert blocks[3]["text"]["text"] == "```changes: 3\nerror: disk full```"
    assert resolved.json()["attachments"][0]["color"] == "#2EB67D"
    assert resolved.json()["text"].startswith("[P1] RESOLVED apply_failed")


@pytest.mark.parametrize(
    ("priority", "colour"),
    [(Priority.P0, "#B00020"), (Priority.P1, "#E01E5A"), (Priority.P2, "#ECB22E"),
     (Priority.P3, "#36C5F0")],
)  # fmt: skip
def test_slack_colour_follows_priority(priority: Priority, colour: str) -> None:
    slack = channel_for(slack_settings("https://hooks.slack.com/services/x"), "slack")
    assert slack.payload(alert(priority=priority))["attachments"][0]["color"] == colour


def test_slack_truncates_to_its_block_limits() -> None:
    slack = channel_for(slack_settings("https://hooks.slack.com/services/x"), "slack")
    huge = alert(summary="s" * 10_000, tenant="t" * 5000, details={"k": "v" * 10_000})
    blocks = slack.payload(huge)["attachments"][0]["blocks"]
    assert len(blocks[0]["text"]["text"]) == 150
    assert blocks[0]["text"]["text"].endswith("…")
    assert len(blocks[1]["text"]["text"]) == 3000
    assert max(len(f["text"]) for f in blocks[2]["fields"]) == 2000
    assert len(blocks[2]["fields"]) <= 10
    assert len(blocks[3]["text"]["text"]) <= 3000
    assert len(slack.payload(huge)["text"]) == 3000


def test_pagerduty_trigger_and_resolve_share_a_deterministic_dedup_key() -> None:
    with receiver() as server:
        pd = channel_for(
            {"pagerduty": {"integrationKey": PD_KEY, "url": f"{server.url}/v2/enqueue"}},
            "pagerduty",
        )
        pd.send(alert())
        pd.send(alert(status=AlertStatus.RESOLVED, timestamp=T0 + 60))
        pd.close()
        trigger, resolve = server.wait_for(2)
    assert trigger.path == "/v2/enqueue"
    assert trigger.json() == {
        "routing_key": PD_KEY,
        "dedup_key": "mlo:apply_failed:runtime.yaml",
        "event_action": "trigger",
        "payload": {
            "summary": "writing runtime.yaml failed: disk full",
            "source": "mimir-limit-optimizer",
            "severity": "error",
            "timestamp": "2024-01-15T10:30:00.000Z",
            "component": "target",
            "group": "team-a",
            "class": "apply_failed",
            "custom_details": {
                "changes": 3,
                "error": "disk full",
                "priority": "P1",
                "type": "apply_failed",
                "alert_id": "apply_failed-1705314600000",
                "tenant": "team-a",
            },
        },
        "client": "Mimir Limit Optimizer",
    }
    assert resolve.json() == {
        "routing_key": PD_KEY,
        "dedup_key": "mlo:apply_failed:runtime.yaml",
        "event_action": "resolve",
    }


@pytest.mark.parametrize(
    ("severity", "expected"),
    [(Severity.CRITICAL, "critical"), (Severity.ERROR, "error"),
     (Severity.WARNING, "warning"), (Severity.INFO, "info")],
)  # fmt: skip
def test_pagerduty_severity_mapping(severity: Severity, expected: str) -> None:
    pd = channel_for({"pagerduty": {"integrationKey": PD_KEY}}, "pagerduty")
    assert pd.payload(alert(severity=severity))["payload"]["severity"] == expected


def test_pagerduty_truncates_summary_to_1024_and_dedup_key_to_255() -> None:
    pd = channel_for({"pagerduty": {"integrationKey": PD_KEY}}, "pagerduty")
    long_key = "k" * 1000
    event = pd.payload(alert(summary="x" * 5000, dedup_key=long_key, component="c" * 400))
    assert len(event["payload"]["summary"]) == 1024
    assert event["payload"]["summary"].endswith("…")
    assert len(event["payload"]["component"]) == 255
    assert len(event["dedup_key"]) == 255
    # Deterministic, and distinct for keys sharing the kept prefix.
    assert event["dedup_key"] == dedup_key(alert(dedup_key=long_key))
    assert dedup_key(alert(dedup_key=long_key + "x")) != event["dedup_key"]


def test_pagerduty_pages_only_p0_and_p1_by_default() -> None:
    (spec,) = channel_specs(settings({"pagerduty": {"integrationKey": PD_KEY}}))
    assert spec.priorities == {"P0", "P1"}
    widened = settings({"pagerduty": {"integrationKey": PD_KEY, "priorities": ["P0", "P1", "P2"]}})
    assert channel_specs(widened)[0].priorities == {"P0", "P1", "P2"}


def test_alertmanager_receives_v2_alert_objects() -> None:
    with receiver() as server:
        am = channel_for(
            {
                "alertmanager": {
                    "url": server.url + "/",
                    "extraLabels": {"cluster": "prod"},
                    "generatorURL": "http://mlo.example/audit",
                    "resolveTimeout": "1h",
                }
            },
            "alertmanager",
        )
        am.send(alert())
        am.send(alert(status=AlertStatus.RESOLVED, timestamp=T0 + 120))
        am.close()
        firing, resolved = server.wait_for(2)
    assert firing.method == "POST" and firing.path == "/api/v2/alerts"
    labels = {
        "cluster": "prod",
        "alertname": "apply_failed",
        "severity": "error",
        "priority": "P1",
        "component": "target",
        "dedup_key": "apply_failed:runtime.yaml",
        "source": "mimir-limit-optimizer",
        "tenant": "team-a",
    }
    assert firing.json() == [
        {
            "labels": labels,
            "annotations": {
                "summary": "writing runtime.yaml failed: disk full",
                "description": "changes: 3\nerror: disk full",
            },
            "startsAt": "2024-01-15T10:30:00.000Z",
            "endsAt": "2024-01-15T11:30:00.000Z",
            "generatorURL": "http://mlo.example/audit",
        }
    ]
    (ended,) = resolved.json()
    assert ended["labels"] == labels  # same labels: Alertmanager resolves the same alert
    assert ended["endsAt"] == "2024-01-15T10:32:00.000Z"


def test_webhook_sends_json_with_method_and_headers() -> None:
    with receiver() as server:
        hook = channel_for(
            {
                "webhooks": {
                    "opsgenie": {
                        "url": f"{server.url}/v1/alert?token={HOOK_TOKEN}",
                        "method": "PUT",
                        "headers": {"Authorization": f"GenieKey {HOOK_TOKEN}", "X-Team": "sre"},
                    }
                }
            },
            "opsgenie",
        )
        hook.send(alert())
        hook.close()
        (request,) = server.wait_for(1)
    assert request.method == "PUT"
    assert request.path == f"/v1/alert?token={HOOK_TOKEN}"
    assert request.headers["Authorization"] == f"GenieKey {HOOK_TOKEN}"
    assert request.headers["X-Team"] == "sre"
    assert re.fullmatch(r"[0-9a-f]{32}", request.headers["Idempotency-Key"])
    body = request.json()
    assert body == {
        "id": "apply_failed-1705314600000",
        "type": "apply_failed",
        "status": "firing",
        "priority": "P1",
        "severity": "error",
        "summary": "writing runtime.yaml failed: disk full",
        "component": "target",
        "tenant": "team-a",
        "dedupKey": "apply_failed:runtime.yaml",
        "timestamp": T0,
        "time": "2024-01-15T10:30:00.000Z",
        "details": {"changes": 3, "error": "disk full"},
        "source": "mimir-limit-optimizer",
    }
    assert from_payload(body) == alert()
    assert HOOK_TOKEN not in hook.describe()


def test_webhook_alertmanager_format_is_the_alertmanager_webhook_payload() -> None:
    with receiver() as server:
        hook = channel_for(
            {"webhooks": {"am": {"url": server.url, "method": "PATCH", "format": "alertmanager"}}},
            "webhook:am",
        )
        hook.send(alert(status=AlertStatus.RESOLVED))
        hook.close()
        (request,) = server.wait_for(1)
    body = request.json()
    assert request.method == "PATCH"
    assert set(body) == {
        "version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
        "commonLabels", "commonAnnotations", "externalURL", "title", "alerts",
    }  # fmt: skip
    assert body["version"] == "4" and body["status"] == "resolved"
    assert body["receiver"] == "webhook:am"
    assert body["groupLabels"] == {"alertname": "apply_failed"}
    (item,) = body["alerts"]
    assert set(item) == {
        "status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint",
    }  # fmt: skip
    assert item["status"] == "resolved" and item["endsAt"] == "2024-01-15T10:30:00.000Z"
    assert re.fullmatch(r"[0-9a-f]{16}", item["fingerprint"])


def test_payload_round_trip_survives_odd_details() -> None:
    odd = alert(details={"when": object, "n": float("nan"), "nested": {"a": (1, 2)}})
    back = from_payload(to_payload(odd))
    assert back.details["nested"] == {"a": [1, 2]}
    assert isinstance(back.details["when"], str)


# --- Retry-After --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"Retry-After": "Mon, 15 Jan 2024 10:31:00 GMT",
          "Date": "Mon, 15 Jan 2024 10:30:00 GMT"}, 60.0),
        ({"Retry-After": "Mon, 15 Jan 2024 10:31:00 GMT"}, None),  # no Date to measure from
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)  # fmt: skip
def test_retry_after_seconds(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(httpx.Response(429, headers=headers)) == seconds


# --- bad settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind", "message"),
    [
        ({"slack": {}}, "missing_field", "alerting.slack.webhookURL is not set"),
        ({"slack": {"webhookURL": "hooks.slack.com/x"}}, "invalid_url", "not an http(s) URL"),
        ({"pagerduty": {}}, "missing_field", "alerting.pagerduty.integrationKey is not set"),
        ({"pagerduty": {"integrationKey": "ab cd"}}, "invalid_value", "whitespace"),
        ({"email": {"from": "a@b", "to": ["c@d"]}}, "missing_field",
         "alerting.email.smtpHost is not set"),
        ({"email": {"smtpHost": "h", "from": "a@b"}}, "missing_field", "alerting.email.to"),
        ({"email": {"smtpHost": "h", "from": "a@b", "to": "ops"}}, "invalid_value",
         "'ops' is not an email address"),
        ({"email": {"smtpHost": "h", "from": "a@b", "to": ["c@d"], "tls": "none",
                    "username": "u"}}, "invalid_value", "password in clear"),
        ({"webhooks": {"x": {"url": "http://h/x", "method": "GET"}}}, "invalid_value",
         "alerting.webhooks.x.method 'GET' is not supported"),
        ({"webhooks": {"x": {"url": "http://h/x", "format": "xml"}}}, "invalid_value",
         "format 'xml'"),
        ({"alertmanager": {}}, "missing_field", "alerting.alertmanager.url is not set"),
        ({"alertmanager": {"url": "http://h", "caFile": "/nonexistent/ca.pem"}},
         "invalid_value", "caFile"),
    ],
)  # fmt: skip
def test_bad_channel_settings_name_the_key_and_the_fix(
    data: dict[str, Any], kind: str, message: str
) -> None:
    (spec,) = channel_specs(settings(data))
    with pytest.raises(ChannelConfigError) as caught:
        build_channel(spec)
    assert caught.value.kind == kind
    assert message in str(caught.value)


def test_a_secret_url_is_never_echoed_by_its_config_error() -> None:
    (spec,) = channel_specs(settings({"slack": {"webhookURL": "ftp://x/" + SLACK_SECRET}}))
    with pytest.raises(ChannelConfigError) as caught:
        build_channel(spec)
    assert SLACK_SECRET not in str(caught.value)


def test_routing_names_are_checked_at_load() -> None:
    with pytest.raises(ValueError, match=r"unknown alert channel 'slak'.*did you mean 'slack'"):
        settings({"routing": [{"match": {"severity": "critical"}, "channels": ["slak"]}]})
    ok = settings({"webhooks": {"ops": {"url": "http://h"}}, "routing": [{"channels": ["ops"]}]})
    assert ok.routing[0].channels == ["ops"]


# --- one conformance table for every channel -----------------------------------------------


@dataclass(frozen=True)
class Verdict:
    ok: bool
    retryable: bool | None = None
    error_type: str | None = None
    retry_after: float | None = None


# Behaviour of the service -> what every channel must say. Email has no Retry-After: its
# "rate limited" (a 4xx reply) is retryable without one.
CONFORMANCE: dict[str, Verdict] = {
    "accepts": Verdict(True),
    "unavailable": Verdict(False, True, "send_failed"),  # 5xx / 451
    "rate_limited": Verdict(False, True, "send_failed", 7.0),  # 429 Retry-After: 7 / 421
    "rejects": Verdict(False, False, "send_failed"),  # 400 / 550
    "hangs": Verdict(False, True, "timeout"),
    "refuses": Verdict(False, True, "send_failed"),  # nothing listens
}
HTTP_REPLIES = {
    "accepts": Reply(202, body=b'{"status":"success"}'),
    "unavailable": Reply(500, body=b"internal error"),
    "rate_limited": Reply(429, {"Retry-After": "7"}, b"rate limited"),
    "rejects": Reply(400, body=b"invalid_payload"),
    "hangs": Reply(200, delay=1.0),
}
SMTP_REPLIES = {
    "accepts": "250 OK",
    "unavailable": "451 Requested action aborted: local error",
    "rate_limited": "421 Too many messages, slow down",
    "rejects": "554 Transaction failed",
}
TIMEOUT = 0.3  # seconds: every channel's timeout in this table


def _http_config(kind: str, url: str) -> dict[str, Any]:
    if kind == "slack":
        return slack_settings(url + "/services/" + SLACK_SECRET, timeout=TIMEOUT)
    if kind == "pagerduty":
        return {"pagerduty": {"integrationKey": PD_KEY, "url": url, "timeout": TIMEOUT}}
    if kind == "webhook":
        return {"webhooks": {"w": {"url": f"{url}/?token={HOOK_TOKEN}", "timeout": TIMEOUT}}}
    return {"alertmanager": {"url": url, "timeout": TIMEOUT}}


@contextmanager
def channel_behaving(kind: str, behaviour: str, tmp_path: Path) -> Iterator[Any]:
    """A channel of `kind` whose service shows `behaviour`."""
    with ExitStack() as stack:
        if kind == "email":
            mailbox = Mailbox()
            if behaviour == "refuses":
                port = int(refused_url().split(":")[2].split("/")[0])
            elif behaviour == "hangs":
                port = stack.enter_context(silent_server())
            else:
                mailbox.data_reply = SMTP_REPLIES[behaviour]
                port = stack.enter_context(smtp_server(mailbox))
            config = {
                "email": {
                    "smtpHost": "127.0.0.1",
                    "smtpPort": port,
                    "tls": "none",
                    "from": "mlo@example.com",
                    "to": ["ops@example.com"],
                    "timeout": TIMEOUT,
                }
            }
        else:
            if behaviour == "refuses":
                url = refused_url().removesuffix("/x")
            else:
                server: Receiver = stack.enter_context(receiver())
                server.default = HTTP_REPLIES[behaviour]
                url = server.url
            config = _http_config(kind, url)
        name = "webhook:w" if kind == "webhook" else kind
        channel = channel_for(config, name)
        stack.callback(channel.close)
        yield channel


def _email_verdict(verdict: Verdict) -> Verdict:
    return Verdict(verdict.ok, verdict.retryable, verdict.error_type, None)


@pytest.mark.parametrize("behaviour", list(CONFORMANCE))
@pytest.mark.parametrize("kind", ["slack", "pagerduty", "webhook", "alertmanager", "email"])
def test_conformance(kind: str, behaviour: str, tmp_path: Path) -> None:
    expected = CONFORMANCE[behaviour]
    if kind == "email":
        expected = _email_verdict(expected)
    with channel_behaving(kind, behaviour, tmp_path) as channel:
        try:
            channel.send(alert())
        except ChannelError as exc:
            got = Verdict(False, exc.retryable, exc.error_type, exc.retry_after)
            for secret in (SLACK_SECRET, PD_KEY, HOOK_TOKEN):
                assert secret not in str(exc)
        else:
            got = Verdict(True)
    assert got == expected


def test_every_channel_kind_is_in_the_conformance_table() -> None:
    data = {
        **slack_settings("http://h/x"),
        "pagerduty": {"integrationKey": PD_KEY},
        "email": {"smtpHost": "h", "from": "a@b", "to": ["c@d"]},
        "webhooks": {"w": {"url": "http://h"}},
        "alertmanager": {"url": "http://h"},
    }
    kinds = {spec.kind for spec in channel_specs(settings(data))}
    assert kinds == {"slack", "pagerduty", "email", "webhook", "alertmanager"}


def test_disabled_channels_are_not_built() -> None:
    data = {"slack": {"enabled": False, "webhookURL": "http://h"}, "webhooks": {}}
    assert channel_specs(settings(data)) == []
    assert resolve_channel_name(settings(data), "slack") is None


def test_channel_spec_breaker_defaults_follow_the_seed_table() -> None:
    data = {
        **slack_settings("http://h/x"),
        "pagerduty": {"integrationKey": PD_KEY},
        "email": {"smtpHost": "h", "from": "a@b", "to": ["c@d"]},
        "webhooks": {"w": {"url": "http://h"}},
    }
    table: dict[str, tuple[int, float, int]] = {
        s.kind: (s.breaker.failure_threshold, s.breaker.recovery_timeout,
                 s.breaker.half_open_max_calls)
        for s in channel_specs(settings(data))
    }  # fmt: skip
    assert table == {
        "slack": (5, 300.0, 3),
        "pagerduty": (3, 300.0, 3),
        "email": (5, 600.0, 3),
        "webhook": (5, 300.0, 3),
    }
