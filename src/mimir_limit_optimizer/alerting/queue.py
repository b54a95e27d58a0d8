"""The main queue: alerts emitted but not yet routed and stored, in memory, bounded.

`put` never blocks (one short lock, no I/O). When the queue is full, the policy is "drop
the least important, newest first among equals": an alert of higher priority than the
lowest priority waiting evicts the NEWEST alert of that lowest priority; otherwise the
incoming alert itself is dropped. A P0 is therefore never lost to P1-P3 traffic, and within
one priority the alerts already waiting (the start of an incident) are kept over repeats.
`take` returns the most important, oldest first.
"""

from __future__ import annotations

import threading
from collections import deque

from mimir_limit_optimizer.alerting.model import Alert, Priority

_ORDER = (Priority.P0, Priority.P1, Priority.P2, Priority.P3)  # most important first


class MainQueue:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._queues: dict[Priority, deque[Alert]] = {p: deque() for p in _ORDER}
        self._size = 0
        self.dropped = 0  # alerts dropped by the full-queue policy since start

    def __len__(self) -> int:
        return self._size

    def put(self, alert: Alert) -> Alert | None:
        """Queue `alert`; return the alert dropped to make room (maybe `alert`), or None."""
        with self._lock:
            if self._size < self.capacity:
                self._queues[alert.priority].append(alert)
                self._size += 1
                return None
            lowest = next(p for p in reversed(_ORDER) if self._queues[p])
            if _ORDER.index(alert.priority) < _ORDER.index(lowest):
                evicted = self._queues[lowest].pop()
                self._queues[alert.priority].append(alert)
                self.dropped += 1
                return evicted
            self.dropped += 1
            return alert

    def take(self, limit: int) -> list[Alert]:
        """Up to `limit` alerts, most important and oldest first."""
        out: list[Alert] = []
        with self._lock:
            for priority in _ORDER:
                queue = self._queues[priority]
                while queue and len(out) < limit:
                    out.append(queue.popleft())
            self._size -= len(out)
        return out

    def resize(self, capacity: int) -> list[Alert]:
        """Change the capacity (hot reload); return the alerts dropped by a shrink."""
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {capacity}")
        dropped: list[Alert] = []
        with self._lock:
            self.capacity = capacity
            while self._size > capacity:
                lowest = next(p for p in reversed(_ORDER) if self._queues[p])
                dropped.append(self._queues[lowest].pop())
                self._size -= 1
                self.dropped += 1
        return dropped
