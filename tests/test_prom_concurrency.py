"""The adaptive limit on requests in flight stays at one against a server that runs requests
in turn (a one-core Prometheus), climbs to the maximum against one that runs them side by
side (a Mimir query-frontend with many queriers), settles in between against a server with
a few cores, never exceeds the configured maximum, halves on a failing server, and compares
only requests of one kind. A level learned is where the next limit starts, and is checked
against the levels below: kept while it pays over the one below by the rule of a raise,
walked down while it does not (a server that lost capacity). Driven by a discrete-event
simulation of the server on a fake clock: deterministic, no real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass, field

import pytest

from mimir_limit_optimizer.sources.prom_concurrency import (
    MIN_WINDOW,
    MIN_WINDOW_SECONDS,
    REPROBE_AFTER,
    ConcurrencyLimit,
    Ticket,
)


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Job:
    key: Hashable
    work: float  # seconds of one core
    size: int  # response bytes
    ticket: Ticket | None = None
    left: float = field(init=False)

    def __post_init__(self) -> None:
        self.left = self.work


def simulate(
    limit: ConcurrencyLimit,
    clock: FakeClock,
    jobs: list[Job],
    *,
    cores: float,
    penalty: float = 0.0,
) -> list[int]:
    """Serve `jobs` in order on a processor-sharing server with `cores`, starting as many as
    `limit.limit` allows; `penalty`: extra work per additional request in flight (a one-core
    Prometheus spends more CPU on requests that overlap). Returns the level each job was
    started at."""
    pending = list(reversed(jobs))
    active: list[Job] = []
    levels: list[int] = []
    for _ in range(10 * len(jobs) + 10):  # bounded: every turn completes a job
        while pending and len(active) < limit.limit:
            job = pending.pop()
            job.ticket = limit.enter()
            active.append(job)
            levels.append(limit.limit)
        if not active:
            return levels
        speed = min(1.0, cores / len(active)) / (1 + penalty * (len(active) - 1))
        first = min(active, key=lambda j: j.left)
        step = first.left / speed
        clock.now += step
        for job in active:
            job.left -= step * speed
        done = [j for j in active if j.left <= 1e-9]
        active = [j for j in active if j.left > 1e-9]
        for job in done:
            assert job.ticket is not None
            limit.measure(job.ticket, job.size, job.key)  # while in flight, as `Slot` does
            limit.leave()
    raise AssertionError("simulation did not finish")


def same_jobs(count: int, key: Hashable = "q") -> list[Job]:
    return [Job(key, work=1.0, size=1000) for _ in range(count)]


def adaptive(
    maximum: int = 4, period: int = 1, start: int | None = None
) -> tuple[ConcurrencyLimit, FakeClock]:
    clock = FakeClock()
    limit = ConcurrencyLimit(maximum, adaptive=True, clock=clock, period=period, start=start)
    return limit, clock


def test_a_one_core_server_is_sent_one_request_at_a_time_after_one_try_of_two() -> None:
    limit, clock = adaptive()
    # 42 requests, as a collection of 2 limits x 7 days sends.
    started = simulate(limit, clock, same_jobs(42), cores=1, penalty=0.2)
    assert limit.levels == [1, 2, 1]
    # The try: one window at one, one at two (2 x 2 requests), the rest at one.
    assert started.count(2) <= 2 * 2 + 1
    assert started[-20:] == [1] * 20


def test_a_one_core_server_is_tried_again_only_every_few_measurements() -> None:
    limit, clock = adaptive()
    simulate(limit, clock, same_jobs(400), cores=1, penalty=0.2)
    assert max(limit.levels) == 2
    assert limit.levels[-1] == 1
    tries = limit.levels.count(2)
    # Each try costs 2 x 2 requests at two, then REPROBE_AFTER windows of MIN_WINDOW at one.
    per_cycle = 2 * 2 + REPROBE_AFTER * MIN_WINDOW
    assert 400 // per_cycle - 1 <= tries <= 400 // per_cycle + 1


def test_a_server_with_a_core_per_request_gets_the_maximum() -> None:
    limit, clock = adaptive(maximum=4)
    started = simulate(limit, clock, same_jobs(42), cores=16)
    assert limit.levels == [1, 2, 3, 4]
    assert started[-10:] == [4] * 10


def test_the_maximum_is_never_exceeded_however_much_more_would_pay() -> None:
    limit, clock = adaptive(maximum=3)
    started = simulate(limit, clock, same_jobs(100), cores=64)
    assert max(started) == 3
    assert limit.levels == [1, 2, 3]


def test_a_two_core_server_settles_at_two() -> None:
    limit, clock = adaptive(maximum=8)
    simulate(limit, clock, same_jobs(42), cores=2)
    assert limit.levels == [1, 2, 3, 2]
    assert limit.limit == 2


def test_a_measurement_spans_at_least_a_second_however_quick_the_requests() -> None:
    limit, clock = adaptive()
    quick = [Job("q", work=0.1, size=1000) for _ in range(60)]
    started = simulate(limit, clock, quick, cores=1, penalty=0.2)
    # The first measurement at one in flight needs MIN_WINDOW_SECONDS of 0.1 s requests.
    assert started.index(2) >= MIN_WINDOW_SECONDS / 0.1
    assert limit.levels == [1, 2, 1]


def test_a_maximum_of_one_never_tries_more() -> None:
    limit, clock = adaptive(maximum=1)
    started = simulate(limit, clock, same_jobs(42), cores=16)
    assert set(started) == {1}
    assert limit.levels == [1]


def test_fixed_concurrency_is_the_maximum_throughout() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(4, adaptive=False, clock=clock)
    started = simulate(limit, clock, same_jobs(42), cores=1, penalty=0.5)
    limit.back_off()
    assert set(started) == {4}
    assert limit.levels == [4]
    assert limit.limit == 4


def test_a_failing_server_halves_the_requests_in_flight() -> None:
    limit, clock = adaptive(maximum=8)
    simulate(limit, clock, same_jobs(60), cores=16)
    assert limit.limit == 8
    limit.back_off()
    assert limit.limit == 4
    limit.back_off()
    limit.back_off()
    limit.back_off()
    assert limit.limit == 1
    assert limit.levels[-4:] == [8, 4, 2, 1]


def test_only_requests_of_one_kind_are_compared() -> None:
    # Small responses at one in flight, then large ones at two: bytes per second jump, but
    # the server (one core) is no faster. Comparing across kinds would raise the limit.
    limit, clock = adaptive()
    jobs = [Job("small", work=1.0, size=100) for _ in range(MIN_WINDOW + 1)]
    jobs += [Job("large", work=1.0, size=100_000) for _ in range(40)]
    simulate(limit, clock, jobs, cores=1, penalty=0.2)
    assert max(limit.levels) == 2
    assert limit.limit == 1


def test_a_wrong_comparison_across_kinds_would_have_raised_it() -> None:
    # The control for the test above: one key for both kinds, and the jump looks like gain.
    limit, clock = adaptive()
    jobs = [Job("same", work=1.0, size=100) for _ in range(MIN_WINDOW)]
    jobs += [Job("same", work=1.0, size=100_000) for _ in range(40)]
    simulate(limit, clock, jobs, cores=1, penalty=0.2)
    assert limit.limit > 1


def mixed_jobs(count: int) -> list[Job]:
    """Chunks of three queries in turn, as the source sends them, measured as one kind: the
    second query's answers are 50 times larger for the same work."""
    sizes = (1000, 50_000, 3000)
    return [Job("range", work=1.0, size=sizes[i % 3]) for i in range(count)]


def test_a_measurement_counts_whole_periods_of_the_mix() -> None:
    limit, clock = adaptive(period=3)
    started = simulate(limit, clock, mixed_jobs(42), cores=1, penalty=0.2)
    assert limit.levels == [1, 2, 1]
    # At one in flight 3 requests (one period), at two max(3, 2 x 2) = 4, rounded up to 6.
    assert started[:3] == [1, 1, 1]
    assert started.count(2) == 6


def test_a_mix_of_queries_on_a_one_core_server_is_only_tried_at_two() -> None:
    limit, clock = adaptive(period=3)
    started = simulate(limit, clock, mixed_jobs(300), cores=1, penalty=0.2)
    assert max(limit.levels) == 2
    tries = limit.levels.count(2)
    assert started.count(2) <= 6 * tries
    assert tries <= 1 + 300 // (6 + REPROBE_AFTER * MIN_WINDOW)


def test_a_mix_of_queries_on_a_parallel_server_climbs_to_the_maximum() -> None:
    limit, clock = adaptive(period=3)
    started = simulate(limit, clock, mixed_jobs(90), cores=16)
    assert limit.levels == [1, 2, 3, 4]
    assert started[-30:] == [4] * 30


@pytest.mark.parametrize(("period", "fooled"), [(7, False), (1, True)])
def test_only_whole_periods_of_the_mix_are_compared(period: int, fooled: bool) -> None:
    # Seven queries in turn, three with small answers and four with large ones, on a one-core
    # server. Windows cut from the mix (period 1) compare 3 small answers at one in flight
    # with 4 large ones at two, and two seems to pay; whole periods compare like with like.
    sizes = (100, 100, 100, 100_000, 100_000, 100_000, 100_000)
    jobs = [Job("range", work=1.0, size=sizes[i % 7]) for i in range(140)]
    limit, clock = adaptive(period=period)
    simulate(limit, clock, jobs, cores=1, penalty=0.2)
    assert (max(limit.levels) > 2) == fooled


def test_waiting_requests_start_when_the_limit_rises_and_never_beyond_it() -> None:
    async def scenario() -> list[int]:
        clock = FakeClock()
        limit = ConcurrencyLimit(4, adaptive=True, clock=clock)
        seen: list[int] = []
        gate = asyncio.Event()

        async def request(number: int) -> None:
            async with limit.slot() as slot:
                seen.append(limit.in_flight)
                if number < MIN_WINDOW:
                    # The first window completes at one in flight, quickly enough to pay.
                    clock.now += 1.0
                    slot.received(1000, "q")
                else:
                    await gate.wait()

        tasks = [asyncio.create_task(request(n)) for n in range(8)]
        for _ in range(50):  # bounded: let the first window finish
            await asyncio.sleep(0)
        assert limit.limit == 2
        gate.set()
        await asyncio.gather(*tasks)
        return seen

    seen = asyncio.run(scenario())
    assert seen[:MIN_WINDOW] == [1] * MIN_WINDOW
    assert max(seen) == 2
    assert 2 in seen[MIN_WINDOW:]


def test_maximum_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="maximum must be >= 1"):
        ConcurrencyLimit(0, adaptive=True)


# --- A level kept from one collection to the next ------------------------------------------


def learned_against(cores: float, maximum: int, jobs: int) -> int:
    """The level a first collection (from one) learns against a server with `cores`."""
    limit, clock = adaptive(maximum=maximum)
    simulate(limit, clock, same_jobs(jobs), cores=cores)
    return limit.learned


def test_a_kept_level_that_still_pays_is_where_the_next_collection_starts_and_stays() -> None:
    kept = learned_against(cores=16, maximum=4, jobs=42)
    assert kept == 4
    limit, clock = adaptive(maximum=4, start=kept)
    started = simulate(limit, clock, same_jobs(42), cores=16)
    # One measurement at four (2 x 4 requests), one at three, and four pays over three.
    assert limit.levels == [4, 3, 4]
    assert started[: 2 * 4] == [4] * 8
    assert min(started) == 3
    assert started[-20:] == [4] * 20
    assert limit.learned == 4


def test_a_server_that_lost_capacity_is_walked_down_to_what_it_still_takes() -> None:
    kept = learned_against(cores=16, maximum=8, jobs=200)
    assert kept == 8
    # The same server with two cores left: no level above two pays over the one below it,
    # and one does not pay over two.
    limit, clock = adaptive(maximum=8, start=kept)
    started = simulate(limit, clock, same_jobs(150), cores=2)
    assert limit.levels[:9] == [8, 7, 6, 5, 4, 3, 2, 1, 2]
    assert limit.limit == 2
    assert limit.learned == 2
    assert started[-10:] == [2] * 10


def test_a_server_that_gained_cores_gets_more_after_the_kept_level_is_confirmed() -> None:
    limit, clock = adaptive(maximum=8, start=2)
    simulate(limit, clock, same_jobs(150), cores=16)
    # Two pays over one; one more measurement at two, then the climb goes on.
    assert limit.levels == [2, 1, 2, 3, 4, 5, 6, 7, 8]


def test_a_kept_level_of_one_is_a_fresh_start() -> None:
    kept = learned_against(cores=1, maximum=4, jobs=42)
    assert kept == 1
    limit, clock = adaptive(start=kept)
    fresh, fresh_clock = adaptive()
    # Two is tried after the first measurement, as from nothing kept: a level of one kept
    # after a failure or a busy hour is not kept for good.
    assert simulate(limit, clock, same_jobs(42), cores=1, penalty=0.2) == simulate(
        fresh, fresh_clock, same_jobs(42), cores=1, penalty=0.2
    )
    assert limit.levels == fresh.levels == [1, 2, 1]


# The service's collection: one chunk of each of 13 queries in turn (a measurement is 13
# requests), 8 chunks each.
SERVICE_PERIOD, SERVICE_REQUESTS = 13, 104


def test_a_confirmed_kept_level_tries_one_more_within_the_same_collection() -> None:
    limit, clock = adaptive(maximum=4, period=SERVICE_PERIOD, start=2)
    simulate(limit, clock, same_jobs(SERVICE_REQUESTS), cores=16)
    # Measured at two, checked at one, confirmed, measured again: then three is tried (it
    # pays), then four. Waiting REPROBE_AFTER measurements (more than a collection holds)
    # would have kept two for good.
    assert SERVICE_REQUESTS // SERVICE_PERIOD < REPROBE_AFTER
    assert limit.levels == [2, 1, 2, 3, 4]
    assert limit.learned == 4


def test_a_halving_is_recovered_at_the_next_collection() -> None:
    first, clock = adaptive(maximum=4, period=SERVICE_PERIOD, start=4)
    first.back_off()  # a failing request early in the collection: four -> two
    simulate(first, clock, same_jobs(SERVICE_REQUESTS), cores=16)
    assert first.learned == 2  # no try within the collection after a failure
    second, clock = adaptive(maximum=4, period=SERVICE_PERIOD, start=first.learned)
    simulate(second, clock, same_jobs(SERVICE_REQUESTS), cores=16)
    assert second.learned == 4


def test_a_collection_keeps_what_it_measured() -> None:
    limit, clock = adaptive(start=4)
    simulate(limit, clock, same_jobs(2), cores=16)  # too few for a measurement
    assert limit.limit == 4
    assert limit.learned == 4  # nothing measured: nothing learned, nothing lost
    checking, clock = adaptive(start=4)
    simulate(checking, clock, same_jobs(2 * 4 + 1), cores=16)  # measured at four only
    assert checking.levels == [4, 3]
    assert checking.learned == 4  # the step down was not measured yet


def test_a_failure_while_checking_halves_and_ends_the_check() -> None:
    limit, clock = adaptive(start=4)
    limit.back_off()
    assert limit.learned == 2
    started = simulate(limit, clock, same_jobs(20), cores=16)
    assert limit.levels == [4, 2]
    assert set(started) == {2}


def test_a_kept_level_is_compared_with_the_one_below_for_one_kind_of_request() -> None:
    # Small answers measured at four, large ones at three: the kept level is measured again
    # for the large ones before the two are compared.
    jobs = [Job("small", work=1.0, size=100) for _ in range(2 * 4)]
    jobs += [Job("large", work=1.0, size=100_000) for _ in range(40)]
    limit, clock = adaptive(start=4)
    simulate(limit, clock, jobs, cores=16)
    assert limit.levels == [4, 3, 4, 3, 4]


def simulate_in_turn(limit: ConcurrencyLimit, clock: FakeClock, jobs: list[Job]) -> None:
    """Serve `jobs` one at a time in arrival order (a one-core server with a queue, unlike
    `simulate`'s processor sharing), starting as many as `limit.limit` allows."""
    pending = list(reversed(jobs))
    queue: list[Job] = []
    for _ in range(2 * len(jobs) + 2):  # bounded: every turn completes a job
        while pending and len(queue) < limit.limit:
            job = pending.pop()
            job.ticket = limit.enter()
            queue.append(job)
        if not queue:
            return
        job = queue.pop(0)
        clock.now += job.work
        assert job.ticket is not None
        limit.measure(job.ticket, job.size, job.key)
        limit.leave()
    raise AssertionError("simulation did not finish")


def test_a_step_down_measures_only_requests_sent_after_it() -> None:
    # Two kept, on a one-core server serving in turn. The request sent at two finishes at
    # one after waiting a turn: counted at one, its latency made one look slow enough for
    # two to pay (1.14 against 0.75 per second; 1.125 needed). Counting only requests sent
    # after the step down, one measures 1.0 and two does not pay.
    limit, clock = adaptive(start=2)
    simulate_in_turn(limit, clock, same_jobs(30))
    assert limit.levels == [2, 1]
    assert limit.learned == 1


def test_a_kept_level_is_bounded_by_the_maximum_and_ignored_when_fixed() -> None:
    limit, _ = adaptive(maximum=3, start=10)
    assert limit.limit == 3
    fixed = ConcurrencyLimit(4, adaptive=False, clock=FakeClock(), start=2)
    assert fixed.limit == 4
    assert fixed.learned == 4
