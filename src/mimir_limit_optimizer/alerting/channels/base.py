"""The channel protocol: a channel only sends. It formats the alert for its service, sends
it once and returns, or raises ChannelError saying whether a retry could help. Backoff,
deadlines, breakers, deduplication and metrics belong to the retry stage (delivery.py)."""

from __future__ import annotations

from typing import Protocol

from mimir_limit_optimizer.alerting.model import Alert


class Channel(Protocol):
    name: str  # "slack", "pagerduty", "email", "alertmanager", "webhook:<name>"
    kind: str  # "slack", "pagerduty", "email", "alertmanager", "webhook"

    def send(self, alert: Alert) -> None:
        """Deliver `alert` once; raise ChannelError on failure."""
        ...

    def describe(self) -> str:
        """Where alerts go, without secrets (for logs and the status page)."""
        ...

    def redact(self, text: str) -> str:
        """`text` with this channel's secrets masked."""
        ...

    def close(self) -> None: ...
