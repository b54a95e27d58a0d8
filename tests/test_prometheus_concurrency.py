"""The Prometheus source adapts the requests it keeps in flight to what the server shows:
against a server that answers one request at a time (a one-core Prometheus) it tries two
once and goes back to one, and the arrays are the same as with a fixed number in flight.
The level learned is where the next collection of the same source starts, checked against
the levels below it: a server that lost cores since is sent fewer within the collection;
the service's next source (one per cycle) starts where the last one left off.
The server is simulated on a virtual timeline that is also the source's injected clock:
deterministic, no real waiting. (The limit's decisions against servers with more cores are
in test_prom_concurrency.py.)
"""

from __future__ import annotations

import asyncio

import httpx
import numpy as np

from mimir_limit_optimizer.config.models import Config, PrometheusSettings
from mimir_limit_optimizer.controller.wiring import source_factory
from mimir_limit_optimizer.engine.usage import Observation
from mimir_limit_optimizer.sources.prometheus import PrometheusSource
from tests.test_prometheus_source import T0, USAGE_A, USAGE_B, FakePrometheus, Sleeps, spec

# 28 points at 300 s in chunks of 2: 14 range requests of one signal.
END = T0 + 27 * 300
SETTINGS = PrometheusSettings(step=300, chunk_length=600, max_concurrency=4)


class OneCoreServer:
    """`fake`'s answers, served in arrival order on `cores` (one unless set), `work` virtual
    seconds each; `clock` reads the virtual time (the latest answer's)."""

    def __init__(self, fake: FakePrometheus, work: float = 1.0, *, cores: int = 1) -> None:
        self.fake = fake
        self.work = work
        self.now = 0.0
        self.free_at = [0.0] * cores  # when each core is next free
        self.in_flight = 0
        self.most_in_flight = 0

    def clock(self) -> float:
        return self.now

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        arrival = self.now
        for _ in range(10):  # requests sent together arrive together
            await asyncio.sleep(0)
        core = self.free_at.index(min(self.free_at))
        start = max(arrival, self.free_at[core])
        self.free_at[core] = start + self.work
        self.now = max(self.now, self.free_at[core])
        self.in_flight -= 1
        return self.fake(request)


def collect(
    settings: PrometheusSettings, server: OneCoreServer
) -> tuple[PrometheusSource, Observation]:
    source = PrometheusSource(
        settings, transport=httpx.MockTransport(server), sleep=Sleeps(), clock=server.clock
    )
    return source, source.collect([spec("a", USAGE_A)], start=T0, end=END)


def test_a_one_core_server_gets_one_request_at_a_time_after_one_try_of_two() -> None:
    server = OneCoreServer(FakePrometheus())
    source, _ = collect(SETTINGS, server)
    assert source.last_concurrency == [1, 2, 1]
    assert server.most_in_flight <= 2
    assert len(server.fake.ranges()) == 14


def test_without_adaptation_the_maximum_is_in_flight_from_the_start() -> None:
    server = OneCoreServer(FakePrometheus())
    source, _ = collect(SETTINGS.model_copy(update={"adaptive_concurrency": False}), server)
    assert source.last_concurrency == [4]
    assert server.most_in_flight == 4


def test_adaptive_and_fixed_concurrency_collect_the_same_arrays() -> None:
    observations = []
    for update in ({}, {"adaptive_concurrency": False}, {"max_concurrency": 1}):
        _, obs = collect(SETTINGS.model_copy(update=update), OneCoreServer(FakePrometheus()))
        observations.append(obs)
    first = observations[0]
    assert np.isfinite(first.usage["a"]).all()
    for other in observations[1:]:
        assert other.tenants == first.tenants
        np.testing.assert_array_equal(other.usage["a"], first.usage["a"])


def test_responses_held_at_once_are_bounded_by_max_concurrency_plus_one() -> None:
    # An instant server and 30 chunks: without the bound, answered chunks would pile up
    # behind the one being decoded.
    fake = FakePrometheus(tenants=[f"tenant-{i}" for i in range(200)])
    answered = placed = most_held = 0

    async def instant(request: httpx.Request) -> httpx.Response:
        nonlocal answered, most_held
        response = fake(request)
        if request.url.path.endswith("/query_range"):
            answered += 1
            most_held = max(most_held, answered - placed)
        return response

    class Counting(PrometheusSource):
        def _place(self, *args: object, **kwargs: object) -> None:
            nonlocal placed
            placed += 1
            super()._place(*args, **kwargs)  # type: ignore[arg-type]

    settings = SETTINGS.model_copy(update={"max_concurrency": 2, "adaptive_concurrency": False})
    obs = Counting(settings, transport=httpx.MockTransport(instant), sleep=Sleeps()).collect(
        [spec("a", USAGE_A)], start=T0, end=T0 + 59 * 300
    )
    assert len(fake.ranges()) == 30
    assert obs.usage["a"].shape == (200, 60)
    assert most_held <= 2 + 1


def test_chunks_go_one_of_each_query_in_turn() -> None:
    # Every run of (number of queries) requests has the same mix, which is what the limit's
    # measurements compare.
    fake = FakePrometheus()
    PrometheusSource(
        SETTINGS.model_copy(update={"max_concurrency": 1}),
        transport=httpx.MockTransport(fake),
        sleep=Sleeps(),
    ).collect([spec("a", USAGE_A), spec("b", USAGE_B)], start=T0, end=T0 + 1500)
    kinds = ["a" if "a_total" in call.query else "b" for call in fake.ranges()]
    starts = [float(call.form["start"]) for call in fake.ranges()]
    assert kinds == ["a", "b"] * 3
    assert starts == sorted(starts)


def test_the_level_learned_is_where_the_next_collection_of_the_source_starts() -> None:
    server = OneCoreServer(FakePrometheus())
    source, _ = collect(SETTINGS, server)
    assert source.last_concurrency == [1, 2, 1]
    assert source.kept_concurrency == 1
    server.most_in_flight = 0
    source.collect([spec("a", USAGE_A)], start=T0, end=END)
    # One kept is a fresh start: the one try of two that every collection from one makes
    # (whether two requests overlap at the server during the try depends on how this fake
    # times its answers: never more than two).
    assert source.last_concurrency == [1, 2, 1]
    assert 1 <= server.most_in_flight <= 2
    assert source.kept_concurrency == 1


def test_a_kept_level_the_server_no_longer_takes_is_walked_down_within_the_collection() -> None:
    # Two kept from a collection against a server that had more cores than it has now. (Two,
    # not more: this server's answers are timed coarsely, and the thread that decodes them
    # sometimes makes three look 25% better than two. The walk down from eight is in
    # test_prom_concurrency.py, on an exact simulation.)
    server = OneCoreServer(FakePrometheus())
    source = PrometheusSource(
        SETTINGS,
        transport=httpx.MockTransport(server),
        sleep=Sleeps(),
        clock=server.clock,
        kept_concurrency=2,
    )
    obs = source.collect([spec("a", USAGE_A)], start=T0, end=T0 + 59 * 300)
    assert np.isfinite(obs.usage["a"]).all()
    assert source.last_concurrency == [2, 1]
    assert source.kept_concurrency == 1


def test_the_service_s_next_source_starts_at_the_level_the_last_one_learned() -> None:
    make = source_factory({})

    def config(url: str) -> Config:
        return Config.model_validate({"source": {"kind": "prometheus", "prometheus": {"url": url}}})

    first = make(config("http://127.0.0.1:9090"), 0.0)
    assert isinstance(first, PrometheusSource)
    assert first.kept_concurrency is None
    first.kept_concurrency = 3  # what its collection learned
    second = make(config("http://127.0.0.1:9090"), 60.0)
    assert isinstance(second, PrometheusSource)
    assert second is not first
    assert second.kept_concurrency == 3
    # Another server: nothing learned about it yet.
    other = make(config("http://127.0.0.1:9009"), 120.0)
    assert isinstance(other, PrometheusSource)
    assert other.kept_concurrency is None
