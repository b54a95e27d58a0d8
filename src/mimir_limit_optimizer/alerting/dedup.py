"""Deduplication of deliveries, per channel and dedup key (the persistent queue keeps the
history the rules read):

- firing: not queued again while one is pending, nor within `dedupWindow` of the last one
  sent unless a resolved notification was sent after it. A new firing cancels a pending
  resolved notification (the incident is back before the resolution went out).
- resolved: sent only to channels that got (or will get) the firing notification, once.
  Resolved while the firing one still waits for its escalation delay: both are cancelled,
  nobody is bothered by an incident that is already over.
"""

from __future__ import annotations

from mimir_limit_optimizer.alerting.codec import to_payload
from mimir_limit_optimizer.alerting.delivery import HOLD_UNTIL, store_key
from mimir_limit_optimizer.alerting.model import Alert, AlertStatus
from mimir_limit_optimizer.alerting.ports import AlertQueue

_LIVE = ("pending", "sent")


def queue_delivery(
    queue: AlertQueue,
    alert: Alert,
    channel: str,
    *,
    delay: float,
    now: float,
    dedup_window: float,
) -> bool:
    """Queue the delivery of `alert` to `channel` unless deduplicated; True if queued.

    `delay`: the route's escalation delay (seconds); `now`: unix seconds; `dedup_window`:
    seconds within which a firing alert already sent is not sent again."""
    firing_key = store_key(alert.dedup_key, AlertStatus.FIRING)
    resolved_key = store_key(alert.dedup_key, AlertStatus.RESOLVED)
    last_firing = queue.latest_alert(firing_key, channel, statuses=_LIVE)
    if alert.status is AlertStatus.FIRING:
        pending_resolved = queue.latest_alert(resolved_key, channel, statuses=("pending",))
        if pending_resolved is not None:
            cancel_delivery(queue, pending_resolved.id, pending_resolved.attempts, "fired again")
        if last_firing is not None:
            if last_firing.status == "pending":
                return False
            last_resolved = queue.latest_alert(resolved_key, channel, statuses=_LIVE)
            recent = now - last_firing.created_at < dedup_window
            if recent and (last_resolved is None or last_resolved.id < last_firing.id):
                return False
        payload = {**to_payload(alert), HOLD_UNTIL: now + delay}
        queue.enqueue_alert(
            dedup_key=firing_key,
            channel=channel,
            payload=payload,
            created_at=now,
            due_at=now + delay,
        )
        return True
    if last_firing is None:
        return False  # never notified here: nothing to resolve
    hold_until = float(last_firing.payload.get(HOLD_UNTIL, 0.0))
    if last_firing.status == "pending" and last_firing.attempts == 0 and now < hold_until:
        cancel_delivery(queue, last_firing.id, 0, "resolved within its escalation delay")
        return False
    last_resolved = queue.latest_alert(resolved_key, channel, statuses=_LIVE)
    if last_resolved is not None and last_resolved.id > last_firing.id:
        return False
    queue.enqueue_alert(
        dedup_key=resolved_key, channel=channel, payload=to_payload(alert), created_at=now
    )
    return True


def cancel_delivery(queue: AlertQueue, row_id: int, attempts: int, why: str) -> None:
    queue.update_alert(
        row_id, status="cancelled", attempts=attempts, next_attempt_at=None, last_error=why
    )
