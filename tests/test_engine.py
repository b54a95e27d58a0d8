"""The engine end to end on hand-made arrays: demand correction for throttled tenants,
"undefined" with a reason for short or missing history, spikes kept out, tiers, clamps,
derived/discard-driven/policy-only limits, scoping, time-of-day factors and the histogram
strategy — each behaviour checked against the value it must produce."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.recommend import recommend
from mimir_limit_optimizer.engine.results import Status
from mimir_limit_optimizer.engine.usage import Observation

NOW = 1_800_000_000.0  # a fixed "now": the engine never reads the clock
STEP = 300.0
DAYS = 7
T = int(DAYS * 86400 / STEP)
TS = NOW - STEP * np.arange(T)[::-1]
CATALOGUE = load_catalogue()


def config(**sections: Any) -> Config:
    return Config.model_validate(sections)


def observe(
    usage: dict[str, list[np.ndarray]],
    *,
    discards: dict[str, list[np.ndarray]] | None = None,
    current: dict[str, list[float]] | None = None,
    tenants: list[str] | None = None,
    unavailable: dict[str, str] | None = None,
) -> Observation:
    n = len(next(iter(usage.values()))) if usage else len(next(iter((discards or {}).values())))
    names = tenants or [f"tenant-{i}" for i in range(n)]
    return Observation(
        tenants=tuple(names),
        timestamps=TS,
        step=STEP,
        usage={k: np.vstack(v).astype(float) for k, v in usage.items()},
        discards={k: np.vstack(v).astype(float) for k, v in (discards or {}).items()},
        current={k: np.asarray(v, dtype=float) for k, v in (current or {}).items()},
        unavailable=unavailable or {},
    )


def flat(level: float) -> np.ndarray:
    return np.full(T, level)


def daily(level: float, amplitude: float = 0.3) -> np.ndarray:
    return level * (1 + amplitude * np.sin(TS / 86400 * 2 * np.pi))


def run(obs: Observation, cfg: Config | None = None, limits: list[str] | None = None):
    return recommend(obs, cfg or config(), CATALOGUE, now=NOW, limits=limits or ["ingestion_rate"])


def test_a_raise_is_step_limited_then_rounded() -> None:
    recs = run(observe({"ingestion_rate": [flat(1000.0)]}, current={"ingestion_rate": [500.0]}))
    result = recs.results["ingestion_rate"]
    # Demand 1000 x 1.2 buffer = 1200, but one cycle may at most double 500.
    assert result.recommended[0] == 1000.0
    assert result.status_of(0) is Status.CHANGE
    assert any("raise limited" in r for r in result.reasons(0))


def test_buffer_applies_without_step_limit() -> None:
    recs = run(observe({"ingestion_rate": [flat(1000.0)]}, current={"ingestion_rate": [1100.0]}))
    result = recs.results["ingestion_rate"]
    assert result.recommended[0] == 1200.0
    assert result.demand[0] == pytest.approx(1000.0)
    assert "+20% buffer" in result.reasons(0)


def test_throttled_tenant_demand_is_accepted_plus_discarded() -> None:
    accepted = flat(1000.0)  # pinned at its limit
    discarded = flat(500.0)  # what the limit rejected: real demand is 1500/s
    with_discards = run(
        observe(
            {"ingestion_rate": [accepted]},
            discards={"ingestion_rate": [discarded]},
            current={"ingestion_rate": [1000.0]},
        )
    ).results["ingestion_rate"]
    assert with_discards.demand[0] == pytest.approx(1500.0)
    assert with_discards.recommended[0] == 1800.0  # 1500 x 1.2
    assert any("discarded" in r for r in with_discards.reasons(0))
    assert with_discards.discard_share[0] == pytest.approx(1 / 3)


def test_saturation_without_discard_signal_is_reported() -> None:
    obs = observe({"max_global_series_per_user": [flat(150000.0)]},
                  current={"max_global_series_per_user": [150000.0]})  # fmt: skip
    result = run(obs, limits=["max_global_series_per_user"]).results["max_global_series_per_user"]
    assert any("sat at the current limit" in r for r in result.reasons(0))


def test_short_history_is_undefined_with_reason() -> None:
    series = flat(1000.0)
    series[: T - 60] = np.nan  # 5 hours of data
    result = run(observe({"ingestion_rate": [series, flat(1000.0)]})).results["ingestion_rate"]
    assert np.isnan(result.recommended[0])
    assert result.status_of(0) is Status.UNDEFINED
    assert "5.0h of history" in result.reasons(0)[0]
    assert "minHistory" in result.reasons(0)[0]
    assert result.status_of(1) is not Status.UNDEFINED


def test_min_history_is_configurable() -> None:
    series = flat(1000.0)
    series[: T - 60] = np.nan
    cfg = config(trendAnalysis={"minHistory": "4h"})
    result = run(observe({"ingestion_rate": [series]}), cfg).results["ingestion_rate"]
    assert result.status_of(0) is not Status.UNDEFINED


def test_no_data_is_undefined_never_zero() -> None:
    result = run(observe({"ingestion_rate": [np.full(T, np.nan)]})).results["ingestion_rate"]
    assert np.isnan(result.recommended[0])
    assert "no data" in result.reasons(0)[0]


def test_unavailable_signal_makes_every_tenant_undefined_with_the_source_reason() -> None:
    reason = "HTTP 503 from http://prom (query: x)"
    obs = observe(
        {"ingestion_rate": [flat(1.0), flat(2.0)]}, unavailable={"ingestion_rate": reason}
    )
    result = run(obs).results["ingestion_rate"]
    assert [result.status_of(i) for i in range(2)] == [Status.UNDEFINED] * 2
    assert result.reasons(1) == [reason]


def test_transient_spike_never_raises_the_limit_and_is_reported() -> None:
    calm = daily(1000.0)
    spiky = calm.copy()
    spiky[1000:1006] *= 10  # 30 minutes at 10x
    spiky[1500:1503] *= 6
    obs = observe({"ingestion_rate": [calm, spiky]}, current={"ingestion_rate": [1500.0, 1500.0]})
    result = run(obs).results["ingestion_rate"]
    assert result.recommended[1] == result.recommended[0]
    assert result.spike_count[1] == 2
    assert result.spike_ratio[1] == pytest.approx(10.0, rel=0.1)
    assert any("spike" in r for r in result.reasons(1))


def test_sustained_level_change_is_not_a_spike() -> None:
    stepped = flat(1000.0)
    stepped[T - 288 :] = 3000.0  # the last day at 3x: a new level, not a spike
    obs = observe({"ingestion_rate": [stepped]}, current={"ingestion_rate": [3600.0]})
    result = run(obs).results["ingestion_rate"]
    assert result.spike_count[0] == 0
    assert result.recommended[0] == 3600.0  # p95 = 3000 x 1.2


def test_deadband_keeps_current() -> None:
    obs = observe({"ingestion_rate": [flat(1000.0)]}, current={"ingestion_rate": [1230.0]})
    result = run(obs).results["ingestion_rate"]
    assert result.recommended[0] == 1230.0
    assert result.status_of(0) is Status.UNCHANGED
    assert any("deadband" in r for r in result.reasons(0))


def test_lowering_is_slow_and_raising_is_fast() -> None:
    obs = observe(
        {"ingestion_rate": [flat(100.0), flat(100000.0)]},
        current={"ingestion_rate": [10000.0, 10000.0]},
    )
    result = run(obs).results["ingestion_rate"]
    # A safe lowering (the target covers every hourly level of the last days) steps by
    # trendAnalysis.adaptive.safeLoweringPercent (75%), others by maxDecreasePercent (10%).
    assert result.recommended[0] == 2500.0
    assert any("safe lowering" in r for r in result.reasons(0))
    assert result.recommended[1] == 20000.0  # +100% per cycle
    off = config(trendAnalysis={"adaptive": {"safeLoweringPercent": 0}})
    assert run(obs, off).results["ingestion_rate"].recommended[0] == 9000.0  # -10% per cycle


def test_tier_buffer_cap_and_mapping() -> None:
    cfg = config(
        limits={
            "tenantTiers": {
                "enterprise": {"bufferPercentage": 50, "limits": {"ingestion_rate": 100000}},
                "basic": {"bufferPercentage": 10, "limits": {"ingestion_rate": 1050}},
            }
        },
        tenantTierMapping={"ent-*": "enterprise", "*": "basic"},
    )
    obs = observe(
        {"ingestion_rate": [flat(1000.0), flat(1000.0)]},
        current={"ingestion_rate": [1400.0, 1000.0]},
        tenants=["ent-a", "other"],
    )
    result = run(obs, cfg).results["ingestion_rate"]
    assert result.recommended[0] == 1500.0  # 50% tier buffer
    # 1000 x 1.1 = 1100, capped at the tier's 1050, within the deadband of 1000: unchanged.
    assert result.recommended[1] == 1000.0
    assert any("tier" in r for r in result.reasons(1))
    assert result.status_of(1) is Status.UNCHANGED


def test_min_max_precedence_limit_overrides_beat_limits_section() -> None:
    cfg = config(
        limits={"minLimits": {"ingestion_rate": 5000}},
        dynamicLimits={"limitOverrides": {"ingestion_rate": {"minValue": 2000}}},
    )
    obs = observe({"ingestion_rate": [flat(10.0)]}, current={"ingestion_rate": [2000.0]})
    result = run(obs, cfg).results["ingestion_rate"]
    assert result.recommended[0] == 2000.0


def test_clamp_to_maximum() -> None:
    cfg = config(limits={"maxLimits": {"ingestion_rate": 1500}})
    obs = observe({"ingestion_rate": [flat(5000.0)]}, current={"ingestion_rate": [1000.0]})
    result = run(obs, cfg).results["ingestion_rate"]
    assert result.recommended[0] == 1500.0
    assert any("maximum" in r for r in result.reasons(0))


def test_derived_burst_follows_the_recommended_rate() -> None:
    obs = observe(
        {"ingestion_rate": [flat(1000.0)]},
        current={"ingestion_rate": [1100.0], "ingestion_burst_size": [24000.0]},
    )
    recs = run(obs, limits=["ingestion_rate", "ingestion_burst_size"])
    rate = recs.results["ingestion_rate"].recommended[0]
    burst = recs.results["ingestion_burst_size"]
    assert rate == 1200.0
    assert burst.recommended[0] == rate * 20
    assert any("derived" in r for r in burst.reasons(0))


def test_derived_is_undefined_when_parent_is() -> None:
    obs = observe({"ingestion_rate": [np.full(T, np.nan)]})
    recs = run(obs, limits=["ingestion_rate", "ingestion_burst_size"])
    assert recs.results["ingestion_burst_size"].status_of(0) is Status.UNDEFINED


def test_discard_driven_limit_raises_only_on_recent_discards() -> None:
    recent = np.zeros(T)
    recent[-3:] = 2.0
    old = np.zeros(T)
    old[:100] = 2.0  # a week ago: not a reason to raise again
    obs = observe(
        {},
        discards={"max_label_names_per_series": [recent, old, np.zeros(T)]},
        current={"max_label_names_per_series": [30.0, 30.0, 30.0]},
    )
    result = run(obs, limits=["max_label_names_per_series"]).results["max_label_names_per_series"]
    assert result.recommended.tolist() == [38.0, 30.0, 30.0]
    assert [result.status_of(i) for i in range(3)] == [
        Status.CHANGE,
        Status.UNCHANGED,
        Status.UNCHANGED,
    ]


def test_policy_only_limit_is_undefined_unless_configured() -> None:
    name = "compactor_blocks_retention_period"
    obs = observe({"ingestion_rate": [flat(1.0), flat(1.0)]}, tenants=["gold-a", "x"])
    result = run(obs, limits=[name]).results[name]
    assert result.status_of(0) is Status.UNDEFINED
    assert "tenantTiers" in result.reasons(0)[0]
    # The cluster's default (limitOverrides.defaultValue) is not a value to write.
    with_default = config(dynamicLimits={"limitOverrides": {name: {"defaultValue": 30 * 86400}}})
    result = run(obs, with_default, limits=[name]).results[name]
    assert result.status_of(0) is Status.UNDEFINED
    assert result.current[0] == 30 * 86400
    cfg = config(
        limits={"tenantTiers": {"gold": {"limits": {name: 90 * 86400}}}},
        tenantTierMapping={"gold-*": "gold"},
    )
    result = run(obs, cfg, limits=[name]).results[name]
    assert result.recommended[0] == 90 * 86400
    assert result.status_of(1) is Status.UNDEFINED


def test_tenant_scoping_skip_and_include() -> None:
    obs = observe({"ingestion_rate": [flat(1.0)] * 3}, tenants=["a-1", "internal-x", "b-1"])
    cfg = config(tenantScoping={"skipList": ["internal-*"], "includeList": ["a-*", "internal-*"]})
    recs = run(obs, cfg)
    assert recs.tenants == ("a-1",)


def test_analysis_window_ignores_older_data() -> None:
    series = flat(1000.0)
    series[: T - 2 * 288] = 50000.0  # old heavy traffic, outside a 2-day window
    cfg = config(trendAnalysis={"analysisWindow": "2d"})
    obs = observe({"ingestion_rate": [series]}, current={"ingestion_rate": [1100.0]})
    assert run(obs, cfg).results["ingestion_rate"].recommended[0] == 1200.0


def test_time_of_day_factors_raise_the_business_hours_need() -> None:
    hours = (TS % 86400) // 3600
    series = np.where((hours >= 9) & (hours <= 17), 1000.0, 400.0)
    obs = observe({"ingestion_rate": [series]}, current={"ingestion_rate": [1500.0]})
    plain = run(obs).results["ingestion_rate"]
    cfg = config(trendAnalysis={"timeOfDayBuffers": {"9-17": 1.5, "0-8": 0.8}})
    factored = run(obs, cfg).results["ingestion_rate"]
    assert plain.demand[0] == pytest.approx(1000.0)
    assert factored.demand[0] == pytest.approx(1500.0)
    assert factored.recommended[0] > plain.recommended[0]


def test_histogram_strategy_weighs_recent_usage_more() -> None:
    series = flat(1000.0)
    series[T - 2 * 288 :] = 2000.0  # doubled for the last two days
    obs = observe({"ingestion_rate": [series]}, current={"ingestion_rate": [2000.0]})
    pct = run(obs, config(trendAnalysis={"percentile": 70})).results["ingestion_rate"]
    hist = run(
        obs,
        config(trendAnalysis={"strategy": "histogram", "histogram": {"targetPercentile": 70}}),
    ).results["ingestion_rate"]
    assert pct.demand[0] == pytest.approx(1000.0)
    assert hist.demand[0] == pytest.approx(2000.0, rel=0.06)  # one 5% bucket
    assert 0 < hist.confidence[0] <= 1


@pytest.mark.parametrize("zero_means_unlimited", [True, False])
def test_zero_current_value_is_kept_by_default(zero_means_unlimited: bool) -> None:
    """0 as "feature off" is never turned on; 0 as "unlimited" is only tightened on request."""
    name = "max_global_series_per_user"
    spec = dataclasses.replace(CATALOGUE.limits[name], zero_means_unlimited=zero_means_unlimited)
    catalogue = dataclasses.replace(CATALOGUE, limits={**CATALOGUE.limits, name: spec})
    obs = observe({name: [flat(1000000.0)]}, current={name: [0.0]})
    result = recommend(obs, config(), catalogue, now=NOW, limits=[name]).results[name]
    assert result.recommended[0] == 0.0
    assert result.status_of(0) is Status.UNCHANGED
    if zero_means_unlimited:
        assert any("would be 1.2M" in r and "tightenUnlimited" in r for r in result.reasons(0))
    else:
        assert any("does not enable features" in r for r in result.reasons(0))


def test_unlimited_is_tightened_when_asked() -> None:
    name = "max_global_series_per_user"
    spec = dataclasses.replace(CATALOGUE.limits[name], zero_means_unlimited=True)
    catalogue = dataclasses.replace(CATALOGUE, limits={**CATALOGUE.limits, name: spec})
    obs = observe({name: [flat(1000000.0)]}, current={name: [0.0]})
    cfg = config(changePolicy={"tightenUnlimited": True})
    result = recommend(obs, cfg, catalogue, now=NOW, limits=[name]).results[name]
    assert result.recommended[0] == 1200000.0
    assert any("unlimited" in r for r in result.reasons(0))


def test_a_tenant_throttled_now_is_never_lowered() -> None:
    """Over the week the tenant used little, but in the last hour it hit the limit: lowering
    it now would cut it off harder."""
    usage = flat(1000.0)
    usage[-12:] = 10000.0  # the last hour at the limit
    discards = np.zeros(T)
    discards[-12:] = 5000.0
    obs = observe(
        {"ingestion_rate": [usage]},
        discards={"ingestion_rate": [discards]},
        current={"ingestion_rate": [10000.0]},
    )
    result = run(obs).results["ingestion_rate"]
    assert result.recommended[0] == 10000.0
    assert any("never lowered" in r for r in result.reasons(0))


def test_a_throttled_tenants_burst_is_not_lowered_either() -> None:
    usage = flat(1000.0)
    usage[-12:] = 10000.0
    discards = np.zeros(T)
    discards[-12:] = 5000.0
    obs = observe(
        {"ingestion_rate": [usage]},
        discards={"ingestion_rate": [discards]},
        current={"ingestion_rate": [10000.0], "ingestion_burst_size": [400000.0]},
    )
    burst = run(obs, limits=["ingestion_rate", "ingestion_burst_size"]).results[
        "ingestion_burst_size"
    ]
    assert burst.recommended[0] == 400000.0  # 20 x 10000 would lower it: kept
    assert any("never lowered" in r for r in burst.reasons(0))


def test_time_of_day_factors_never_go_below_the_strategy() -> None:
    obs = observe({"ingestion_rate": [flat(1000.0)]}, current={"ingestion_rate": [1200.0]})
    cfg = config(trendAnalysis={"timeOfDayBuffers": {"0-23": 0.5}})
    assert run(obs, cfg).results["ingestion_rate"].demand[0] == pytest.approx(1000.0)


def test_discard_driven_limit_with_unknown_current_is_undefined() -> None:
    recent = np.zeros(T)
    recent[-3:] = 2.0
    name = "max_label_names_per_series"
    obs = observe({}, discards={name: [recent]})  # no current value from anywhere
    result = run(obs, limits=[name]).results[name]
    assert result.status_of(0) is Status.UNDEFINED
    assert "defaultValue" in result.reasons(0)[0]
    cfg = config(dynamicLimits={"limitOverrides": {name: {"defaultValue": 40}}})
    assert run(obs, cfg, limits=[name]).results[name].recommended[0] == 50.0


def test_fractional_rates_are_rounded_without_float_noise() -> None:
    name = "ingestion_rate"
    cfg = config(limits={"minLimits": {name: 0}})
    obs = observe({name: [flat(2.8)]}, current={name: [3.0]})
    value = run(obs, cfg).results[name].recommended[0]
    assert value == 3.4 and repr(float(value)) == "3.4"
