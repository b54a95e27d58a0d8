"""`mlo alert test`: send one test alert straight to one channel (no queue, no breaker, no
routing) and say what happened, in the words the retry stage would log."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mimir_limit_optimizer.alerting.channels import (
    Channel,
    ChannelSpec,
    build_channel,
    channel_specs,
    resolve_channel_name,
)
from mimir_limit_optimizer.alerting.errors import ChannelConfigError, ChannelError
from mimir_limit_optimizer.alerting.model import Alert, AlertStatus, Priority, Severity
from mimir_limit_optimizer.config.alerting import AlertingSettings


@dataclass(frozen=True)
class ProbeResult:
    channel: str
    ok: bool
    target: str  # where it went, without secrets
    detail: str  # "delivered" or the (redacted) error
    retryable: bool | None = None  # for a failed send: would the worker retry it?
    error_type: str | None = None
    seconds: float = 0.0


def test_alert(now: float, *, priority: Priority = Priority.P1, resolved: bool = False) -> Alert:
    return Alert(
        type="test",
        priority=priority,
        severity=Severity.INFO,
        summary="Test alert from mimir-limit-optimizer (mlo alert test): this channel works.",
        component="alerting",
        dedup_key="mlo-alert-test",
        timestamp=now,
        details={"sent_by": "mlo alert test"},
        status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
    )


def send_test_alert(
    settings: AlertingSettings,
    name: str,
    *,
    now: float,
    priority: Priority = Priority.P1,
    resolved: bool = False,
    factory: Callable[[ChannelSpec], Channel] = build_channel,
    timer: Callable[[], float] = time.perf_counter,
) -> ProbeResult:
    """Send a test alert to channel `name` (a webhook by its name or `webhook:<name>`).
    KeyError when no enabled channel has that name."""
    resolved_name = resolve_channel_name(settings, name)
    if resolved_name is None:
        known = ", ".join(s.name for s in channel_specs(settings)) or "none configured"
        raise KeyError(f"no enabled alert channel {name!r} (channels: {known})")
    spec = next(s for s in channel_specs(settings) if s.name == resolved_name)
    try:
        channel = factory(spec)
    except ChannelConfigError as exc:
        return ProbeResult(resolved_name, False, "-", str(exc), False, "invalid_config")
    start = timer()
    try:
        channel.send(test_alert(now, priority=priority, resolved=resolved))
    except ChannelError as exc:
        return ProbeResult(
            resolved_name,
            False,
            channel.describe(),
            channel.redact(str(exc)),
            exc.retryable,
            exc.error_type,
            timer() - start,
        )
    finally:
        channel.close()
    return ProbeResult(
        resolved_name, True, channel.describe(), "delivered", seconds=timer() - start
    )
