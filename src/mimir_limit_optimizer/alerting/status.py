"""What `/debug/alerting/status` shows: channels, health, breakers, queue depths, the last
error of each channel (redacted). Never a secret."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mimir_limit_optimizer.alerting.delivery import ChannelState
from mimir_limit_optimizer.alerting.queue import MainQueue
from mimir_limit_optimizer.config.alerting import AlertingSettings


def alerting_status(
    *,
    now: float,
    states: Sequence[ChannelState],
    counts: Mapping[str, tuple[int, int]],
    queue_error: str | None,
    settings: AlertingSettings,
    main: MainQueue,
) -> dict[str, Any]:
    """The status document. `counts`: channel -> (fresh, retrying) deliveries in the
    persistent queue; `queue_error`: why they could not be read (then `counts` is empty)."""
    channels = []
    for state in states:
        fresh, retrying = counts.get(state.name, (0, 0))
        channels.append(
            {
                "name": state.name,
                "kind": state.spec.kind,
                "target": None if state.channel is None else state.channel.describe(),
                "healthy": state.healthy(now),
                "configError": state.config_error,
                "priorities": sorted(state.spec.priorities),
                "circuitBreaker": state.breaker.snapshot(now),
                "pending": fresh + retrying,
                "retrying": retrying,
                "sent": state.sent,
                "deadLetters": state.dead_letters,
                "lastSuccessAt": state.last_success_at,
                "lastError": state.last_error,
                "lastErrorAt": state.last_error_at,
            }
        )
    known = {s.name for s in states}
    return {
        "enabled": settings.enabled,
        "now": now,
        "queues": {
            "main": {
                "size": len(main),
                "capacity": main.capacity,
                "dropped": main.dropped,
            },
            "retry": {
                "size": sum(r for _, r in counts.values()),
                "capacity": settings.delivery.retry_queue_size,
            },
            "error": queue_error,
        },
        "channels": channels,
        # Deliveries waiting for channels no longer configured (dead-lettered at maxAge).
        "orphaned": {c: sum(n) for c, n in counts.items() if c not in known},
    }
