"""Invariants of the limit math, for any usage Hypothesis can think of: recommendations stay
within min/max, never fall when usage rises, and applying a plan then planning again on the
same data changes nothing (the rendered overrides file re-parses to the applied values)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.current import merge_current
from mimir_limit_optimizer.engine.overrides import current_limits, parse_overrides
from mimir_limit_optimizer.engine.plan import apply_plan, build_plan
from mimir_limit_optimizer.engine.recommend import recommend
from mimir_limit_optimizer.engine.results import Reason
from mimir_limit_optimizer.engine.usage import Observation

NOW = 1_800_000_000.0
STEP = 300.0
T = 2 * 288 + 12  # two days and an hour at 5 minutes
TS = NOW - STEP * np.arange(T)[::-1]
CATALOGUE = load_catalogue()
LIMITS = ["ingestion_rate", "ingestion_burst_size", "max_global_series_per_user"]

tenant_usage = st.tuples(
    st.floats(1.0, 1e7),  # level
    st.floats(0.0, 0.9),  # daily amplitude
    st.floats(0.0, 0.5),  # noise
    st.integers(0, 2**16),  # noise seed
    st.booleans(),  # a spike somewhere
)
# Current limits as multiples of each tenant's level: near it, so that most plans are not
# step-limited (those are partial on purpose) and the idempotence check runs.
currents = st.floats(0.8, 2.5)


def _series(level: float, amplitude: float, noise: float, seed: int, spike: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    series = level * (1 + amplitude * np.sin(TS / 86400 * 2 * np.pi))
    series = series * (1 + noise * rng.random(T))
    if spike:
        series[T // 2 : T // 2 + 4] *= 8
    return series


def _observation(usages: list[tuple], current: list[float], scale: float = 1.0) -> Observation:
    rows = np.vstack([_series(*u) for u in usages]) * scale
    names = tuple(f"t-{i}" for i in range(len(usages)))
    cur = np.asarray([u[0] * c for u, c in zip(usages, current, strict=False)])
    return Observation(
        tenants=names,
        timestamps=TS,
        step=STEP,
        usage={"ingestion_rate": rows, "max_global_series_per_user": rows * 30},
        current={
            "ingestion_rate": cur,
            "ingestion_burst_size": cur * 20,
            "max_global_series_per_user": cur * 30,
        },
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    usages=st.lists(tenant_usage, min_size=1, max_size=4),
    current=st.lists(currents, min_size=4, max_size=4),
    bounds=st.tuples(st.floats(1.0, 1e5), st.floats(1.0, 1e3)),
)
def test_recommendations_respect_min_and_max(usages, current, bounds) -> None:
    minimum, span = bounds
    maximum = minimum * (1 + span)
    config = Config.model_validate(
        {
            "limits": {
                "minLimits": {"ingestion_rate": minimum},
                "maxLimits": {"ingestion_rate": maximum},
            }
        }
    )
    obs = _observation(usages, current[: len(usages)])
    result = recommend(obs, config, CATALOGUE, now=NOW, limits=["ingestion_rate"]).results[
        "ingestion_rate"
    ]
    defined = np.isfinite(result.recommended)
    assert defined.all()
    assert (result.recommended >= minimum - 1e-9).all()
    assert (result.recommended <= maximum + 1e-9).all()


@settings(max_examples=60, deadline=None)
@given(
    usages=st.lists(tenant_usage, min_size=1, max_size=4),
    current=st.lists(currents, min_size=4, max_size=4),
    factor=st.floats(1.0, 50.0),
)
def test_more_usage_never_lowers_the_recommendation(usages, current, factor) -> None:
    config = Config()
    low = recommend(_observation(usages, current[: len(usages)]), config, CATALOGUE, now=NOW,
                    limits=LIMITS)  # fmt: skip
    high = recommend(_observation(usages, current[: len(usages)], factor), config, CATALOGUE,
                     now=NOW, limits=LIMITS)  # fmt: skip
    for name in LIMITS:
        assert (high.results[name].recommended >= low.results[name].recommended).all(), name


@settings(max_examples=40, deadline=None)
@given(
    usages=st.lists(tenant_usage, min_size=1, max_size=4),
    current=st.lists(currents, min_size=4, max_size=4),
)
def test_planning_again_after_applying_a_plan_changes_nothing(usages, current) -> None:
    # Wide step limits so that most plans are complete (a step-limited plan is partial).
    config = Config.model_validate(
        {"changePolicy": {"maxIncreasePercent": 1000, "maxDecreasePercent": 95}}
    )
    obs = _observation(usages, current[: len(usages)])
    first = recommend(obs, config, CATALOGUE, now=NOW, limits=LIMITS)
    step_limited = int(Reason.RAISE_LIMITED | Reason.LOWER_LIMITED)
    if any((r.flags & step_limited).any() for r in first.results.values()):
        event("step-limited: skipped")
        return  # a step-limited plan is partial on purpose; the next cycle continues it
    document = parse_overrides("overrides: {}\n")
    apply_plan(document, build_plan(first), CATALOGUE)
    reparsed = parse_overrides(document.render())
    specs = [CATALOGUE.limits[n] for n in LIMITS]
    applied = merge_current(obs, current_limits(reparsed, obs.tenants, specs))
    for change in build_plan(first).changes:  # the file holds exactly the planned values
        index = obs.tenants.index(change.tenant)
        assert applied.current[change.limit][index] == change.new
    second = recommend(applied, config, CATALOGUE, now=NOW, limits=LIMITS)
    event(f"checked a plan of {min(len(build_plan(first)), 3)}+ changes")
    assert build_plan(second).changes == ()


def test_recommend_does_not_modify_its_input() -> None:
    obs = _observation([(1000.0, 0.3, 0.1, 1, True)], [500.0])
    before = {k: v.copy() for k, v in obs.usage.items()}
    current_before = {k: v.copy() for k, v in obs.current.items()}
    recommend(obs, Config(), CATALOGUE, now=NOW, limits=LIMITS)
    for key, array in before.items():
        np.testing.assert_array_equal(obs.usage[key], array)
    for key, array in current_before.items():
        np.testing.assert_array_equal(obs.current[key], array)
