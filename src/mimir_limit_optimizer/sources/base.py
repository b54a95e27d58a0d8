"""What every source provides, and the errors sources raise."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from mimir_limit_optimizer.catalogue import LimitSpec
from mimir_limit_optimizer.engine.usage import Observation

# Called as (done, total, label) while collecting, for progress bars.
ProgressCallback = Callable[[int, int, str], None]


class SourceError(Exception):
    """A source failed. `url` is already redacted; `query` is the PromQL that failed, if any."""

    retryable: bool = False

    def __init__(self, message: str, *, url: str = "", query: str = "") -> None:
        details = message
        if url:
            details += f" (url: {url})"
        if query:
            details += f" (query: {query})"
        super().__init__(details)
        self.url = url
        self.query = query


class RetryableSourceError(SourceError):
    """5xx, timeouts, refused connections: worth retrying."""

    retryable = True


class PermanentSourceError(SourceError):
    """4xx, bad PromQL, bad credentials: retrying will not help."""


class Source(Protocol):
    """Collects an Observation for `limits` over [start, end] (unix seconds)."""

    def collect(
        self,
        limits: Sequence[LimitSpec],
        *,
        start: float,
        end: float,
        progress: ProgressCallback | None = None,
    ) -> Observation: ...

    def describe(self) -> str:
        """One line for logs: kind and redacted location."""
        ...
