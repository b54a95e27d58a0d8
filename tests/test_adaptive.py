"""The engine rules of trendAnalysis.adaptive (issue 13 §4), each against the value it must
produce: variability-scaled buffer, quiet memory, growth-aware raises, safe lowering."""

from __future__ import annotations

import numpy as np
import pytest

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine import adaptive
from mimir_limit_optimizer.engine import postprocess as pp
from mimir_limit_optimizer.engine.recommend import recommend
from mimir_limit_optimizer.engine.strategies import tenant_shape
from mimir_limit_optimizer.engine.usage import Observation

CATALOGUE = load_catalogue()
RATE = CATALOGUE.limits["ingestion_rate"]
NOW = 1_800_000_000.0
STEP = 300.0
DAY = 288  # points
T = 7 * DAY
TS = NOW - STEP * np.arange(T)[::-1]
NAN = np.nan


def _run(usage: np.ndarray, current: float, discards: np.ndarray | None = None, cfg=None):
    obs = Observation(
        tenants=("t",),
        timestamps=TS,
        step=STEP,
        usage={RATE.name: usage[None, :]},
        discards={RATE.name: (np.zeros(T) if discards is None else discards)[None, :]},
        current={RATE.name: np.array([current])},
    )
    return recommend(obs, cfg or Config(), CATALOGUE, now=NOW, limits=[RATE.name]).results[
        RATE.name
    ]


def test_shape_reads_quiet_time_peak_and_growth() -> None:
    quiet = np.full(T, 1000.0)
    quiet[-3 * DAY :] = 20.0  # quiet for the last 3 days
    grows = 1000.0 * 1.05 ** (np.arange(T) / DAY)  # 5% a day
    shape = tenant_shape(
        np.vstack([quiet, grows]),
        np.vstack([quiet, grows]),
        timestamps=TS,
        step=STEP,
        now=NOW,
        quiet_share=0.5,
        recent=86400.0,
    )
    assert shape.peak[0] == pytest.approx(1000.0)
    assert shape.quiet_for[0] == 3 * 86400.0
    assert shape.quiet_for[1] == 0.0
    assert shape.growth[0] == 0.0
    assert shape.growth[1] == pytest.approx(0.05, abs=0.005)


def test_a_tenant_quiet_for_a_day_keeps_its_limit() -> None:
    usage = np.full(T, 1000.0)
    usage[-int(1.5 * DAY) :] = 20.0
    result = _run(usage, current=1400.0)
    assert result.recommended[0] == 1400.0
    assert any("went quiet" in r for r in result.reasons(0))


def test_a_tenant_quiet_for_days_is_lowered_only_part_of_the_way() -> None:
    usage = np.full(T, 1000.0)
    usage[-4 * DAY :] = 20.0
    # The median of the week is the quiet level (the default p95 still sees the active days):
    # its remembered level (its highest hour, 1000) + the standing buffer (10%) = 1100 holds;
    # a safe lowering from 2000 would otherwise go to 500 in one step.
    median = {"percentile": 50, "adaptive": {"tailPercentile": 0}}
    result = _run(usage, current=2000.0, cfg=Config.model_validate({"trendAnalysis": median}))
    assert result.recommended[0] == 1100.0
    assert any("went quiet" in r for r in result.reasons(0))
    off = {**median, "adaptive": {"quietShare": 0, "tailPercentile": 0}}
    assert (
        _run(usage, 2000.0, cfg=Config.model_validate({"trendAnalysis": off})).recommended[0]
        == 500.0
    )  # without the memory: a safe lowering, -75% in one step


def test_part_of_the_load_moved_away_counts_as_quiet() -> None:
    # 35% of the load moved away for 4 days (day level at 65% of its peak, above the old
    # quietShare 0.5): the limit keeps the remembered level for the return.
    usage = np.full(T, 1000.0)
    usage[-4 * DAY :] = 650.0
    result = _run(
        usage,
        current=1500.0,
        cfg=Config.model_validate(
            {"trendAnalysis": {"percentile": 50, "adaptive": {"tailPercentile": 0}}}
        ),
    )
    assert result.recommended[0] == 1100.0
    old = {
        "percentile": 50,
        "adaptive": {"quietShare": 0.5, "quietKeep": 0.6, "tailPercentile": 0},
    }
    assert (
        _run(usage, 1500.0, cfg=Config.model_validate({"trendAnalysis": old})).recommended[0]
        < 1000.0
    )


def test_a_return_to_the_remembered_level_is_covered_at_once() -> None:
    usage = np.full(T, 1000.0)
    discards = np.zeros(T)
    usage[-4 * DAY :] = 20.0
    usage[-6:] = 660.0  # back for the last half hour, at the limit of 660...
    discards[-6:] = 340.0  # ...sending its old 1000: no spike, its own level
    result = _run(usage, current=660.0, discards=discards)
    assert result.recommended[0] >= 1200.0  # 1000 + the full 20% buffer
    assert any("throttled now" in r for r in result.reasons(0))


def test_a_throttled_tenant_that_grows_is_raised_a_day_ahead() -> None:
    demand = 1000.0 * 1.08 ** (np.arange(T) / DAY)  # 8% a day
    limit = demand[-1] * 0.95
    usage = np.minimum(demand, limit)
    discards = demand - usage
    result = _run(usage, current=limit, discards=discards)
    level = demand[-1]
    assert result.recommended[0] >= level * 1.07 * 1.2  # a day of growth + the full buffer
    assert any("growing" in r for r in result.reasons(0))


def test_a_noisy_tenant_gets_a_larger_buffer_than_a_steady_one() -> None:
    rng = np.random.default_rng(3)
    steady = _run(np.full(T, 1000.0), current=1100.0)
    noisy = _run(1000.0 * np.maximum(0.05, 1 + 0.3 * rng.standard_normal(T)), current=1100.0)
    assert steady.buffer_percent[0] == 20.0
    assert noisy.buffer_percent[0] > 40.0
    assert any("short-term variation" in r for r in noisy.reasons(0))


@pytest.mark.parametrize(
    ("variability", "expected"),
    [(0.05, 1.0), (0.2, 2.0), (0.9, 3.0), (NAN, 1.0)],
)
def test_variability_scale_table(variability: float, expected: float) -> None:
    out = pp.variability_scale(np.array([variability]), 0.1, 1.0, 3.0)
    assert out[0] == pytest.approx(expected)


def test_a_lowering_waits_for_the_recent_hourly_peak() -> None:
    usage = np.full(T, 1000.0)
    usage[-DAY // 2 : -DAY // 2 + 12] = 1500.0  # an hour at 1500, half a day ago
    result = _run(usage, current=3000.0)
    # The week's p95 (1000) + 10% standing would give 1100; the last day's hour at 1500
    # holds the lowering at 1500 (4% of the day: the last day's p95 is still 1000).
    assert result.recommended[0] == 1500.0
    assert any("lowering waits" in r for r in result.reasons(0))


def test_safe_lowering_takes_a_larger_step_unsafe_waits_for_the_usual_one() -> None:
    value = np.array([100.0, 100.0])
    current = np.array([1000.0, 1000.0])
    out, _, lowered = pp.limit_step(
        value, current, 100.0, 10.0, safe=np.array([True, False]), safe_decrease_percent=50.0
    )
    assert out.tolist() == [500.0, 900.0]
    assert lowered.tolist() == [True, True]


def test_bursts_that_recur_every_day_stay_in_the_demand_an_incident_does_not() -> None:
    bursty = np.full(T, 1000.0)
    for start in range(0, T, 72):  # 30 minutes at 3x every 6 hours: 4 a day
        bursty[start : start + 6] = 3000.0
    result = _run(bursty, current=1100.0)
    assert result.demand[0] == pytest.approx(3000.0)  # p95 of the week sees the bursts
    assert any("bursts in the window" in r for r in result.reasons(0))
    incident = np.full(T, 1000.0)
    incident[DAY : DAY + 12] = 3000.0  # once, an hour
    once = _run(incident, current=1100.0)
    assert once.demand[0] == pytest.approx(1000.0)
    assert any("spike" in r for r in once.reasons(0))


def test_a_tenant_growing_day_over_day_is_not_lowered() -> None:
    grows = 1000.0 * 1.05 ** (np.arange(T) / DAY)  # 5% a day, never throttled
    result = _run(grows, current=5000.0)
    assert result.recommended[0] == 5000.0
    assert any("lowering waits" in r for r in result.reasons(0))
    flat = _run(np.full(T, grows[-1]), current=5000.0)  # the same level, not growing
    assert flat.recommended[0] < 5000.0


def test_shape_of_no_tenant_and_of_less_than_an_hour() -> None:
    empty = np.zeros((0, T))
    shape = tenant_shape(
        empty, empty, timestamps=TS, step=STEP, now=NOW, quiet_share=0.5, recent=86400.0
    )
    assert shape.peak.shape == shape.growth.shape == (0,)
    short = np.ones((2, 5))
    shape = tenant_shape(
        short, short, timestamps=TS[-5:], step=STEP, now=NOW, quiet_share=0.5, recent=86400.0
    )
    assert np.isnan(shape.variability).all() and (shape.quiet_for == 0).all()


def test_a_growing_tenant_throttled_before_is_raised_ahead_of_its_next_peak() -> None:
    # 5% a day, throttled for an hour 3 days ago (raised since), its limit 5% above its last
    # hour: raised ahead to a day of growth on its recent hourly peak + the standing buffer
    # (10%), not left to be throttled at the next peak.
    grows = 1000.0 * 1.05 ** (np.arange(T) / DAY)
    discards = np.zeros(T)
    discards[-3 * DAY : -3 * DAY + 12] = 50.0
    result = _run(grows, current=grows[-1] * 1.05, discards=discards)
    assert result.recommended[0] >= grows[-1] * 1.04 * 1.1
    assert any("growing" in r for r in result.reasons(0))
    # Never throttled: its limit has not been reached; a weekly cycle's Monday reads like
    # growth too. Not raised ahead.
    never = _run(grows, current=grows[-1] * 1.05)
    assert never.recommended[0] < grows[-1] * 1.1


def test_a_return_from_quiet_is_not_projected_as_growth() -> None:
    # Quiet, then back for a day and throttled at its old level: each of the last three days
    # above the one before, but a return, not 100% a day of growth: not doubled.
    demand = np.full(T, 1000.0)
    demand[-4 * DAY : -DAY] = 20.0
    limit = 950.0
    usage = np.minimum(demand, limit)
    result = _run(usage, current=limit, discards=demand - usage)
    assert 1000.0 * 1.2 <= result.recommended[0] <= 1000.0 * 1.25 * 1.2


def test_a_burst_that_is_over_is_not_chased() -> None:
    # Bursts of 10 minutes at 5x every day (kept in the demand: recurring); the last one
    # throttled and over by the cycle: the limit is not raised to 5x + the buffer for a day.
    rng = np.random.default_rng(5)
    demand = 1000.0 * (1 + 0.05 * rng.standard_normal(T))
    for day in range(7):
        demand[T - day * DAY - 8 : T - day * DAY - 6] = 5000.0
    limit = 1300.0
    usage = np.minimum(demand, limit)
    burst = _run(usage, current=limit, discards=demand - usage)
    assert burst.recommended[0] < 2000.0
    # A level held for the last half hour is covered at once (what it sends + full buffer).
    held = 1000.0 * (1 + 0.05 * rng.standard_normal(T))
    held[-6:] = 2000.0
    usage = np.minimum(held, limit)
    level = _run(usage, current=limit, discards=held - usage)
    assert level.recommended[0] >= 2000.0 * 1.2


def test_held_level_is_the_highest_rolling_minimum() -> None:
    recent = np.ones(12, dtype=bool)
    demand = np.array([[1, 1, 9, 9, 1, 1, 5, 5, 5, 1, 1, 1], [2] * 12], dtype=np.float32)
    held = adaptive.held_level(demand, recent, np.array([0, 1]), step=300.0)
    assert held.tolist() == [5.0, 2.0]
