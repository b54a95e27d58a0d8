"""Who may hold a coordination.k8s.io/v1 Lease, as client-go's tryAcquireOrRenew decides it
(the rules; lease.py's `LeaderElector` reads, writes and keeps the Lease):

- The Lease records holderIdentity, leaseDurationSeconds, acquireTime, renewTime (MicroTime)
  and leaseTransitions. Every write is a compare-and-swap on metadata.resourceVersion: two
  candidates racing for the same Lease cannot both win; the loser's 409 is simply a lost round.
- A candidate takes the Lease when it does not exist (create), when its holder is "" (released)
  or when it has expired: its record has not changed for leaseDurationSeconds *as measured on
  the candidate's own monotonic clock since it first saw that record* (client-go's
  observedTime). The holder's renewTime is not compared with our clock, so skew between nodes
  cannot make two leaders; the price is that a fresh candidate waits one lease duration before
  taking over a stale Lease it has never seen change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum

from kubernetes.client import V1Lease, V1LeaseSpec


class Decision(Enum):
    """What one election round does, given the Lease it just read."""

    CREATE = "create"  # no Lease yet: create it, holding it
    ACQUIRE = "acquire"  # released or expired: take it over (leaseTransitions + 1)
    RENEW = "renew"  # ours: renew it (acquireTime and leaseTransitions kept)
    FOLLOW = "follow"  # another holder, still valid: wait


@dataclass(frozen=True)
class LeaseRecord:
    """The election fields of a Lease, as read."""

    holder_identity: str  # "" when released
    lease_duration_seconds: int | None
    acquire_time: dt.datetime | None
    renew_time: dt.datetime | None
    lease_transitions: int
    resource_version: str | None

    @classmethod
    def from_lease(cls, lease: V1Lease) -> LeaseRecord:
        spec = lease.spec or V1LeaseSpec()
        return cls(
            holder_identity=spec.holder_identity or "",
            lease_duration_seconds=spec.lease_duration_seconds,
            acquire_time=spec.acquire_time,
            renew_time=spec.renew_time,
            lease_transitions=spec.lease_transitions or 0,
            resource_version=lease.metadata.resource_version if lease.metadata else None,
        )


def decide(
    record: LeaseRecord | None,
    *,
    identity: str,
    now: float,
    observed_at: float,
    default_duration: float,
) -> Decision:
    """One round of client-go's tryAcquireOrRenew as a pure function.

    `now` and `observed_at` (when this candidate first saw `record`'s resourceVersion) are
    readings of the candidate's own clock, in seconds. `default_duration` applies when the
    record carries no positive leaseDurationSeconds.
    """
    if record is None:
        return Decision.CREATE
    if record.holder_identity == identity:
        return Decision.RENEW
    if not record.holder_identity:
        return Decision.ACQUIRE
    written = record.lease_duration_seconds or 0
    duration = float(written) if written > 0 else default_duration
    if now >= observed_at + duration:
        return Decision.ACQUIRE
    return Decision.FOLLOW
