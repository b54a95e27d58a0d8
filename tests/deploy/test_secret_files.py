"""Alert channel secrets can come from files (the chart mounts existing Kubernetes Secrets and
names the files): the configuration accepts `webhookURLFile`, `integrationKeyFile`,
`passwordFile` and a webhook's `urlFile`; the channel uses the file's content (and redacts it);
a missing or empty file, or both forms at once, mark the channel unusable with a message
naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mimir_limit_optimizer.alerting.channels import build_channel, channel_specs
from mimir_limit_optimizer.alerting.errors import ChannelConfigError
from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.alerting import AlertingSettings
from mimir_limit_optimizer.config.loader import load_config

SLACK_URL = "https://hooks.slack.com/services/T000/B000/secretsecretsecret"


def _alerting(tmp_path: Path, alerting: dict[str, object]) -> AlertingSettings:
    path = tmp_path / "mlo.yaml"
    path.write_text(yaml.safe_dump({"alerting": alerting}), encoding="utf-8")
    return load_config(path, env={}, cli={}, catalogue=load_catalogue()).config.alerting


def test_channels_read_their_secret_from_the_named_file(tmp_path: Path) -> None:
    (tmp_path / "slack").write_text(SLACK_URL + "\n", encoding="utf-8")
    (tmp_path / "pd").write_text("R0UT1NGKEY0123456789", encoding="utf-8")
    (tmp_path / "hook").write_text(
        "https://hooks.example.com/x?token=abcdefgh123", encoding="utf-8"
    )
    (tmp_path / "smtp").write_text("s3cr3t-passw0rd", encoding="utf-8")
    settings = _alerting(
        tmp_path,
        {
            "slack": {"webhookURLFile": str(tmp_path / "slack")},
            "pagerduty": {"integrationKeyFile": str(tmp_path / "pd")},
            "email": {"smtpHost": "smtp.example.com", "from": "mlo@example.com",
                      "to": ["ops@example.com"], "username": "mlo",
                      "passwordFile": str(tmp_path / "smtp")},
            "webhooks": {"opsgenie": {"urlFile": str(tmp_path / "hook")}},
        },
    )  # fmt: skip
    channels = {spec.name: build_channel(spec) for spec in channel_specs(settings)}
    assert set(channels) == {"slack", "pagerduty", "email", "webhook:opsgenie"}
    slack = channels["slack"]
    assert slack.settings.webhook_url.get_secret_value() == SLACK_URL  # type: ignore[attr-defined]
    assert "secretsecretsecret" not in slack.redact(f"POST {SLACK_URL} failed")  # type: ignore[attr-defined]
    assert channels["pagerduty"].settings.integration_key.get_secret_value() == (  # type: ignore[attr-defined]
        "R0UT1NGKEY0123456789"
    )
    assert "s3cr3t-passw0rd" not in channels["email"].redact("auth s3cr3t-passw0rd")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("content", "both", "message"),
    [
        (None, False, "alerting.slack.webhookURLFile: cannot read"),
        ("  \n", False, "alerting.slack.webhookURLFile: .* is empty"),
        (SLACK_URL, True, "both webhookURL and webhookURLFile are set"),
    ],
)
def test_a_bad_secret_file_makes_the_channel_unusable(
    tmp_path: Path, content: str | None, both: bool, message: str
) -> None:
    path = tmp_path / "slack"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    slack: dict[str, object] = {"webhookURLFile": str(path)}
    if both:
        slack["webhookURL"] = SLACK_URL
    (spec,) = channel_specs(_alerting(tmp_path, {"slack": slack}))
    with pytest.raises(ChannelConfigError, match=message) as raised:
        build_channel(spec)
    assert "secretsecretsecret" not in str(raised.value)
