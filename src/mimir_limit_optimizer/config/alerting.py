"""Typed settings of the `alerting` section: channels, routing, priorities and delivery.

Channel settings are deliberately lenient: a missing webhook URL, an SMTP host left empty or
an unknown HTTP method does not reject the whole configuration (the optimizer must start and
keep optimizing). The alerting package checks each channel when it builds it and marks a
channel with a bad configuration unhealthy, with a clear error and a metric, while the other
channels work; fixing the file (hot reload) recovers it. Only malformed values (a port that
is not a number, a bad duration) are load errors, as everywhere else.

Secrets (webhook URLs, integration keys, SMTP passwords, secret-looking header values) are
SecretStr: never logged, never shown by `mlo config show` or `/debug/alerting/status`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)
from pydantic.alias_generators import to_camel

from mimir_limit_optimizer.config.secrets import hide_secrets
from mimir_limit_optimizer.config.types import Duration


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


PriorityName = Literal["P0", "P1", "P2", "P3"]
SeverityName = Literal["critical", "error", "warning", "info"]
ALL_PRIORITIES: tuple[PriorityName, ...] = ("P0", "P1", "P2", "P3")
PAGE_PRIORITIES: tuple[PriorityName, ...] = ("P0", "P1")  # PagerDuty's default

# Channel names a routing rule may use besides a webhook's own name.
CHANNEL_KINDS = ("slack", "pagerduty", "email", "alertmanager")
ROUTE_GROUPS = ("all", "webhooks", "webhook")  # "webhook" = "webhooks" (the Go tool spells it so)

# The Go optimizer's priority table: channels and escalation delay (seconds) when no rule matches.
SEED_PRIORITY_DEFAULTS: Mapping[str, tuple[tuple[str, ...], float]] = MappingProxyType(
    {
        "P0": (("all",), 0.0),
        "P1": (("pagerduty", "slack"), 300.0),
        "P2": (("slack", "email"), 900.0),
        "P3": (("email", "webhooks"), 3600.0),
    }
)


def _as_list(value: Any) -> Any:
    """A single value where a list is expected (`severity: critical`) is a one-item list."""
    return [value] if isinstance(value, str) else value


def _immediate(value: Any) -> Any:
    return 0.0 if isinstance(value, str) and value.strip().lower() == "immediate" else value


def _hide(value: dict[str, Any]) -> dict[str, Any]:
    hidden: dict[str, Any] = hide_secrets(value)
    return hidden


# `immediate` or a duration (`5m`); seconds inside.
Escalation = Annotated[Duration, BeforeValidator(_immediate), Field(ge=0)]
Globs = Annotated[list[str], BeforeValidator(_as_list)]
# HTTP headers; values under secret-looking names (Authorization, X-Api-Key) become SecretStr.
Headers = Annotated[dict[str, str | SecretStr], AfterValidator(_hide)]


class ChannelBreakerSettings(_Section):
    """Per channel: after `failureThreshold` consecutive failed sends the channel is not
    tried for `recoveryTimeout`; then up to `halfOpenMaxCalls` trial sends decide: all
    succeed -> closed again, one fails -> open again."""

    failure_threshold: int = Field(5, ge=1, le=1000)
    recovery_timeout: Duration = Field(300.0, gt=0)
    half_open_max_calls: int = Field(3, ge=1, le=100)


def _breaker(failures: int, recovery: float) -> Any:
    return Field(
        default_factory=lambda: ChannelBreakerSettings(
            failure_threshold=failures, recovery_timeout=recovery
        )
    )


class SlackSettings(_Section):
    enabled: bool = True
    # Incoming webhook URL (https://hooks.slack.com/services/...): a secret.
    webhook_url: SecretStr | None = Field(None, alias="webhookURL")
    # Or a file holding it (a mounted Kubernetes Secret), read when the channel is built.
    webhook_url_file: str | None = Field(None, alias="webhookURLFile")
    # Destination channel; legacy webhooks honour it, app webhooks post to their own channel.
    channel: str | None = None
    username: str = "Mimir Limit Optimizer"
    icon_emoji: str | None = None
    priorities: list[PriorityName] = Field(default_factory=lambda: list(ALL_PRIORITIES))
    timeout: Duration = Field(10.0, gt=0)
    tls_verify: bool = True
    ca_file: str | None = None
    circuit_breaker: ChannelBreakerSettings = _breaker(5, 300.0)


class PagerDutySettings(_Section):
    enabled: bool = True
    # Events API v2 integration (routing) key of the service: a secret.
    integration_key: SecretStr | None = None
    # Or a file holding it (a mounted Kubernetes Secret), read when the channel is built.
    integration_key_file: str | None = None
    url: str = "https://events.pagerduty.com/v2/enqueue"
    # `payload.source` of each event (the affected system).
    source: str = "mimir-limit-optimizer"
    # Pages are for P0 and P1 only unless widened here.
    priorities: list[PriorityName] = Field(default_factory=lambda: list(PAGE_PRIORITIES))
    timeout: Duration = Field(30.0, gt=0)
    tls_verify: bool = True
    ca_file: str | None = None
    circuit_breaker: ChannelBreakerSettings = _breaker(3, 300.0)


class EmailSettings(_Section):
    enabled: bool = True
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    # starttls: plain connection upgraded with STARTTLS (port 587); implicit: TLS from the
    # first byte (port 465); none: no encryption (a local relay only).
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    tls_verify: bool = True
    ca_file: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    # Or a file holding it (a mounted Kubernetes Secret), read when the channel is built.
    password_file: str | None = None
    from_address: str | None = Field(None, alias="from")
    to: Globs = Field(default_factory=list)
    subject_prefix: str = "[mimir-limit-optimizer]"
    priorities: list[PriorityName] = Field(default_factory=lambda: list(ALL_PRIORITIES))
    timeout: Duration = Field(30.0, gt=0)
    circuit_breaker: ChannelBreakerSettings = _breaker(5, 600.0)


class WebhookSettings(_Section):
    enabled: bool = True
    # The endpoint; held as a secret (such URLs often carry a token).
    url: SecretStr | None = None
    # Or a file holding it (a mounted Kubernetes Secret), read when the channel is built.
    url_file: str | None = None
    # POST, PUT or PATCH (checked when the channel is built).
    method: str = "POST"
    headers: Headers = Field(default_factory=dict)
    # json: this optimizer's alert object; alertmanager: Alertmanager's webhook payload
    # (version 4), for receivers written for Alertmanager.
    format: str = "json"
    priorities: list[PriorityName] = Field(default_factory=lambda: list(ALL_PRIORITIES))
    timeout: Duration = Field(10.0, gt=0)
    tls_verify: bool = True
    ca_file: str | None = None
    circuit_breaker: ChannelBreakerSettings = _breaker(5, 300.0)


class AlertmanagerSettings(_Section):
    enabled: bool = True
    # Base URL of Alertmanager; alerts are posted to <url>/api/v2/alerts.
    url: str | None = None
    headers: Headers = Field(default_factory=dict)
    # Labels added to every alert (e.g. cluster), for Alertmanager's routing.
    extra_labels: dict[str, str] = Field(default_factory=dict)
    generator_url: str | None = Field(None, alias="generatorURL")
    # endsAt of a firing alert = its start + this (unset: Alertmanager's resolve_timeout).
    resolve_timeout: Duration | None = Field(None, gt=0)
    priorities: list[PriorityName] = Field(default_factory=lambda: list(ALL_PRIORITIES))
    timeout: Duration = Field(10.0, gt=0)
    tls_verify: bool = True
    ca_file: str | None = None
    circuit_breaker: ChannelBreakerSettings = _breaker(5, 300.0)


class RouteMatch(_Section):
    """Every given field must match (empty: any). Lists mean "one of"; component, tenant
    and type are shell globs."""

    severity: Annotated[list[SeverityName], BeforeValidator(_as_list)] = Field(default_factory=list)
    priority: Annotated[list[PriorityName], BeforeValidator(_as_list)] = Field(default_factory=list)
    component: Globs = Field(default_factory=list)
    tenant: Globs = Field(default_factory=list)
    type: Globs = Field(default_factory=list)


class RoutingRule(_Section):
    match: RouteMatch = Field(default_factory=RouteMatch)
    channels: Globs
    # How long the alert must stay firing before these channels are notified (resolved
    # earlier: never sent); unset: the alert priority's escalation.
    escalation: Escalation | None = None
    # Rules are tried in order and the first match routes; `continue: true` goes on to
    # the next rules too (their channels are added).
    continue_: bool = Field(False, alias="continue")


class PriorityPolicy(_Section):
    """Unset fields keep the Go optimizer's value for the priority (SEED_PRIORITY_DEFAULTS)."""

    channels: Globs | None = None
    escalation: Escalation | None = None


class PriorityDefaults(_Section):
    """Where an alert goes when no routing rule matches it, per priority."""

    p0: PriorityPolicy = Field(default_factory=PriorityPolicy, alias="P0")
    p1: PriorityPolicy = Field(default_factory=PriorityPolicy, alias="P1")
    p2: PriorityPolicy = Field(default_factory=PriorityPolicy, alias="P2")
    p3: PriorityPolicy = Field(default_factory=PriorityPolicy, alias="P3")

    def policy(self, priority: str) -> tuple[tuple[str, ...], float]:
        """(channels, escalation seconds) for `priority` ("P0".."P3")."""
        channels, escalation = SEED_PRIORITY_DEFAULTS[priority]
        given: PriorityPolicy = getattr(self, priority.lower())
        return (
            channels if given.channels is None else tuple(given.channels),
            escalation if given.escalation is None else given.escalation,
        )


class DeliverySettings(_Section):
    # Alerts waiting to be routed and stored (in memory; enqueueing never blocks).
    main_queue_size: int = Field(1000, ge=1)
    # Deliveries waiting for a retry after a failure (in the store).
    retry_queue_size: int = Field(500, ge=1)
    # A delivery is dead-lettered after this many failed attempts or this age.
    max_attempts: int = Field(10, ge=1)
    max_age: Duration = Field(86400.0, gt=0)
    # Retry n waits initialBackoff x multiplier^(n-1), at most maxBackoff, +/- jitter
    # (a fraction); a 429's Retry-After wins.
    initial_backoff: Duration = Field(5.0, gt=0)
    max_backoff: Duration = Field(300.0, gt=0)
    backoff_multiplier: float = Field(2.0, ge=1)
    jitter: float = Field(0.2, ge=0, le=1)
    # The same firing alert (dedup key) is not sent again to a channel within this window
    # unless it was resolved in between.
    dedup_window: Duration = Field(3600.0, ge=0)
    # How often the worker looks for due deliveries when nothing wakes it.
    poll_interval: Duration = Field(1.0, gt=0)


class AlertingSettings(_Section):
    enabled: bool = True
    slack: SlackSettings | None = None
    pagerduty: PagerDutySettings | None = None
    email: EmailSettings | None = None
    # Named generic webhooks (opsgenie, servicenow, ...): channel `webhook:<name>`.
    webhooks: dict[str, WebhookSettings] = Field(default_factory=dict)
    alertmanager: AlertmanagerSettings | None = None
    routing: list[RoutingRule] = Field(default_factory=list)
    priorities: PriorityDefaults = Field(default_factory=PriorityDefaults)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)

    @model_validator(mode="after")
    def _known_channel_names(self) -> AlertingSettings:
        """A channel name that no configuration could provide is a typo: fail at load."""
        valid = [*CHANNEL_KINDS, *ROUTE_GROUPS, *self.webhooks]
        named = [name for rule in self.routing for name in rule.channels]
        for priority in ALL_PRIORITIES:
            named.extend(self.priorities.policy(priority)[0])
        for name in named:
            if name in valid or name.startswith("webhook:"):
                continue
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else "use one of " + ", ".join(valid)
            raise ValueError(f"unknown alert channel {name!r} in alerting routing: {hint}")
        return self
