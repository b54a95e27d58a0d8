"""What every target provides, and the errors targets raise.

A target holds one runtime-overrides YAML text. Writes are compare-and-swap on a version
(a file's content hash, a ConfigMap's resourceVersion): a write based on a stale read fails
with ConflictError and the caller re-reads, re-plans and retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class TargetError(Exception):
    """A target operation failed; `retryable` says whether the next attempt may succeed."""

    retryable: bool = True


class ConflictError(TargetError):
    """The content changed since it was read (409 / hash mismatch): re-read and re-plan."""


class PermanentTargetError(TargetError):
    """Bad configuration, forbidden, invalid content: retrying the same will not help."""

    retryable = False


@dataclass(frozen=True)
class Content:
    text: str  # "" when the target does not exist yet
    version: str | None  # None when absent; opaque token for compare-and-swap
    exists: bool


class Target(Protocol):
    def read(self) -> Content: ...

    def write(self, text: str, *, expected_version: str | None) -> str:
        """Replace the content atomically if it is still at `expected_version` (None: must
        not exist yet); return the new version. Never leaves a partial write behind."""
        ...

    def describe(self) -> str: ...
