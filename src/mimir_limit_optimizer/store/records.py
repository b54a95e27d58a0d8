"""What the store holds: audit events, target revisions and queued alerts, as frozen values.

Free-form parts (audit details, revision plans, alert payloads) are normalised to plain JSON
data when a value is built, so what is stored, logged and returned is the same snapshot.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LEVELS = ("info", "warning", "error")
# The Go optimizer's audit categories: user actions, system actions, cost, security, performance.
CATEGORIES = ("user", "system", "cost", "security", "performance")
REVISION_KINDS = ("apply", "rollback", "baseline")
# An intended write: "pending" (recorded before the write; whether it happened is known only
# by reading the target), "written" (its revision and audit events are stored; verification
# may be pending), then one final state: "done", "rolled_back", "unverified", "not_done" (the
# write did not happen) or "superseded" (the target holds neither the old nor the new content).
INTENT_OPEN = ("pending", "written")
INTENT_STATES = (*INTENT_OPEN, "done", "rolled_back", "unverified", "not_done", "superseded")
# pending: waiting for (another) delivery attempt at next_attempt_at; sent, failed (dead
# letter) and cancelled (made moot before delivery, e.g. resolved during its escalation delay)
# are final.
ALERT_STATUSES = ("pending", "sent", "failed", "cancelled")


def plain_json(value: Any, *, where: str) -> Any:
    """`value` as plain JSON data (dict, list, str, int, float, bool, None).

    Tuples and sets become lists, numpy scalars and arrays their Python values, str/int/float
    subclasses (enums) their plain values. Non-finite floats become the strings "NaN",
    "Infinity" and "-Infinity" (JSON has no such numbers; an undefined value stays visible).
    Anything else is a ValueError naming `where`.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise ValueError(f"{where}: mapping key {key!r} is not a string")
            name = str.__str__(key) if isinstance(key, str) else str(int(key))
            out[name] = plain_json(item, where=f"{where}.{name}")
        return out
    if isinstance(value, list | tuple):
        return [plain_json(item, where=f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, set | frozenset):
        return [plain_json(item, where=where) for item in sorted(value, key=repr)]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return plain_json(tolist(), where=where)
    raise ValueError(
        f"{where}: {type(value).__name__} is not JSON data "
        "(use strings, numbers, booleans, None, lists and mappings)"
    )


def iso_utc(timestamp: float) -> str:
    """Unix seconds as ISO 8601 UTC with a 'Z' ("2024-01-15T10:30:00Z"; milliseconds if any)."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def parse_iso_utc(text: str) -> float:
    """Inverse of `iso_utc` (any ISO 8601 with an offset or 'Z'; naive means UTC)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def sha256_text(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    return value


@dataclass(frozen=True)
class AuditEvent:
    """One audited action; `id` is set once the store has it.

    `level` is "info", "warning" or "error" (any case on input, lower case once built);
    `details` is copied to plain JSON data (see `plain_json`).
    """

    timestamp: float  # unix seconds
    level: str
    category: str
    component: str
    action: str
    tenant: str | None
    details: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.timestamp):
            raise ValueError(f"audit event timestamp must be finite; got {self.timestamp!r}")
        object.__setattr__(self, "timestamp", float(self.timestamp))
        object.__setattr__(self, "level", _check(self.level.lower(), LEVELS, "audit level"))
        _check(self.category, CATEGORIES, "audit category")
        if not self.component or not self.action:
            raise ValueError("audit events need a component and an action")
        if not isinstance(self.details, Mapping):
            raise ValueError(f"audit details must be a mapping; got {type(self.details).__name__}")
        details = plain_json(self.details, where=f"details of audit action {self.action!r}")
        object.__setattr__(self, "details", details)

    def to_json(self) -> dict[str, Any]:
        """The Go optimizer's audit JSON shape; `level` is upper case as there ("INFO")."""
        return {
            "id": self.id,
            "timestamp": iso_utc(self.timestamp),
            "level": self.level.upper(),
            "category": self.category,
            "component": self.component,
            "action": self.action,
            "tenant": self.tenant,
            "details": dict(self.details),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuditEvent:
        """Inverse of `to_json` (timestamps to the millisecond)."""
        return cls(
            timestamp=parse_iso_utc(str(data["timestamp"])),
            level=str(data["level"]),
            category=str(data["category"]),
            component=str(data["component"]),
            action=str(data["action"]),
            tenant=None if data.get("tenant") is None else str(data["tenant"]),
            details=data.get("details") or {},
            id=None if data.get("id") is None else int(data["id"]),
        )


@dataclass(frozen=True)
class Revision:
    """Content a target held after a write (or before the first one: kind "baseline")."""

    id: int
    target: str
    content: str
    sha256: str  # of content encoded as UTF-8
    plan: list[dict[str, Any]]
    actor: str
    created_at: float  # unix seconds
    kind: str  # "apply" | "rollback" | "baseline"
    note: str


@dataclass(frozen=True)
class QueuedAlert:
    """An alert waiting in (or done with) the delivery queue."""

    id: int
    dedup_key: str
    channel: str
    payload: Mapping[str, Any]
    status: str  # "pending" | "sent" | "failed" | "cancelled"
    attempts: int
    next_attempt_at: float | None  # unix seconds; due when <= now and pending
    last_error: str | None
    created_at: float


@dataclass(frozen=True)
class Intent:
    """A write recorded before it happens (docs/reliability.md): what will be written over
    what, with the audit events to store once the write is confirmed."""

    id: int
    target: str
    actor: str
    created_at: float  # unix seconds
    plan: list[dict[str, Any]]
    old_content: str
    old_sha256: str
    new_content: str
    new_sha256: str
    # Audit events (to_json form) stored with the revision once the write is confirmed.
    events: list[dict[str, Any]]
    verify: bool  # the write waits for Mimir's confirmation
    state: str
    revision_id: int | None
    note: str
    updated_at: float

    @property
    def open(self) -> bool:
        return self.state in INTENT_OPEN
