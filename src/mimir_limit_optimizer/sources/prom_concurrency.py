"""How many requests the Prometheus source keeps at the server at once.

Fixed, or adaptive (the default): start with one request in flight and add one more only
while the measured throughput (response bytes received per second) rises by enough to show
that the server runs requests side by side; go back when it does not, and halve on a
retryable failure (timeouts, 429, 5xx). Never above the configured maximum.

The level learned is kept for the next collection of the same source (`start`, from the
last limit's `learned`), so a collection against a server that takes many requests does not
climb from one again (about a second per level). A kept level is only a starting point: its
first measurement is followed by one at a level lower, and the lower one is kept unless the
kept one pays over it by the same rule as a raise; while it does not, the check goes on one
level lower still. So a server that lost capacity since the last collection (fewer queriers,
more load) is sent fewer requests within a few measurements. A measurement one level down
counts only requests sent after the step down: one sent before waited behind more requests
than the lower level keeps, and against a one-core server serving requests in turn that
alone made one look slow enough for two to pay (tests/test_prom_concurrency.py).
A collection keeps what it measured: a level that was only being tried when it ended is not
kept (the level it was compared with is), nor is a step down whose measurement did not
finish, and a collection that measured nothing keeps what it started from. When the check
confirms the kept level, one more is tried at the next measurement: a collection holds only
a few measurements (13 requests each at the defaults, 104 requests in all), so waiting
REPROBE_AFTER of them, as after a raise that did not pay within one collection, would never
come, and a level lowered once (a halving after failures, a server that was busy) could
never climb back. A kept level of one is a fresh start: two is tried after the first
measurement, the one try a collection from one always makes.

Throughput over a measurement is Little's law: the mean number of requests in flight (the
integral of the count over time, divided by the time) times the bytes received per second
of request latency. Unlike bytes over elapsed time it does not depend on where the
measurement cuts the bursts in which requests sharing one core finish together.

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
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass

__all__ = ["ConcurrencyLimit", "Slot", "Ticket"]

# A raise from n to n+1 in flight is kept when throughput rose by at least this fraction of
# what a server with a free core for every request would give (1/n: +100% from 1 to 2, +50%
# from 2 to 3). Half leaves room for noise on a shared machine, and a one-core server (which
# gains nothing, or loses) never passes it.
RAISE_GAIN = 0.5
# Completed requests that make one measurement at n in flight: max(MIN_WINDOW, 2n), rounded up
# to a multiple of the caller's `period`.
MIN_WINDOW = 3
# ... and at least this many seconds: shorter windows measure the scheduler of a busy
# machine more than the server (at 1,000 tenants a chunk takes ~0.1 s, and windows of 3 let
# noise pass for a 50% gain).
MIN_WINDOW_SECONDS = 1.0
# After a raise that did not pay, or a kept level checked, measurements at the settled level
# before trying one more (the server's load may change during a long collection).
REPROBE_AFTER = 12

Clock = Callable[[], float]


@dataclass
class _Window:
    """Completions since `start` (clock seconds; `area`: the in-flight integral then), all
    of one request kind (`key`)."""

    start: float
    area: float
    key: Hashable = None
    count: int = 0
    size: int = 0  # bytes received
    latency: float = 0.0  # seconds, summed over the completions
    since: float = -math.inf  # requests sent before this (clock seconds) are not counted


@dataclass(frozen=True)
class Ticket:
    """When a request took its place: clock seconds and the in-flight integral."""

    started: float
    area: float


class Slot:
    """One request's place at the server; `received(nbytes, key)` when its body has arrived."""

    def __init__(self, limit: ConcurrencyLimit, ticket: Ticket) -> None:
        self._limit = limit
        self.ticket = ticket

    def received(self, nbytes: int, key: Hashable) -> None:
        """The response body has arrived: `nbytes` of work for the throughput measurement.
        `key` names the kind of request: only requests of one kind are compared, since bytes
        per second of evaluation differ between queries."""
        self._limit.measure(self.ticket, nbytes, key)


class ConcurrencyLimit:
    """An async limit on requests in flight whose value can change while tasks wait.

    `adaptive=False`: always `maximum`. `clock` is injected (seconds, monotonic) so that
    tests drive the measurements deterministically. `period`: the caller sends a repeating
    mix of this many kinds of request measured as one (one chunk of each query in turn), so
    a measurement counts whole periods and every measurement sees the same mix. `start`: a
    level an earlier limit learned against the same server (its `learned`): begin there and
    check it against the levels below; None: begin at one. `levels` records every value the
    limit took, in order (benchmarks and logs show it)."""

    def __init__(
        self,
        maximum: int,
        *,
        adaptive: bool,
        clock: Clock = time.monotonic,
        period: int = 1,
        start: int | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if maximum < 1:
            raise ValueError(f"maximum must be >= 1, got {maximum}")
        self.maximum = maximum
        self.period = max(1, period)
        self._area = 0.0  # integral of in_flight over clock seconds
        self._area_at = clock()
        self.adaptive = adaptive
        self._clock = clock
        self._log = logger or logging.getLogger(__name__)
        # One kept is a fresh start (see the module's docstring).
        kept = None if start is None or start <= 1 else min(maximum, start)
        self._kept = kept
        self.limit = maximum if not adaptive else kept or 1
        self.levels = [self.limit]
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._window: _Window | None = None
        # Latest measured throughput (bytes/s) per (request kind, level).
        self._rates: dict[tuple[Hashable, int], float] = {}
        self._probing_from: int | None = None  # level a raise started from, while measured
        # A kept level above one: its first measurement starts the check against the one below.
        self._recheck = adaptive and kept is not None and kept > 1
        self._checking_from: int | None = None  # the higher level, while one lower is measured
        # From one, the first measurement leads to a raise; a kept level was tried before.
        self._settled_windows = REPROBE_AFTER if kept is None else 0

    @property
    def learned(self) -> int:
        """The level to start the next collection against the same server at: the last one
        measured and not beaten. While a comparison is unfinished, the level already measured
        (the base of a raise, the level above a step down), not the one being tried; a kept
        level not measured yet stays as it was."""
        if self._probing_from is not None:
            return self._probing_from
        if self._checking_from is not None:
            return self._checking_from
        return self.limit

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """Wait for a free place, hold it for the body of the `async with`."""
        await self._acquire()
        ticket = self.enter()
        try:
            yield Slot(self, ticket)
        finally:
            self.leave()

    async def _acquire(self) -> None:
        while self.in_flight >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _advance(self) -> float:
        now = self._clock()
        self._area += self.in_flight * (now - self._area_at)
        self._area_at = now
        return now

    def enter(self) -> Ticket:
        """Count a request in flight from now (`slot` does this once there is room)."""
        now = self._advance()
        self.in_flight += 1
        return Ticket(now, self._area)

    def leave(self) -> None:
        self._advance()
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
        self._window = self._open()

    def _open(self, key: Hashable = None) -> _Window:
        now = self._advance()
        return _Window(now, self._area, key)

    def back_off(self) -> None:
        if not self.adaptive:
            return
        self._probing_from = None
        self._recheck = False
        self._checking_from = None
        self._settled_windows = 0
        self._set(self.limit // 2, "the server failed a request")

    def measure(self, ticket: Ticket, nbytes: int, key: Hashable) -> None:
        if not self.adaptive or self.maximum == 1:
            return
        now = self._advance()
        window = self._window
        if window is None:  # the first measured request: the window opens when it was sent
            window = self._window = _Window(ticket.started, ticket.area, key)
        if window.count and window.key != key:
            # Another kind of request: start over; its bytes per second are not comparable.
            self._window = self._open(key)
            return
        if ticket.started < window.since:
            # Sent at the higher level, before a step down: it waited behind more requests
            # than this level keeps, so its latency would make the lower level look slower.
            return
        window.key = key
        window.count += 1
        window.size += nbytes
        window.latency += now - ticket.started
        elapsed = now - window.start
        need = -(-max(MIN_WINDOW, 2 * self.limit) // self.period) * self.period
        if window.count < need or window.count % self.period or elapsed < MIN_WINDOW_SECONDS:
            return
        # Little's law: mean requests in flight x bytes per second of latency.
        mean_in_flight = (self._area - window.area) / elapsed if elapsed > 0 else 1.0
        rate = mean_in_flight * window.size / window.latency if window.latency > 0 else math.inf
        self._decide(key, rate)

    def _decide(self, key: Hashable, rate: float) -> None:
        level = self.limit
        self._rates[key, level] = rate
        if self._recheck:
            self._recheck = False
            self._checking_from = level
            self._step_down(level - 1, f"checking the kept level: {rate:.0f} B/s at {level}")
            return
        if self._checking_from is not None:
            self._check_lower(self._checking_from, key, rate)
            return
        base = self._probing_from
        if base is None:
            self._settled_windows += 1
            if level < self.maximum and self._settled_windows >= REPROBE_AFTER:
                self._probing_from = level
                self._set(level + 1, f"trying more: {rate:.0f} B/s at {level}")
            else:
                self._window = self._open(key)
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
            self._window = self._open(key)
            if level < self.maximum:
                self._probing_from = level
                self._set(level + 1, f"trying more: {rate:.0f} B/s at {level}")
        else:
            self._settled_windows = 0
            self._set(base, f"{rate:.0f} B/s at {level}, not enough over {before:.0f} at {base}")

    def _check_lower(self, higher: int, key: Hashable, rate: float) -> None:
        """`rate` was measured one level below `higher`, a level kept or passed on the way
        down: `higher` is kept only if it pays over this one by the rule of a raise (at least
        1 + RAISE_GAIN / level times the throughput); otherwise check one lower still."""
        level = self.limit
        above = self._rates.get((key, higher))
        if above is None:
            # The kind of request changed since the measurement at `higher`: measure it again
            # for this kind, then this level again.
            self._checking_from = None
            self._recheck = True
            self._set(higher, "re-measuring the kept level")
            return
        needed = rate * (1 + RAISE_GAIN / level)
        self._settled_windows = 0  # once settled, one more is tried after REPROBE_AFTER
        if above >= needed:
            self._checking_from = None
            if higher == self._kept:
                # The kept level confirmed: one more is tried after the next measurement
                # (see the module's docstring), not REPROBE_AFTER measurements later.
                self._settled_windows = REPROBE_AFTER
            self._set(higher, f"{higher} in flight still pay: {above:.0f} B/s vs {rate:.0f}")
        elif level > 1:
            self._checking_from = level
            why = f"{above:.0f} B/s at {higher}, not enough over {rate:.0f} at {level}"
            self._step_down(level - 1, f"{why}; checking {level - 1}")
        else:
            self._checking_from = None
            self._log.debug(
                "1 in flight kept: %.0f B/s at %d not enough over %.0f", above, higher, rate
            )
            self._window = self._open(key)

    def _step_down(self, level: int, why: str) -> None:
        """Measure one level lower, counting only requests sent from now on."""
        self._set(level, why)
        if self._window is not None:
            self._window.since = self._window.start
