"""Lease leader election follows client-go: the decision table (create, acquire when released
or expired on the candidate's own clock, renew when ours, else follow), one `step()` at a time
with an injected clock against the fake API server (transitions, MicroTime on the wire,
renew deadline, release, compare-and-swap), and two electors running on threads with short
timings: exactly one leads, never two at the same instant, a stopped or crashed leader is
replaced within the lease duration, and a leader whose renewals fail gives up within the
renew deadline.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes.client import V1Lease, V1LeaseSpec, V1ObjectMeta

from mimir_limit_optimizer.k8s import Decision, KubeApi, LeaderElector, LeaseRecord, decide
from tests.kube_fake import FakeKubeApiServer

NS, LEASE = "mimir", "mimir-limit-optimizer"


# --- the decision table -------------------------------------------------------------------


def record(holder: str, duration: int | None = 15, version: str = "7") -> LeaseRecord:
    return LeaseRecord(
        holder_identity=holder,
        lease_duration_seconds=duration,
        acquire_time=None,
        renew_time=None,
        lease_transitions=3,
        resource_version=version,
    )


@pytest.mark.parametrize(
    ("lease", "now", "observed_at", "expected"),
    [
        (None, 100.0, 0.0, Decision.CREATE),  # no Lease at all
        (record("me"), 100.0, 100.0, Decision.RENEW),  # ours, fresh
        (record("me"), 500.0, 100.0, Decision.RENEW),  # ours, even long expired
        (record(""), 100.0, 100.0, Decision.ACQUIRE),  # released
        (record("other"), 100.0, 100.0, Decision.FOLLOW),  # just seen it change
        (record("other"), 114.9, 100.0, Decision.FOLLOW),  # within its 15 s
        (record("other"), 115.0, 100.0, Decision.ACQUIRE),  # unchanged for 15 s: expired
        (record("other", duration=2), 101.9, 100.0, Decision.FOLLOW),  # the record's duration
        (record("other", duration=2), 102.0, 100.0, Decision.ACQUIRE),
        (record("other", duration=None), 109.0, 100.0, Decision.FOLLOW),  # none: ours (10 s)
        (record("other", duration=0), 110.0, 100.0, Decision.ACQUIRE),
    ],
)
def test_decision_table(
    lease: LeaseRecord | None, now: float, observed_at: float, expected: Decision
) -> None:
    got = decide(lease, identity="me", now=now, observed_at=observed_at, default_duration=10.0)
    assert got is expected


# --- one step at a time, injected clock ---------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000 + self.now  # whole seconds: the MicroTime regression case


@dataclass
class Events:
    log: list[str] = field(default_factory=list)

    def callbacks(self, name: str) -> dict[str, Callable[[], None]]:
        return {
            "on_started_leading": lambda: self.log.append(f"{name} started"),
            "on_stopped_leading": lambda: self.log.append(f"{name} stopped"),
        }


@pytest.fixture
def server() -> Iterator[FakeKubeApiServer]:
    with FakeKubeApiServer() as fake:
        yield fake


@pytest.fixture
def apis(server: FakeKubeApiServer) -> Iterator[list[KubeApi]]:
    """One client per candidate, as separate pods would have."""
    clients = [KubeApi.for_url(server.url, request_timeout=2.0) for _ in range(2)]
    yield clients
    for client in clients:
        client.close()


def elector(api: KubeApi, identity: str, clock: FakeClock, events: Events, **kw: Any) -> Any:
    options: dict[str, Any] = {
        "namespace": NS,
        "name": LEASE,
        "identity": identity,
        "lease_duration": 15.0,
        "renew_deadline": 10.0,
        "retry_period": 2.0,
        "clock": clock,
        "wall_clock": clock.wall,
        **events.callbacks(identity),
    }
    options.update(kw)
    return LeaderElector(api, **options)


def spec(server: FakeKubeApiServer) -> dict[str, Any]:
    lease = server.get("leases", NS, LEASE)
    assert lease is not None
    return dict(lease["spec"])


def test_first_candidate_creates_the_lease_and_the_second_follows(
    server: FakeKubeApiServer, apis: list[KubeApi]
) -> None:
    clock, events = FakeClock(), Events()
    a = elector(apis[0], "a", clock, events)
    b = elector(apis[1], "b", clock, events)

    assert a.step() is True
    assert b.step() is False
    assert (a.is_leader, b.is_leader) == (True, False)
    assert b.leader_identity == "a"
    assert events.log == ["a started"]
    written = spec(server)
    assert written["holderIdentity"] == "a"
    assert written["leaseDurationSeconds"] == 15
    assert written["leaseTransitions"] == 0
    # MicroTime: six fractional digits even at a whole second (isoformat() would drop them).
    assert written["renewTime"] == "2023-11-14T22:30:00.000000Z"
    assert written["acquireTime"] == written["renewTime"]


def test_renewal_keeps_acquire_time_and_transitions(
    server: FakeKubeApiServer, apis: list[KubeApi]
) -> None:
    clock, events = FakeClock(), Events()
    a = elector(apis[0], "a", clock, events)
    a.step()
    acquired = spec(server)
    clock.now += 2.5
    assert a.step() is True
    renewed = spec(server)
    assert renewed["acquireTime"] == acquired["acquireTime"]
    assert renewed["renewTime"] == "2023-11-14T22:30:02.500000Z"
    assert renewed["leaseTransitions"] == 0
    assert events.log == ["a started"]  # one leadership, renewed


def test_follower_takes_over_only_after_the_lease_stops_changing_for_its_duration(
    server: FakeKubeApiServer, apis: list[KubeApi]
) -> None:
    clock, events = FakeClock(), Events()
    a = elector(apis[0], "a", clock, events)
    b = elector(apis[1], "b", clock, events)
    a.step()
    b.step()  # b first sees a's record now
    clock.now = 1014.9
    assert b.step() is False  # a has not renewed, but 15 s have not passed on b's clock
    assert a.is_leader is False  # a's own renew deadline (10 s) passed long before
    clock.now = 1015.0
    assert b.step() is True
    assert spec(server)["holderIdentity"] == "b"
    assert spec(server)["leaseTransitions"] == 1
    assert a.step() is False  # a sees b's record: follows
    assert a.leader_identity == "b"
    assert events.log == ["a started", "b started", "a stopped"]


def test_a_fresh_candidate_waits_a_full_duration_before_taking_a_stale_lease(
    server: FakeKubeApiServer, apis: list[KubeApi]
) -> None:
    clock, events = FakeClock(), Events()
    elector(apis[0], "a", clock, events).step()
    clock.now += 3600  # a died long ago
    b = elector(apis[1], "b", clock, events)
    assert b.step() is False  # first sight: the record may have just changed
    clock.now += 15
    assert b.step() is True


def test_leadership_ends_at_the_renew_deadline_even_before_the_next_step(
    server: FakeKubeApiServer, apis: list[KubeApi]
) -> None:
    clock, events = FakeClock(), Events()
    a = elector(apis[0], "a", clock, events)
    a.step()
    server.fail_next(1000, 500)
    clock.now = 1002.0
    assert a.step() is True  # the renewal failed, but the deadline has not passed
    assert "500" in (a.last_error or "")
    clock.now = 1009.999
    assert a.is_leader is True
    clock.now = 1010.0  # exactly renew_deadline after the last successful renewal began
    assert a.is_leader is False  # at once, without any further step
    assert events.log == ["a started"]
    assert a.step() is False
    assert events.log == ["a started", "a stopped"]
    server.clear_faults()
    assert a.step() is True  # still the holder in the Lease: leads again
    assert events.log == ["a started", "a stopped", "a started"]


def test_a_lost_compare_and_swap_is_not_an_error_and_is_retried(
    server: FakeKubeApiServer, apis: list[KubeApi]
) -> None:
    clock, events = FakeClock(), Events()
    a = elector(apis[0], "a", clock, events)
    a.step()
    server.fail_next(1, 409, method="PUT")
    clock.now += 2
    assert a.step() is True  # renewal lost a race; still within the deadline
    assert a.last_error is None
    assert [r.status for r in server.requests[-2:]] == [200, 409]
    clock.now += 2
    assert a.step() is True
    assert server.requests[-1].status == 200


def test_create_race_lost_leaves_the_candidate_following(
    server: FakeKubeApiServer, apis: list[KubeApi]
) -> None:
    clock, events = FakeClock(), Events()
    a = elector(apis[0], "a", clock, events)
    server.fail_next(1, 409, method="POST")  # another candidate created it first
    assert a.step() is False
    assert events.log == []


def test_stopping_releases_the_lease_so_a_follower_takes_it_at_once(
    server: FakeKubeApiServer, apis: list[KubeApi]
) -> None:
    clock, events = FakeClock(), Events()
    a = elector(apis[0], "a", clock, events)
    b = elector(apis[1], "b", clock, events)
    a.step()
    b.step()
    stop = threading.Event()
    stop.set()
    a.run(stop)  # the loop ends at once; leaving it releases
    released = spec(server)
    assert (released["holderIdentity"], released["leaseDurationSeconds"]) == ("", 1)
    assert released["leaseTransitions"] == 0
    assert a.is_leader is False
    assert b.step() is True  # no waiting for expiry
    assert spec(server)["leaseTransitions"] == 1
    assert events.log == ["a started", "a stopped", "b started"]


def test_taking_over_keeps_the_lease_labels(server: FakeKubeApiServer, apis: list[KubeApi]) -> None:
    apis[0].coordination.create_namespaced_lease(
        NS,
        V1Lease(
            metadata=V1ObjectMeta(name=LEASE, labels={"team": "obs"}),
            spec=V1LeaseSpec(holder_identity="", lease_duration_seconds=1),
        ),
    )
    clock, events = FakeClock(), Events()
    assert elector(apis[0], "a", clock, events).step() is True
    lease = server.get("leases", NS, LEASE)
    assert lease is not None
    assert lease["metadata"]["labels"] == {"team": "obs"}


@pytest.mark.parametrize(
    ("lease", "renew", "retry"),
    [(10.0, 10.0, 2.0), (15.0, 10.0, 9.0), (15.0, 20.0, 2.0), (15.0, 10.0, 0.0)],
)
def test_timings_must_follow_client_go_rules(
    apis: list[KubeApi], lease: float, renew: float, retry: float
) -> None:
    with pytest.raises(ValueError, match="lease_duration > renew_deadline"):
        LeaderElector(
            apis[0],
            namespace=NS,
            name=LEASE,
            identity="a",
            lease_duration=lease,
            renew_deadline=renew,
            retry_period=retry,
        )


# --- two electors on threads, real time ---------------------------------------------------

LEASE_S, RENEW_S, RETRY_S = 1.0, 0.6, 0.15
SLACK_S = 0.35  # scheduling and HTTP latency on a busy CI machine


@dataclass
class Candidate:
    elector: LeaderElector
    stop: threading.Event
    thread: threading.Thread


@contextmanager
def candidates(
    server: FakeKubeApiServer, apis: list[KubeApi], release: bool = True
) -> Iterator[list[Candidate]]:
    running: list[Candidate] = []
    for api, identity in zip(apis, ("a", "b"), strict=True):
        le = LeaderElector(
            api,
            namespace=NS,
            name=LEASE,
            identity=identity,
            lease_duration=LEASE_S,
            renew_deadline=RENEW_S,
            retry_period=RETRY_S,
            release_on_cancel=release,
        )
        stop = threading.Event()
        thread = threading.Thread(target=le.run, args=(stop,), name=f"elector-{identity}")
        running.append(Candidate(le, stop, thread))
        thread.start()
    try:
        yield running
    finally:
        for c in running:
            c.stop.set()
        for c in running:
            c.thread.join(timeout=5)
            assert not c.thread.is_alive()


@dataclass
class Sampler:
    """Reads both `is_leader` flags back to back, every millisecond, for `seconds`."""

    both: int = 0
    none: int = 0
    samples: int = 0

    def run(self, electors: list[LeaderElector], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            flags = [e.is_leader for e in electors]
            self.samples += 1
            self.both += sum(flags) > 1
            self.none += not any(flags)
            time.sleep(0.001)


def wait_for(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until `predicate()` held; fails after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.002)
    pytest.fail(f"condition not met within {timeout} s")


def the_leader(running: list[Candidate]) -> tuple[Candidate, Candidate]:
    leaders = [c for c in running if c.elector.is_leader]
    assert len(leaders) == 1
    return leaders[0], next(c for c in running if c is not leaders[0])


def test_two_electors_exactly_one_leads_and_a_stopped_leader_is_replaced_fast(
    server: FakeKubeApiServer, apis: list[KubeApi]
) -> None:
    with candidates(server, apis) as running:
        electors = [c.elector for c in running]
        wait_for(lambda: any(e.is_leader for e in electors), timeout=2 * LEASE_S)
        sampler = Sampler()
        sampler.run(electors, seconds=1.0)
        assert sampler.both == 0
        assert sampler.none <= sampler.samples * 0.05  # leadership held steadily
        leader, follower = the_leader(running)

        leader.stop.set()  # graceful: releases the lease
        watcher = threading.Thread(target=sampler.run, args=(electors, 0.8))
        watcher.start()
        took = wait_for(lambda: follower.elector.is_leader, timeout=LEASE_S + 2 * RETRY_S)
        watcher.join()
        assert took <= RETRY_S + SLACK_S  # released: no waiting for expiry
        assert not leader.elector.is_leader
        assert sampler.both == 0


def test_crashed_leader_is_replaced_within_the_lease_duration_never_two_leaders(
    server: FakeKubeApiServer, apis: list[KubeApi]
) -> None:
    with candidates(server, apis, release=False) as running:
        electors = [c.elector for c in running]
        wait_for(lambda: any(e.is_leader for e in electors), timeout=2 * LEASE_S)
        leader, follower = the_leader(running)
        identity = leader.elector.identity
        wait_for(lambda: follower.elector.leader_identity == identity, timeout=2 * RETRY_S + 0.5)

        leader.stop.set()  # a crash: it stops renewing and does not release
        sampler = Sampler()
        watcher = threading.Thread(target=sampler.run, args=(electors, LEASE_S + 0.6))
        watcher.start()
        took = wait_for(lambda: follower.elector.is_leader, timeout=LEASE_S + 1.0)
        watcher.join()
        # Expiry counts from the follower's last sight of a change (<= one retry after the
        # last renewal), then one more retry until it looks again.
        assert took <= math.ceil(LEASE_S) + 2 * RETRY_S + SLACK_S
        assert sampler.both == 0
        lease = server.get("leases", NS, LEASE)
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == follower.elector.identity


def test_leader_whose_renewals_fail_gives_up_within_the_renew_deadline(
    server: FakeKubeApiServer, apis: list[KubeApi]
) -> None:
    with candidates(server, apis) as running:
        electors = [c.elector for c in running]
        wait_for(lambda: any(e.is_leader for e in electors), timeout=2 * LEASE_S)
        leader, _ = the_leader(running)

        server.fail_next(100_000, 500)  # the API server breaks for everyone
        gave_up = wait_for(lambda: not leader.elector.is_leader, timeout=RENEW_S + 1.0)
        assert gave_up <= RENEW_S + 0.02  # the last success began before the faults
        sampler = Sampler()
        sampler.run(electors, seconds=0.5)
        assert sampler.samples == sampler.none  # nobody leads while nothing can be renewed
        assert "500" in (leader.elector.last_error or "")

        server.clear_faults()
        wait_for(lambda: any(e.is_leader for e in electors), timeout=LEASE_S + 2 * RETRY_S + 1)
        assert sum(e.is_leader for e in electors) == 1
