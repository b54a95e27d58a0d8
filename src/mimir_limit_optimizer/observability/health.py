"""Liveness and readiness of the service, as state the loop updates and probes read.

- Alive (`/healthz`): the reconcile loop turned recently. A heartbeat is recorded on every
  loop turn, also while the loop waits for the next cycle, so a loop stuck in a call that
  never returns stops heartbeating and the probe fails: "process up" is not enough.
- Ready (`/readyz`): a leader or standalone instance has finished one successful cycle and
  its source answers; a follower never reconciles, so it is ready (read-only) as soon as
  its source answers.

Time is passed in (`now`, unix seconds); the class never reads a clock. Probes run on the
HTTP server's threads while the loop writes, so every access holds one lock.
"""

from __future__ import annotations

import threading
from typing import Any

ROLES = ("leader", "follower", "standalone")


class HealthState:
    """What the probes report. `stall_after`: seconds without a heartbeat before the loop
    counts as stuck. `started_at` (optional): counts as a first heartbeat, a grace period for
    the startup work done before the loop's first turn."""

    def __init__(self, *, stall_after: float, started_at: float | None = None) -> None:
        if stall_after <= 0:
            raise ValueError(f"stall_after must be > 0 seconds, got {stall_after}")
        self._lock = threading.Lock()
        self._stall_after = float(stall_after)
        self._last_heartbeat = started_at
        self._first_success: float | None = None
        self._last_cycle: dict[str, Any] | None = None
        self._source_ok: bool | None = None  # None: not checked yet
        self._source_detail = ""
        self._role = "standalone"
        self._leader: str | None = None

    def heartbeat(self, now: float) -> None:
        """The loop is alive. Call on every loop turn, also while idle waiting."""
        with self._lock:
            self._beat(now)

    def cycle_finished(self, *, ok: bool, now: float, detail: str = "") -> None:
        """A reconcile cycle ended (also a heartbeat: the loop got here)."""
        with self._lock:
            self._beat(now)
            self._last_cycle = {"ok": ok, "finished_at": now, "detail": detail}
            if ok and self._first_success is None:
                self._first_success = now

    def set_source_reachable(self, ok: bool, detail: str = "") -> None:
        with self._lock:
            self._source_ok = ok
            self._source_detail = detail

    def set_role(self, role: str, leader: str | None = None) -> None:
        """`role`: leader, follower or standalone; `leader`: the current leader's identity."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        with self._lock:
            self._role = role
            self._leader = leader

    def healthz(self, now: float) -> tuple[bool, dict[str, Any]]:
        """(alive, body): alive iff a heartbeat happened within `stall_after` seconds."""
        with self._lock:
            last = self._last_heartbeat
            age = None if last is None else max(0.0, now - last)
            ok = age is not None and age <= self._stall_after
            if age is None:
                reason = "no loop heartbeat yet"
            elif ok:
                reason = "loop alive"
            else:
                reason = f"no loop heartbeat for {age:.0f}s (stall after {self._stall_after:g}s)"
            body: dict[str, Any] = {
                "status": "ok" if ok else "unhealthy",
                "reason": reason,
                "last_heartbeat": last,
                "heartbeat_age_seconds": age,
                "stall_after_seconds": self._stall_after,
                "last_cycle": None if self._last_cycle is None else dict(self._last_cycle),
            }
            return ok, body

    def readyz(self, now: float) -> tuple[bool, dict[str, Any]]:
        """(ready, body): source reachable and, unless a follower, a first successful cycle.
        The body always states the role and the leader."""
        with self._lock:
            follower = self._role == "follower"
            source_ok = self._source_ok is True
            cycled = self._first_success is not None
            reasons: list[str] = []
            if not source_ok:
                state = "not checked yet" if self._source_ok is None else "unreachable"
                detail = f": {self._source_detail}" if self._source_detail else ""
                reasons.append(f"source {state}{detail}")
            if not follower and not cycled:
                reasons.append("no successful reconcile cycle yet")
            ok = not reasons
            body: dict[str, Any] = {
                "status": "ok" if ok else "not ready",
                "reasons": reasons,
                "role": self._role,
                "leader": self._leader,
                "read_only": follower,
                "source_reachable": self._source_ok,
                "source_detail": self._source_detail,
                "first_successful_cycle": self._first_success,
                "last_cycle": None if self._last_cycle is None else dict(self._last_cycle),
                "now": now,
            }
            return ok, body

    def _beat(self, now: float) -> None:
        # Monotonic: a late caller with an older `now` must not make the loop look stalled.
        if self._last_heartbeat is None or now > self._last_heartbeat:
            self._last_heartbeat = now
