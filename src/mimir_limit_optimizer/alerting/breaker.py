"""A circuit breaker per channel (the Go optimizer's table), on time passed in: no clock reads.

closed     sends go through; `failure_threshold` consecutive failures open it.
open       nothing is sent until `recovery_timeout` has passed since it opened.
half-open  up to `half_open_max_calls` trial sends; when that many succeed in a row it
           closes, the first failure opens it again (for another recovery_timeout).

Thread-safe: the delivery task of the channel changes it while the status page reads it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


# The value of alert_channel_circuit_breaker_state (the Go optimizer's Grafana rule: 1 = open).
STATE_VALUES = MappingProxyType(
    {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}
)


@dataclass(frozen=True)
class BreakerPolicy:
    failure_threshold: int = 5
    recovery_timeout: float = 300.0  # seconds
    half_open_max_calls: int = 3


class CircuitBreaker:
    def __init__(self, policy: BreakerPolicy) -> None:
        if policy.failure_threshold < 1 or policy.half_open_max_calls < 1:
            raise ValueError("failure_threshold and half_open_max_calls must be >= 1")
        if policy.recovery_timeout <= 0:
            raise ValueError("recovery_timeout must be > 0 seconds")
        self.policy = policy
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0  # consecutive, while closed
        self._opened_at: float | None = None
        self._trials = 0  # sends allowed since half-open
        self._successes = 0  # consecutive successes since half-open

    def state(self, now: float) -> BreakerState:
        with self._lock:
            self._advance(now)
            return self._state

    def allow(self, now: float) -> bool:
        """May a send start at `now`? In half-open, each True uses up one trial call."""
        with self._lock:
            self._advance(now)
            if self._state is BreakerState.CLOSED:
                return True
            if (
                self._state is BreakerState.HALF_OPEN
                and self._trials < self.policy.half_open_max_calls
            ):
                self._trials += 1
                return True
            return False

    def retry_at(self, now: float) -> float:
        """When a send refused now may be tried again (now, when not open)."""
        with self._lock:
            self._advance(now)
            if self._state is BreakerState.OPEN and self._opened_at is not None:
                return self._opened_at + self.policy.recovery_timeout
            return now

    def record_success(self, now: float) -> BreakerState:
        with self._lock:
            self._advance(now)
            if self._state is BreakerState.HALF_OPEN:
                self._successes += 1
                if self._successes >= self.policy.half_open_max_calls:
                    self._close()
            else:
                self._failures = 0
            return self._state

    def record_failure(self, now: float) -> BreakerState:
        with self._lock:
            self._advance(now)
            if self._state is BreakerState.HALF_OPEN:
                self._open(now)
            elif self._state is BreakerState.CLOSED:
                self._failures += 1
                if self._failures >= self.policy.failure_threshold:
                    self._open(now)
            return self._state

    def snapshot(self, now: float) -> dict[str, Any]:
        with self._lock:
            self._advance(now)
            reopen = (
                self._opened_at + self.policy.recovery_timeout
                if self._state is BreakerState.OPEN and self._opened_at is not None
                else None
            )
            return {
                "state": self._state.value,
                "consecutiveFailures": self._failures,
                "openedAt": self._opened_at,
                "halfOpenAt": reopen,
                "failureThreshold": self.policy.failure_threshold,
                "recoveryTimeoutSeconds": self.policy.recovery_timeout,
                "halfOpenMaxCalls": self.policy.half_open_max_calls,
            }

    def _advance(self, now: float) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._opened_at is not None
            and now >= self._opened_at + self.policy.recovery_timeout
        ):
            self._state = BreakerState.HALF_OPEN
            self._trials = 0
            self._successes = 0

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._failures = 0
        self._trials = 0
        self._successes = 0

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._opened_at = None
        self._failures = 0
        self._trials = 0
        self._successes = 0
