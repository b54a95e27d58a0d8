"""Mimir's rules the engine must read right (issue 10 §3): retried 429s inflate the discards,
so demand is bounded and the reasons say so; the per-query averages of the max_fetched_*
limits are estimates, and say so; the series limit falls back to the active-series gauge
where the created/removed counters are missing, with a reason instead of "no data"."""

from __future__ import annotations

import httpx
import numpy as np

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.loader import load_config
from mimir_limit_optimizer.engine.recommend import recommend
from mimir_limit_optimizer.engine.results import Reason
from mimir_limit_optimizer.engine.usage import Observation
from mimir_limit_optimizer.sources.usage_fallback import apply_fallbacks
from tests.test_prometheus_source import (
    RANGE,
    T0,
    USAGE_A,
    USAGE_B,
    Call,
    FakePrometheus,
    make_source,
    matrix,
    spec,
)

CATALOGUE = load_catalogue()
CONFIG = load_config(None, env={}, cli={}, catalogue=CATALOGUE).config
STEP = 300.0
POINTS = 7 * 288


def _obs(
    limit: str, usage: float, *, discards: float | None = None, **extra: object
) -> Observation:
    ts = T0 + np.arange(POINTS) * STEP
    return Observation(
        tenants=("t",),
        timestamps=ts,
        step=STEP,
        usage={limit: np.full((1, POINTS), usage)},
        discards={} if discards is None else {limit: np.full((1, POINTS), discards)},
        current={limit: np.array([10000.0])},
        **extra,  # type: ignore[arg-type]
    )


def test_retried_429s_bound_demand_and_the_reasons_say_so() -> None:
    # Limit 10K, accepted 10K, 40K/s discarded: with clients retrying, much of that is the
    # same batches counted again. Demand is taken as at most 2x what got in.
    obs = _obs("ingestion_rate", 10000.0, discards=40000.0)
    now = float(obs.timestamps[-1])
    result = recommend(obs, CONFIG, CATALOGUE, now=now, limits=["ingestion_rate"]).results[
        "ingestion_rate"
    ]
    assert Reason.RETRIES_BOUNDED in Reason(int(result.flags[0]))
    assert float(result.demand[0]) <= 20000.0 * 1.01
    assert float(result.recommended[0]) > 10000.0  # still raised
    text = " ".join(result.reasons(0))
    assert "retr" in text and "bounded" in text

    # Below the bound nothing changes, and no bound is claimed.
    calm = _obs("ingestion_rate", 10000.0, discards=2000.0)
    calm_result = recommend(calm, CONFIG, CATALOGUE, now=now, limits=["ingestion_rate"]).results[
        "ingestion_rate"
    ]
    assert Reason.RETRIES_BOUNDED not in Reason(int(calm_result.flags[0]))
    assert abs(float(calm_result.demand[0]) - 12000.0) < 1.0


def test_series_discards_are_not_bounded_as_retries() -> None:
    # per_user_series_limit is a 400: clients do not retry it.
    obs = _obs("max_global_series_per_user", 100000.0, discards=500000.0)
    result = recommend(
        obs, CONFIG, CATALOGUE, now=float(obs.timestamps[-1]), limits=["max_global_series_per_user"]
    ).results["max_global_series_per_user"]
    assert Reason.RETRIES_BOUNDED not in Reason(int(result.flags[0]))


def test_per_query_averages_are_called_estimates() -> None:
    obs = _obs("max_fetched_chunks_per_query", 3_000_000.0)
    name = "max_fetched_chunks_per_query"
    result = recommend(obs, CONFIG, CATALOGUE, now=float(obs.timestamps[-1]), limits=[name])
    reasons = " ".join(result.results[name].reasons(0))
    assert "estimate" in reasons and "shard" in reasons
    spec_ = CATALOGUE.limits[name]
    assert spec_.usage_query is not None
    assert 'op=~"query|query_range|remote_read"' in spec_.usage_query


def test_fallback_rows_fill_only_tenants_without_data() -> None:
    nan = np.nan
    usage = {"s": np.array([[1.0, 2.0], [nan, nan], [nan, nan]])}
    fallbacks = {"s": np.array([[9.0, 9.0], [5.0, 6.0], [nan, nan]])}
    filled = apply_fallbacks(usage, fallbacks)
    assert filled["s"].tolist() == [False, True, False]
    np.testing.assert_array_equal(usage["s"], [[1.0, 2.0], [5.0, 6.0], [nan, nan]])


def test_the_prometheus_source_fills_gaps_from_the_fallback_query() -> None:
    def answer(call: Call) -> httpx.Response:
        start, end, step = (float(call.form[k]) for k in ("start", "end", "step"))
        grid = np.arange(start, end + step / 2, step)
        tenants = ["tenant-1"] if "a_total" in call.query else ["tenant-1", "tenant-2"]
        value = "7" if "a_total" in call.query else "3"
        return httpx.Response(
            200, json=matrix([({"user": u}, [(t, value) for t in grid]) for u in tenants])
        )

    fake = FakePrometheus(tenants=["tenant-1", "tenant-2"], range_answer=answer)
    limit = spec("s", USAGE_A, usage_fallback_query=USAGE_B, usage_fallback_reason="why")
    obs = make_source(fake).collect([limit], start=T0, end=T0 + 600)
    assert obs.tenants == ("tenant-1", "tenant-2")
    assert obs.usage_fallback["s"].tolist() == [False, True]
    assert np.nanmax(obs.usage["s"][0]) == 7.0 and np.nanmax(obs.usage["s"][1]) == 3.0
    assert any("b{" in c.query for c in fake.calls if c.path.endswith(RANGE))


def test_a_series_limit_from_active_series_says_so_instead_of_no_data() -> None:
    name = "max_global_series_per_user"
    obs = _obs(name, 50000.0, usage_fallback={name: np.array([True])})
    result = recommend(obs, CONFIG, CATALOGUE, now=float(obs.timestamps[-1]), limits=[name])
    reasons = " ".join(result.results[name].reasons(0))
    assert "cortex_ingester_active_series" in reasons
    assert "no data" not in reasons
    assert np.isfinite(result.results[name].recommended[0])
