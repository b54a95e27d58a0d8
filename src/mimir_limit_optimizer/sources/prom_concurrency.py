"""How many requests the Prometheus source keeps at the server at once.

Fixed, or adaptive (the default): start with one request in flight and add one more only
while the measured throughput (response bytes received per second) rises by enough to show
that the server runs requests side by side; go back when it does not, and halve on a
retryable failure (timeouts, 429, 5xx). Never above the configured maximum.

Why: a Prometheus whose query engine has one core evaluates concurrent requests in turn,
and spends more CPU on them than on the same requests one at a time (measured at 5,000
tenants with GOMAXPROCS=1: 25 s of Prometheus CPU for the 42 requests one at a time, 30 s
two at a time, 36 s four at a time; docs/benchmarks.md). A Mimir query-frontend in front of
many queriers does run them side by side, and there more in flight is what makes the
collection fast. Measuring tells the two apart; a setting cannot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass

__all__ = ["ConcurrencyLimit", "Slot"]

# A raise from n to n+1 in flight is kept when throughput rose by at least this fraction of
# what a server with a free core for every request would give (1/n: +100% from 1 to 2, +50%
# from 2 to 3). Half leaves room for noise on a shared machine, and a one-core server (which
# gains nothing, or loses) never passes it.
RAISE_GAIN = 0.5
# Completed requests that make one measurement at n in flight: max(MIN_WINDOW, 2n). Two per
# slot, because requests sharing one core finish in bursts of n.
MIN_WINDOW = 3
# ... and at least this many seconds: shorter windows measure the scheduler of a busy
# machine more than the server (at 1,000 tenants a chunk takes ~0.1 s, and windows of 3 let
# noise pass for a 50% gain).
MIN_WINDOW_SECONDS = 1.0
# After a raise that did not pay, measurements at the settled level before trying again
# (the server's load may change during a long collection).
REPROBE_AFTER = 12

Clock = Callable[[], float]


@dataclass
class _Window:
    """Completions since `start` (clock seconds), all of one request kind (`key`)."""

    start: float
    key: Hashable = None
    count: int = 0
    size: int = 0  # bytes received


class Slot:
    """One request's place at the server; `received(nbytes, key)` when its body has arrived."""

    def __init__(self, limit: ConcurrencyLimit, started: float) -> None:
        self._limit = limit
        self.started = started  # clock seconds

    def received(self, nbytes: int, key: Hashable) -> None:
        """The response body has arrived: `nbytes` of work for the throughput measurement.
        `key` names the kind of request (the query): only requests of one kind are compared,
        since bytes per second of evaluation differ between queries."""
        self._limit.measure(nbytes, key, self.started)


class ConcurrencyLimit:
    """An async limit on requests in flight whose value can change while tasks wait.

    `adaptive=False`: always `maximum`. `clock` is injected (seconds, monotonic) so that
    tests drive the measurements deterministically. `levels` records every value the limit
    took, in order (benchmarks and logs show it)."""

    def __init__(
        self,
        maximum: int,
        *,
        adaptive: bool,
        clock: Clock = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        if maximum < 1:
            raise ValueError(f"maximum must be >= 1, got {maximum}")
        self.maximum = maximum
        self.adaptive = adaptive
        self._clock = clock
        self._log = logger or logging.getLogger(__name__)
        self.limit = 1 if adaptive else maximum
        self.levels = [self.limit]
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._window: _Window | None = None
        # Latest measured throughput (bytes/s) per (request kind, level).
        self._rates: dict[tuple[Hashable, int], float] = {}
        self._probing_from: int | None = None  # level a raise started from, while measured
        self._settled_windows = REPROBE_AFTER  # the first measurement leads to a raise

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """Wait for a free place, hold it for the body of the `async with`."""
        await self._acquire()
        try:
            yield Slot(self, self._clock())
        finally:
            self._release()

    async def _acquire(self) -> None:
        while self.in_flight >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.in_flight += 1

    def _release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def _set(self, level: int, why: str) -> None:
        level = max(1, min(self.maximum, level))
        if level != self.limit:
            self._log.debug("requests in flight: %d -> %d (%s)", self.limit, level, why)
            self.limit = level
            self.levels.append(level)  # waiters are woken as the current request releases
        self._window = _Window(self._clock())

    def back_off(self) -> None:
        if not self.adaptive:
            return
        self._probing_from = None
        self._settled_windows = 0
        self._set(self.limit // 2, "the server failed a request")

    def measure(self, nbytes: int, key: Hashable, started: float) -> None:
        if not self.adaptive or self.maximum == 1:
            return
        now = self._clock()
        window = self._window
        if window is None:  # the first measured request: the window opens when it was sent
            window = self._window = _Window(started, key)
        if window.count and window.key != key:
            # Another kind of request: start over; its bytes per second are not comparable.
            self._window = _Window(now, key)
            return
        window.key = key
        window.count += 1
        window.size += nbytes
        elapsed = now - window.start
        if window.count < max(MIN_WINDOW, 2 * self.limit) or elapsed < MIN_WINDOW_SECONDS:
            return
        rate = window.size / elapsed if elapsed > 0 else float("inf")
        self._decide(key, rate)

    def _decide(self, key: Hashable, rate: float) -> None:
        level = self.limit
        self._rates[key, level] = rate
        base = self._probing_from
        if base is None:
            self._settled_windows += 1
            if level < self.maximum and self._settled_windows >= REPROBE_AFTER:
                self._probing_from = level
                self._set(level + 1, f"trying more: {rate:.0f} B/s at {level}")
            else:
                self._window = _Window(self._clock(), key)
            return
        before = self._rates.get((key, base))
        self._probing_from = None
        if before is None:
            # The kind of request changed since the last measurement at `base`: measure
            # `base` again for this kind, then try the raise again.
            self._settled_windows = REPROBE_AFTER
            self._set(base, "re-measuring the level before the raise")
            return
        needed = before * (1 + RAISE_GAIN * (level - base) / base)
        if rate >= needed:
            self._settled_windows = REPROBE_AFTER  # keep climbing while it pays
            self._log.debug("%d in flight pay: %.0f B/s vs %.0f at %d", level, rate, before, base)
            self._window = _Window(self._clock(), key)
            if level < self.maximum:
                self._probing_from = level
                self._set(level + 1, f"trying more: {rate:.0f} B/s at {level}")
        else:
            self._settled_windows = 0
            self._set(base, f"{rate:.0f} B/s at {level}, not enough over {before:.0f} at {base}")
