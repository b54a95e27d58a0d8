"""The email channel against a real SMTP server (aiosmtpd on 127.0.0.1): plain delivery to
several recipients with priority headers and a text and an HTML part; STARTTLS and implicit
TLS with a self-signed certificate made for the test (trusted through caFile); AUTH; and the
failures that must not be retried (wrong password, an untrusted certificate, a server
without STARTTLS) while the password never appears in an error."""

from __future__ import annotations

import email
import email.policy
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from mimir_limit_optimizer.alerting.channels import build_channel, channel_specs
from mimir_limit_optimizer.alerting.errors import ChannelError
from mimir_limit_optimizer.alerting.model import Alert, AlertStatus, Priority, Severity
from mimir_limit_optimizer.config.alerting import AlertingSettings
from tests.alerting_servers import PASSWORD, USER, Mailbox, self_signed_cert, smtp_server
from tests.conftest import require_binary

T0 = 1_705_314_600.0


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = require_binary("openssl", "apt-get install openssl")
    return self_signed_cert(tmp_path_factory.mktemp("tls"), openssl)


def alert(priority: Priority = Priority.P0, **changes: Any) -> Alert:
    base: dict[str, Any] = {
        "type": "panic_mode",
        "priority": priority,
        "severity": Severity.CRITICAL,
        "summary": "panic mode <engaged> & limits frozen",
        "component": "protection",
        "dedup_key": "panic_mode",
        "timestamp": T0,
        "details": {"cpu": 97.5},
    }
    base.update(changes)
    return Alert(**base)


def email_channel(port: int, **extra: Any) -> Any:
    data = {
        "email": {
            "smtpHost": "127.0.0.1",
            "smtpPort": port,
            "from": "mlo@example.com",
            "to": ["ops@example.com", "oncall@example.com"],
            "timeout": 5,
            **extra,
        }
    }
    (spec,) = channel_specs(AlertingSettings.model_validate(data, by_name=False))
    return build_channel(spec)


def parsed(mailbox: Mailbox) -> Message:
    (envelope,) = mailbox.messages
    content = envelope.original_content or envelope.content
    assert isinstance(content, bytes)
    return email.message_from_bytes(content, policy=email.policy.default)


def test_plain_smtp_to_several_recipients_with_priority_headers_and_two_parts() -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        email_channel(port, tls="none").send(alert())
    (envelope,) = mailbox.messages
    assert envelope.mail_from == "mlo@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    message = parsed(mailbox)
    assert message["Subject"] == (
        "[mimir-limit-optimizer] [P0] FIRING panic_mode: panic mode <engaged> & limits frozen"
    )
    assert message["To"] == "ops@example.com, oncall@example.com"
    assert (message["X-Priority"], message["Importance"], message["Priority"]) == (
        "1 (Highest)",
        "high",
        "urgent",
    )
    assert message["X-Alert-Dedup-Key"] == "panic_mode"
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.get_payload()  # type: ignore[misc]
    assert text.get_content_type() == "text/plain"
    assert "panic mode <engaged> & limits frozen" in text.get_payload(decode=True).decode()
    assert "cpu: 97.5" in text.get_payload(decode=True).decode()
    assert html.get_content_type() == "text/html"
    body = html.get_payload(decode=True).decode()
    assert "panic mode &lt;engaged&gt; &amp; limits frozen" in body  # escaped


@pytest.mark.parametrize(
    ("priority", "x_priority", "importance"),
    [(Priority.P1, "2 (High)", "high"), (Priority.P2, "3 (Normal)", "normal"),
     (Priority.P3, "5 (Lowest)", "low")],
)  # fmt: skip
def test_priority_headers_follow_the_alert_priority(
    priority: Priority, x_priority: str, importance: str
) -> None:
    message = email_channel(25, tls="none").message(alert(priority))
    assert (message["X-Priority"], message["Importance"]) == (x_priority, importance)


def test_subject_is_one_line_and_truncated() -> None:
    message = email_channel(25, tls="none").message(
        alert(summary="line one\r\nBcc: evil@example.com " + "x" * 500)
    )
    assert "\n" not in message["Subject"] and len(message["Subject"]) == 200
    assert message["Bcc"] is None


def test_starttls_with_a_self_signed_certificate_and_auth(cert: tuple[Path, Path]) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox, cert=cert, mode="starttls", auth=True) as port:
        channel = email_channel(
            port, tls="starttls", caFile=str(cert[0]), username=USER, password=PASSWORD
        )
        channel.send(alert(status=AlertStatus.RESOLVED))
    message = parsed(mailbox)
    assert "RESOLVED panic_mode" in message["Subject"]


def test_implicit_tls(cert: tuple[Path, Path]) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox, cert=cert, mode="implicit", auth=True) as port:
        email_channel(
            port, tls="implicit", caFile=str(cert[0]), username=USER, password=PASSWORD
        ).send(alert())
    assert len(mailbox.messages) == 1


def test_tls_verify_off_accepts_an_untrusted_certificate(cert: tuple[Path, Path]) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox, cert=cert, mode="starttls") as port:
        email_channel(port, tls="starttls", tlsVerify=False).send(alert())
    assert len(mailbox.messages) == 1


@pytest.mark.parametrize(
    ("server", "client", "message"),
    [
        # wrong password: permanent, and the password is not in the error
        ({"mode": "starttls", "auth": True},
         {"tls": "starttls", "ca": True, "username": USER, "password": "wrong-pw-123"},
         "authentication failed"),
        # the certificate is not trusted (no caFile)
        ({"mode": "starttls"}, {"tls": "starttls"}, "TLS failed"),
        # the server offers no STARTTLS
        ({"mode": "none"}, {"tls": "starttls"}, "STARTTLS"),
    ],
)  # fmt: skip
def test_permanent_smtp_failures(
    cert: tuple[Path, Path], server: dict[str, Any], client: dict[str, Any], message: str
) -> None:
    mailbox = Mailbox()
    extra = {k: v for k, v in client.items() if k != "ca"}
    if client.get("ca"):
        extra["caFile"] = str(cert[0])
    with smtp_server(mailbox, cert=cert, **server) as port:
        channel = email_channel(port, **extra)
        with pytest.raises(ChannelError) as caught:
            channel.send(alert())
    assert caught.value.retryable is False
    assert message in str(caught.value)
    assert "wrong-pw-123" not in str(caught.value) and PASSWORD not in str(caught.value)
    assert mailbox.messages == []


def test_describe_names_the_server_not_the_credentials() -> None:
    channel = email_channel(587, username=USER, password=PASSWORD)
    assert channel.describe() == "smtp://127.0.0.1:587 (starttls) to 2 recipient(s)"
