"""Progress of long collections for people: silent for short ones, then a log line every few
seconds (the service, and the CLI when stderr is not a terminal). The CLI's Rich bar for
terminals follows the same rule (cli/progress.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# A collection shorter than this shows nothing: progress output for a sub-second query is
# noise. Seconds.
SHOW_AFTER = 2.0
# Seconds between two log lines of the same collection.
LOG_EVERY = 5.0


class ProgressLog:
    """A `ProgressCallback` (done, total, label) that logs "collecting: done/total" at most
    every `every` seconds once `after` seconds have passed, and once more at the end if it
    logged anything. `clock` is injected (monotonic seconds)."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        after: float = SHOW_AFTER,
        every: float = LOG_EVERY,
    ) -> None:
        self._log = logger
        self._what = what
        self._clock = clock
        self._start = clock()
        self._after = after
        self._every = every
        self._last: float | None = None

    def __call__(self, done: int, total: int, label: str) -> None:
        now = self._clock()
        elapsed = now - self._start
        finished = total > 0 and done >= total
        if elapsed < self._after and not (finished and self._last is not None):
            return
        if not finished and self._last is not None and now - self._last < self._every:
            return
        if finished and self._last is None and elapsed < self._after:
            return
        self._last = now
        share = f" ({done / total:.0%})" if total else ""
        self._log.info(
            "%s: %d/%d%s after %.1fs; last: %s", self._what, done, total, share, elapsed, label
        )
