"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

Only the leader reconciles and applies; the others follow. The rules, as in client-go's
`leaderelection` package (tryAcquireOrRenew, renew loop, ReleaseOnCancel):

- Who may take the Lease, and when: lease_decision.py (`decide`, a pure function).
- The leader renews every retry_period. `is_leader` is True only while the last successful
  renewal (timed from *before* its request was sent) is younger than renew_deadline: it turns
  False at that instant, even while a request is still in flight, before any further apply.
  renew_deadline < lease_duration, so the old leader has stopped before anyone may take over.
- On stop the Lease is released (holderIdentity "", leaseDurationSeconds 1) so a follower
  takes over at its next retry instead of after a full lease duration.

leaseDurationSeconds is whole seconds on the wire (int32): a fractional lease_duration is
rounded up when written, and candidates use the holder's written value, as client-go does.
Use `run(stop)` on one thread, or call `step()` yourself (tests, with an injected clock).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable

from kubernetes.client import V1Lease, V1LeaseSpec, V1ObjectMeta

from mimir_limit_optimizer.k8s.client import KubeApi
from mimir_limit_optimizer.k8s.errors import (
    KubeConflictError,
    KubeError,
    KubeNotFoundError,
    kube_call,
)
from mimir_limit_optimizer.k8s.lease_decision import Decision, LeaseRecord, decide

log = logging.getLogger(__name__)

JITTER_FACTOR = 1.2  # client-go: renew_deadline must exceed retry_period x this


class LeaderElector:
    """Campaigns for one Lease and keeps it while it can. See the module doc for the rules.

    `clock` measures intervals (monotonic by default: a wall-clock step cannot stretch a
    leadership); `wall_clock` only stamps acquireTime/renewTime for humans and other tools.
    `sleep` waits between rounds (default: wait on the stop event, so `stop` is prompt).
    The callbacks run on the election thread and must return quickly; `is_leader` is the
    authority for "may I apply now".
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        release_on_cancel: bool = True,
    ) -> None:
        if not identity:
            raise ValueError("leader election needs a non-empty identity (the pod name)")
        if not 0 < retry_period * JITTER_FACTOR < renew_deadline < lease_duration:
            raise ValueError(
                "leader election timings must satisfy lease_duration > renew_deadline > "
                f"{JITTER_FACTOR} x retry_period > 0 (client-go's rule); got lease_duration="
                f"{lease_duration}, renew_deadline={renew_deadline}, retry_period={retry_period}"
            )
        self._api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._release_on_cancel = release_on_cancel
        # Two attempts fit in one renew deadline even when the first one hangs.
        self._timeout = min(api.request_timeout, renew_deadline / 2)
        self._lock = threading.Lock()
        self._leading = False
        self._renewed_at = -math.inf  # clock reading taken before our last successful write
        self._lease: V1Lease | None = None  # last Lease seen (kept whole: labels survive)
        self._observed: LeaseRecord | None = None
        self._observed_at = -math.inf
        self._last_error: str | None = None

    # --- state, safe from any thread ----------------------------------------------------
    @property
    def is_leader(self) -> bool:
        """True only while the last successful renewal is younger than renew_deadline."""
        with self._lock:
            return self._leading and self._clock() < self._renewed_at + self.renew_deadline

    @property
    def leader_identity(self) -> str | None:
        """The holder in the last Lease seen (None: no Lease, or released)."""
        with self._lock:
            return (self._observed.holder_identity or None) if self._observed else None

    @property
    def last_error(self) -> str | None:
        """The last failed API call of the election loop (None after a successful round)."""
        with self._lock:
            return self._last_error

    # --- the loop -----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Campaign until `stop` is set, then stop leading and release the Lease if held."""
        log.info(
            "leader election for lease %s/%s as %r (lease %.1fs, renew deadline %.1fs, "
            "retry %.1fs)",
            self.namespace,
            self.name,
            self.identity,
            self.lease_duration,
            self.renew_deadline,
            self.retry_period,
        )
        try:
            while not stop.is_set():
                self.step()
                delay = self._next_delay()
                if self._sleep is None:
                    stop.wait(delay)
                else:
                    self._sleep(delay)
        finally:
            self._stop_leading("election stopped")
            if self._release_on_cancel:
                self._release()

    def step(self) -> bool:
        """One acquire-or-renew round (at most two API calls); returns `is_leader` after it."""
        self._check_deadline()
        try:
            lease = self._read()
        except KubeError as exc:
            self._failed(exc)
            return self.is_leader
        now = self._clock()
        record = self._observe(lease, now)
        decision = decide(
            record,
            identity=self.identity,
            now=now,
            observed_at=self._observed_at,
            default_duration=self.lease_duration,
        )
        if decision is Decision.FOLLOW:
            holder = record.holder_identity if record else ""
            self._stop_leading(f"lease is held by {holder!r}")
            with self._lock:
                self._last_error = None
            return False
        started = self._clock()  # before the request: followers see the write later
        try:
            written = self._write(decision, lease, record)
        except KubeConflictError as exc:
            # Someone else wrote first: the next round re-reads and decides again.
            log.debug("leader election: lost a round on %s/%s: %s", self.namespace, self.name, exc)
            return self.is_leader
        except KubeError as exc:
            self._failed(exc)
            return self.is_leader
        self._observe(written, started)
        self._keep_leading(started, decision)
        return self.is_leader

    # --- internals ----------------------------------------------------------------------
    def _next_delay(self) -> float:
        """retry_period, or less when the renew deadline falls due sooner (so the loop
        reports losing leadership on time)."""
        with self._lock:
            if not self._leading:
                return self.retry_period
            due = self._renewed_at + self.renew_deadline - self._clock()
        return max(0.0, min(self.retry_period, due))

    def _check_deadline(self) -> None:
        with self._lock:
            lapsed = self._leading and self._clock() >= self._renewed_at + self.renew_deadline
        if lapsed:
            self._stop_leading(f"no successful renewal within {self.renew_deadline:g}s")

    def _keep_leading(self, renewed_at: float, decision: Decision) -> None:
        with self._lock:
            was_leading = self._leading
            self._leading = True
            self._renewed_at = renewed_at
            self._last_error = None
        if not was_leading:
            log.info(
                "leader election: %r now leads lease %s/%s (%s)",
                self.identity,
                self.namespace,
                self.name,
                decision.value,
            )
            if self._on_started is not None:
                self._on_started()

    def _stop_leading(self, why: str) -> None:
        with self._lock:
            was_leading = self._leading
            self._leading = False
        if was_leading:
            log.warning(
                "leader election: %r stopped leading lease %s/%s: %s",
                self.identity,
                self.namespace,
                self.name,
                why,
            )
            if self._on_stopped is not None:
                self._on_stopped()

    def _failed(self, exc: KubeError) -> None:
        with self._lock:
            self._last_error = str(exc)
        level = logging.WARNING if exc.retryable else logging.ERROR
        log.log(level, "leader election: %s", exc)

    def _observe(self, lease: V1Lease | None, now: float) -> LeaseRecord | None:
        record = LeaseRecord.from_lease(lease) if lease is not None else None
        with self._lock:
            previous = self._observed
            if (
                record is None
                or previous is None
                or record.resource_version != previous.resource_version
            ):
                self._observed_at = now
            self._observed = record
            self._lease = lease
        return record

    def _read(self) -> V1Lease | None:
        try:
            with kube_call(
                "get", "leases", self.namespace, self.name, api_group="coordination.k8s.io"
            ):
                return self._api.coordination.read_namespaced_lease(
                    self.name, self.namespace, _request_timeout=self._timeout
                )
        except KubeNotFoundError:
            return None

    def _write(
        self, decision: Decision, lease: V1Lease | None, record: LeaseRecord | None
    ) -> V1Lease:
        wall = dt.datetime.fromtimestamp(self._wall_clock(), dt.UTC)
        duration = math.ceil(self.lease_duration)
        if decision is Decision.CREATE or lease is None or record is None:
            body = V1Lease(
                metadata=V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=duration,
                    acquire_time=wall,
                    renew_time=wall,
                    lease_transitions=0,
                ),
            )
            with kube_call(
                "create", "leases", self.namespace, self.name, api_group="coordination.k8s.io"
            ):
                return self._api.coordination.create_namespaced_lease(
                    self.namespace, body, _request_timeout=self._timeout
                )
        renewing = decision is Decision.RENEW
        return self._replace(
            lease,
            holder=self.identity,
            duration=duration,
            acquire_time=(record.acquire_time or wall) if renewing else wall,
            renew_time=wall,
            transitions=record.lease_transitions + (0 if renewing else 1),
        )

    def _replace(
        self,
        lease: V1Lease,
        *,
        holder: str,
        duration: int,
        acquire_time: dt.datetime,
        renew_time: dt.datetime,
        transitions: int,
    ) -> V1Lease:
        """PUT `lease` (its resourceVersion is the precondition) with new election fields;
        its other metadata and spec fields are kept."""
        old = lease.spec or V1LeaseSpec()
        body = V1Lease(
            metadata=lease.metadata,
            spec=V1LeaseSpec(
                holder_identity=holder,
                lease_duration_seconds=duration,
                acquire_time=acquire_time,
                renew_time=renew_time,
                lease_transitions=transitions,
                preferred_holder=old.preferred_holder,
                strategy=old.strategy,
            ),
        )
        with kube_call(
            "update", "leases", self.namespace, self.name, api_group="coordination.k8s.io"
        ):
            return self._api.coordination.replace_namespaced_lease(
                self.name, self.namespace, body, _request_timeout=self._timeout
            )

    def _release(self) -> None:
        """Hand the Lease back (holder "", duration 1 s) if the last one seen is ours."""
        with self._lock:
            lease, record = self._lease, self._observed
        if lease is None or record is None or record.holder_identity != self.identity:
            return
        wall = dt.datetime.fromtimestamp(self._wall_clock(), dt.UTC)
        try:
            released = self._replace(
                lease,
                holder="",
                duration=1,
                acquire_time=wall,
                renew_time=wall,
                transitions=record.lease_transitions,
            )
        except KubeError as exc:
            # Not fatal: followers take over when the lease expires instead.
            log.warning("leader election: could not release the lease: %s", exc)
            return
        self._observe(released, self._clock())
        log.info(
            "leader election: %r released lease %s/%s", self.identity, self.namespace, self.name
        )
