"""The store's alert-queue operations the alerting worker relies on, on SQLite and a real
PostgreSQL: deliveries due later (escalation delays), due deliveries of one channel, the
latest delivery of a dedup key by status, pending counts per channel split into fresh and
retrying, dead-lettering by age, and the `cancelled` final status."""

from __future__ import annotations

from mimir_limit_optimizer.store import Store

T0 = 1_700_000_000.0


def enqueue(store: Store, key: str, channel: str, at: float = T0, due: float | None = None) -> int:
    return store.enqueue_alert(
        dedup_key=key, channel=channel, payload={"type": "t"}, created_at=at, due_at=due
    )


def test_due_later_and_per_channel(store: Store) -> None:
    held = enqueue(store, "a#firing", "slack", due=T0 + 900)
    now = enqueue(store, "b#firing", "email")
    assert [a.id for a in store.due_alerts(now=T0)] == [now]
    assert [a.id for a in store.due_alerts(now=T0 + 900)] == [now, held]
    assert [a.id for a in store.due_alerts(now=T0 + 900, channel="slack")] == [held]
    assert store.due_alerts(now=T0 + 900, channel="pagerduty") == []


def test_latest_alert_by_status(store: Store) -> None:
    first = enqueue(store, "k#firing", "slack")
    store.update_alert(first, status="sent", attempts=1, next_attempt_at=None, last_error=None)
    second = enqueue(store, "k#firing", "slack", at=T0 + 10)
    latest = store.latest_alert("k#firing", "slack")
    assert latest is not None and latest.id == second and latest.status == "pending"
    sent = store.latest_alert("k#firing", "slack", statuses=("sent",))
    assert sent is not None and sent.id == first
    assert store.latest_alert("k#firing", "email") is None
    store.update_alert(second, status="cancelled", attempts=0, next_attempt_at=None,
                       last_error="resolved")  # fmt: skip
    assert store.latest_alert("k#firing", "slack", statuses=("pending",)) is None


def test_counts_and_expiry(store: Store) -> None:
    a = enqueue(store, "a", "slack")
    enqueue(store, "b", "slack", at=T0 + 100)
    c = enqueue(store, "c", "email")
    store.update_alert(a, status="pending", attempts=2, next_attempt_at=T0 + 5, last_error="x")
    store.update_alert(c, status="sent", attempts=1, next_attempt_at=None, last_error=None)
    assert store.alert_counts() == {"slack": (1, 1)}
    expired = store.expire_alerts(created_before=T0 + 50, last_error="too old")
    assert [(r.id, r.status) for r in expired] == [(a, "pending")]
    old = store.alert(a)
    assert old is not None and (old.status, old.last_error) == ("failed", "too old")
    assert store.alert_counts() == {"slack": (1, 0)}
