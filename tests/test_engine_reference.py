"""The fast statistics passes give the engine's results unchanged: every recommended value,
target, status, flag, percentile, spike count, discard share and shape field of a few hundred
tenants with gaps, spikes, zeros, quiet and growing phases and discards equals what the
straightforward whole-array versions (tests/engine_reference.py) give, at several steps and
chunk sizes. Also: the spike filter and the tenant shape never warn and never touch the
process-wide warnings filters (the service runs its fast loop on its own thread)."""

from __future__ import annotations

import dataclasses
import gc
import warnings
from typing import Any

import numpy as np
import pytest

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine import (
    adaptive,
    hourly,
    recommend,
    recommend_pass,
    spikes,
    stats,
    strategies,
    throttling,
)
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.engine.usage import LazyArrays, Observation
from tests import engine_reference as ref

NOW = 1_800_000_000.0
CATALOGUE = load_catalogue()
LIMITS = [
    "ingestion_rate",  # discards, retried 429s bounded
    "request_rate",
    "max_global_series_per_user",  # discards, a count
    "max_global_exemplars_per_user",  # never lowered
    "alertmanager_max_alerts_count",
    "ingestion_burst_size",  # derived from ingestion_rate
]
USAGE = [name for name in LIMITS if name != "ingestion_burst_size"]
DISCARDS = ["ingestion_rate", "request_rate", "max_global_series_per_user"]


def _tenants(n: int, step: float, days: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, T) usage and discards: daily cycles at levels over 6 decades, noise from 1% to
    80%, and in groups of rows: scattered gaps, empty hours, late starts, no data at all,
    zeros, short spikes and daily bursts, a quiet last 3 days, 5% growth a day, a return to
    an old level; discards now, earlier today, days ago, and above the accepted rate."""
    rng = np.random.default_rng(seed)
    t = int(days * 86400 / step)
    ts = NOW - step * np.arange(t)[::-1]
    level = 10 ** rng.uniform(-1, 5, size=(n, 1))
    cycle = 1 + rng.uniform(0, 0.6, size=(n, 1)) * np.sin(ts / 86400 * 2 * np.pi)
    noise = 1 + rng.uniform(0.01, 0.8, size=(n, 1)) * rng.standard_normal((n, t))
    usage = np.abs(level * cycle * noise)
    per_hour = max(1, round(3600 / step))
    group = np.arange(n) % 16
    usage[group == 1] = (
        np.where(rng.random((np.sum(group == 1), t)) < 0.03, np.nan, 1.0) * (usage[group == 1])
    )
    for row in np.flatnonzero(group == 2):  # whole hours missing, the last point missing
        for hour in rng.integers(0, t // per_hour, size=5):
            usage[row, hour * per_hour : (hour + 1) * per_hour] = np.nan
        usage[row, -1] = np.nan
    usage[group == 3, : t // 2] = np.nan  # a late start
    usage[group == 4, : t - 2 * per_hour] = np.nan  # two hours of history
    usage[np.flatnonzero(group == 5)[::2]] = np.nan  # no data at all
    usage[group == 6] = 0.0
    usage[group == 7] *= rng.random((np.sum(group == 7), t)) < 0.3  # mostly zero
    for row in np.flatnonzero(group == 8):  # short spikes
        for start in rng.integers(0, t - 6, size=4):
            usage[row, start : start + rng.integers(1, 6)] *= rng.uniform(3, 20)
    for row in np.flatnonzero(group == 9):  # a burst at the same time every day
        for day in range(int(days)):
            at = int((day * 86400 + 13 * 3600) / step)
            usage[row, at : at + 3] *= 6
    usage[group == 10, -int(3 * 86400 / step) :] *= 0.05  # quiet for 3 days
    usage[group == 11] *= (1.05 ** ((ts - ts[0]) / 86400))[None, :]  # growing
    quiet_then_back = (group == 12) & (rng.random(n) < 0.9)
    usage[quiet_then_back, t // 3 : t - 3 * per_hour] *= 0.1
    usage[group == 13, -t // 4 :] *= 3  # a new level
    discards = np.zeros((n, t))
    throttled = np.isin(group, [0, 3, 8, 11, 13, 14])
    now_rows = throttled & (rng.random(n) < 0.6)
    discards[now_rows, -per_hour:] = usage[now_rows, -per_hour:] * rng.uniform(0.1, 3)
    earlier = throttled & ~now_rows
    discards[earlier, -8 * per_hour : -4 * per_hour] = usage[earlier, -8 * per_hour : -4 * per_hour]
    old = group == 15
    discards[old, t // 4 : t // 4 + per_hour] = usage[old, t // 4 : t // 4 + per_hour] * 0.5
    discards[rng.random((n, t)) < 0.01] = np.nan  # missing discard points
    return usage, discards


def _observation(n: int, step: float, days: float, float32: bool) -> Observation:
    t = int(days * 86400 / step)
    dtype = np.float32 if float32 else np.float64
    usage: dict[str, Any] = {}
    discards: dict[str, Any] = {}
    current: dict[str, Any] = {}
    for k, name in enumerate(USAGE):
        u, d = _tenants(n, step, days, seed=k)
        usage[name] = u.astype(dtype)
        if name in DISCARDS:
            discards[name] = d.astype(dtype)
        rng = np.random.default_rng(100 + k)
        cur = np.nanmax(np.where(np.isfinite(u), u, 0), axis=1) * rng.uniform(0.3, 3, size=n)
        cur[rng.random(n) < 0.05] = np.nan  # unknown: the default stands in
        cur[rng.random(n) < 0.03] = 0.0
        current[name] = cur
    current["ingestion_burst_size"] = current["ingestion_rate"] * 10
    return Observation(
        tenants=tuple(f"tenant-{i}" for i in range(n)),
        timestamps=NOW - step * np.arange(t)[::-1],
        step=step,
        usage=usage,
        discards=discards,
        current=current,
    )


def _use_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adaptive, "tenant_shape", ref.tenant_shape)
    monkeypatch.setattr(spikes, "_hourly", ref.hourly)
    monkeypatch.setattr(spikes, "_rows_above", ref.rows_above)
    monkeypatch.setattr(
        spikes,
        "_suspects_above",
        lambda values, bound, block, rows, row_max, **_: ref.rows_above(values, bound, block, rows),
    )
    monkeypatch.setattr(spikes.Cleaned, "rows_columns", ref.rows_columns)
    monkeypatch.setattr(throttling, "demand", ref.demand)
    monkeypatch.setattr(spikes, "_SCAN_POINTS", 1 << 62)  # the whole array at once
    monkeypatch.setattr(stats.SortedRows, "percentiles", ref.percentiles)
    monkeypatch.setattr(stats.SortedRows, "__init__", ref.sorted_rows_init)
    monkeypatch.setattr(hourly, "sorted_with_hours", ref.sorted_with_hours)
    monkeypatch.setattr(recommend_pass.Pass, "buffer", ref.new_buffer)


def _same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype, where
        if a.dtype.kind in "fc":
            np.testing.assert_array_equal(a, b, err_msg=where)  # NaN == NaN here
        else:
            assert np.array_equal(a, b), where
    else:
        assert a == b, where


def _compare(fast: Recommendations, slow: Recommendations) -> None:
    assert fast.tenants == slow.tenants and list(fast.results) == list(slow.results)
    fields = [
        "recommended", "target", "status", "current", "demand", "p50", "p95", "p99", "maximum",
        "confidence", "flags", "undefined_reason", "buffer_percent", "spike_count",
        "spike_ratio", "discard_share", "parent_value",
    ]  # fmt: skip
    for name, result in fast.results.items():
        other = slow.results[name]
        for field in fields:
            _same(getattr(result, field), getattr(other, field), f"{name}.{field}")
        assert sorted(result.extra) == sorted(other.extra), name
        for key, value in result.extra.items():
            _same(value, other.extra[key], f"{name}.extra[{key}]")


@pytest.mark.parametrize(
    "case",
    [
        (320, 300.0, 7, True, hourly.CHUNK_POINTS, False),  # several chunks of 130 rows
        (320, 300.0, 7, False, 7 * 2016, True),  # float64 input, 7-row chunks, scoped
        (96, 60.0, 2, True, hourly.CHUNK_POINTS, False),  # 60 points an hour
        (96, 420.0, 5, True, 3 * 1028, False),  # a step that does not divide an hour
    ],
)
def test_fast_passes_give_the_reference_results(
    monkeypatch: pytest.MonkeyPatch, case: tuple[int, float, float, bool, int, bool]
) -> None:
    """case: tenants, step (s), days, float32 input, points per chunk, tenant scoping."""
    n, step, days, float32, chunk, skip = case
    obs = _observation(n, step, days, float32)
    cfg = Config.model_validate({"tenantScoping": {"skipList": ["tenant-1?"]}} if skip else {})
    monkeypatch.setattr(hourly, "CHUNK_POINTS", chunk)
    monkeypatch.setattr(spikes, "_BATCH_POINTS", chunk)
    monkeypatch.setattr(spikes, "_SCAN_POINTS", chunk)
    monkeypatch.setattr(strategies, "_SHAPE_POINTS", chunk)
    monkeypatch.setattr(stats, "_SORT_POINTS", chunk)
    fast = recommend.recommend(obs, cfg, CATALOGUE, now=NOW, limits=LIMITS)
    with monkeypatch.context() as patched:
        _use_reference(patched)
        slow = recommend.recommend(obs, cfg, CATALOGUE, now=NOW, limits=LIMITS)
    _compare(fast, slow)
    # The data reach what they are meant to: spikes, discards, undefined rows, a shape.
    rate = fast.results["ingestion_rate"]
    assert (rate.spike_count > 0).sum() >= 5
    assert (rate.discard_share > 0).sum() >= 20
    assert np.isnan(rate.recommended).sum() >= 5
    assert np.isfinite(rate.extra["variability"]).sum() >= n // 2
    assert (rate.extra["quiet_for"] > 0).any()


@pytest.mark.parametrize("step", [300.0, 420.0])  # 420 s: a trailing partial block
def test_the_spike_scan_by_suspect_blocks_gives_the_reference_results(
    monkeypatch: pytest.MonkeyPatch, step: float
) -> None:
    """The spike scan that reads only the blocks whose bound is under the row's maximum
    (forced here for every row; noisy tenants take the whole-row scan) finds the same rows."""
    obs = _observation(96, step, 5, True)
    monkeypatch.setattr(spikes, "_SPARSE_SHARE", 1.0)
    calls: list[int] = []
    suspects = spikes._suspects_above

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(args[3]))
        return suspects(*args, **kwargs)

    monkeypatch.setattr(spikes, "_suspects_above", counted)
    fast = recommend.recommend(obs, Config(), CATALOGUE, now=NOW, limits=LIMITS)
    assert calls and sum(calls) > 0
    with monkeypatch.context() as patched:
        _use_reference(patched)
        slow = recommend.recommend(obs, Config(), CATALOGUE, now=NOW, limits=LIMITS)
    _compare(fast, slow)
    assert (fast.results["ingestion_rate"].spike_count > 0).sum() >= 3


@pytest.mark.parametrize("skip", [False, True])
def test_demand_in_place_of_streamed_discards_gives_the_reference_results(
    monkeypatch: pytest.MonkeyPatch, skip: bool
) -> None:
    """Discards that the engine holds alone (a `LazyArrays` load, or the copy that tenant
    scoping makes) take the demand in their place, and the results stay the reference's;
    arrays that someone else holds are never written."""
    obs = _observation(160, 300.0, 7, True)
    kept = {name: array.copy() for name, array in obs.discards.items()}
    shape = (len(obs.tenants), len(obs.timestamps))
    streamed = dataclasses.replace(
        obs,
        usage=LazyArrays(list(obs.usage), lambda name: obs.usage[name].copy(), shape=shape),
        discards=LazyArrays(
            list(obs.discards), lambda name: obs.discards[name].copy(), shape=shape
        ),
    )
    cfg = Config.model_validate({"tenantScoping": {"skipList": ["tenant-1?"]}} if skip else {})
    handed: list[str] = []
    buffer = recommend_pass.Pass.buffer

    def recorded(self: Any, name: str, shape: tuple[int, int]) -> np.ndarray:
        handed.append(name)
        return buffer(self, name, shape)

    monkeypatch.setattr(recommend_pass.Pass, "buffer", recorded)
    fast = recommend.recommend(streamed, cfg, CATALOGUE, now=NOW, limits=LIMITS)
    assert "demand" not in handed  # every limit's demand went in place of its discards
    handed.clear()
    held = recommend.recommend(obs, cfg, CATALOGUE, now=NOW, limits=LIMITS)
    assert handed.count("demand") == (0 if skip else len(DISCARDS))  # scoping: its own copy
    for name, array in obs.discards.items():  # the caller's arrays are untouched
        np.testing.assert_array_equal(array, kept[name])
    with monkeypatch.context() as patched:
        _use_reference(patched)
        slow = recommend.recommend(obs, cfg, CATALOGUE, now=NOW, limits=LIMITS)
    _compare(fast, slow)
    _compare(held, slow)


def test_the_comparison_sees_a_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above can fail: a shape whose variability is off by one float32 step
    in one tenant is caught."""
    obs = _observation(64, 300.0, 7, True)
    fast = recommend.recommend(obs, Config(), CATALOGUE, now=NOW, limits=LIMITS)

    def nudged(*args: Any, **kwargs: Any) -> strategies.TenantShape:
        shape = strategies.tenant_shape(*args, **kwargs)
        shape.variability[3] = np.nextafter(shape.variability[3], np.inf)
        return shape

    monkeypatch.setattr(adaptive, "tenant_shape", nudged)
    slow = recommend.recommend(obs, Config(), CATALOGUE, now=NOW, limits=LIMITS)
    with pytest.raises(AssertionError):
        _compare(fast, slow)


@pytest.mark.parametrize("step", [15.0, 60.0, 300.0, 420.0, 1800.0, 3600.0])
def test_tenant_shape_equals_the_reference_at_every_step(
    monkeypatch: pytest.MonkeyPatch, step: float
) -> None:
    days = 2 if step < 60 else 7
    usage, _ = _tenants(64, step, days, seed=7)
    monkeypatch.setattr(strategies, "_SHAPE_POINTS", 5 * usage.shape[1])  # 5-row chunks
    usage = usage.astype(np.float32)
    cleaned = usage.copy()
    cleaned[::5] *= np.float32(0.9)
    ts = NOW - step * np.arange(usage.shape[1])[::-1]
    kw: dict[str, Any] = {
        "timestamps": ts,
        "step": step,
        "now": NOW,
        "quiet_share": 0.5,
        "recent": 86400.0,
    }
    for other in (usage, cleaned, spikes.Cleaned(usage, np.arange(0, 64, 5), cleaned[::5])):
        fast = strategies.tenant_shape(usage, other, **kw)
        slow = ref.tenant_shape(usage, other, **kw)
        for field in dataclasses.fields(strategies.TenantShape):
            name = field.name
            _same(getattr(fast, name), getattr(slow, name), f"{step}: {name}")


def test_spikes_and_shape_neither_warn_nor_touch_the_warnings_filters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Empty hours, an empty trailing block, rows with no data and hours whose mean is 0:
    no RuntimeWarning (warnings are errors here), and no change to the warnings filters,
    which are process-wide and not thread-safe."""
    step = 300.0
    t = 2016 + 5  # a trailing partial hour
    values = np.full((4, t), 5.0, dtype=np.float32)
    values[0, 100:124] = np.nan  # two empty hours
    values[1, -5:] = np.nan  # an empty trailing block
    values[2] = np.nan  # no data
    values[3, 197:216] = 0.0  # hours whose mean is 0 (by the shape's hours and the filter's)
    values[3, 500:503] = 50.0  # a spike
    ts = NOW - step * np.arange(t)[::-1]

    def touched(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the engine changed the process-wide warnings filters")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(warnings, "catch_warnings", touched)
        monkeypatch.setattr(warnings, "simplefilter", touched)
        report = spikes.detect_spikes(
            values, step=step, threshold=2.0, baseline_window=6 * 3600.0, max_duration=3600.0
        )
        shape = strategies.tenant_shape(
            values, values, timestamps=ts, step=step, now=NOW, quiet_share=0.5, recent=86400.0
        )
        monkeypatch.undo()
    assert list(report.count) == [0, 0, 0, 1]
    assert np.isnan(shape.variability[2]) and np.isfinite(shape.variability[[0, 1, 3]]).all()
    means = spikes._hourly(values, 12)
    assert np.isnan(means[0, 9]) and np.isnan(means[1, -1]) and np.isnan(means[2]).all()
    assert means[0, 8] == 5.0 and means[3, 17] == 0.0


def test_a_pass_hands_out_a_buffer_again_only_when_nothing_holds_it() -> None:
    """The limits of a pass take turns in one sort buffer and one demand buffer; one that a
    result still holds (or a view of it) is never handed out again."""
    obs = _observation(8, 300.0, 7, True)
    state = recommend_pass.Pass(obs, Config(), NOW)
    first = state.buffer("demand", (8, 2016))
    first_id = id(first)
    del first
    again = state.buffer("demand", (8, 2016))
    assert id(again) == first_id
    kept = again[:, :10]  # a view keeps its base alive
    del again
    other = state.buffer("demand", (8, 2016))
    assert other.base is not kept.base and id(other) != first_id
    assert state.buffer("sort", (8, 2016)) is not other


def test_the_limits_of_a_pass_share_their_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of a limit outlives it: the next limit gets the same demand and hour-grid
    buffers (with the cyclic garbage collector off, a reference cycle would show as a new
    one); the sorts of demand and of the last day go by chunks and take no (N, T) buffer."""
    handed: dict[str, list[int]] = {"sort": [], "demand": [], "day": [], "hour_means": []}
    buffer = recommend_pass.Pass.buffer

    def recorded(self: Any, name: str, shape: tuple[int, int]) -> np.ndarray:
        out = buffer(self, name, shape)
        handed[name].append(id(out))
        return out

    monkeypatch.setattr(recommend_pass.Pass, "buffer", recorded)
    obs = _observation(64, 300.0, 7, True)
    gc.disable()
    try:
        recommend.recommend(obs, Config(), CATALOGUE, now=NOW, limits=LIMITS)
    finally:
        gc.enable()
    assert handed["sort"] == []
    assert len(handed["demand"]) == len(DISCARDS) and len(set(handed["demand"])) == 1
    assert handed["day"] == []
    # Every usage-driven limit's hour grid in the same buffer.
    assert len(handed["hour_means"]) == len(USAGE) and len(set(handed["hour_means"])) == 1


def test_a_sort_by_chunks_answers_percentiles_asked_for_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Percentiles named in advance are read chunk by chunk (rows with gaps included); one
    asked for later sorts the values whole and gives the same as a whole sort; after
    `release`, such a question is an error, never a wrong answer."""
    usage, _ = _tenants(300, 300.0, 7, seed=3)
    values = usage.astype(np.float32)
    monkeypatch.setattr(stats, "_SORT_POINTS", 70 * values.shape[1])  # chunks of 70 rows
    whole = stats.SortedRows(values)
    chunked = stats.SortedRows(values, only=[50, 100])
    assert chunked.sorted.size == 0  # no sorted copy kept
    np.testing.assert_array_equal(chunked.counts, whole.counts)
    for q in (50, 100, 95, 99.5):  # the last two were not named in advance
        np.testing.assert_array_equal(chunked.percentile(q), whole.percentile(q))
    released = stats.SortedRows(values, only=[50])
    released.release()
    np.testing.assert_array_equal(released.percentile(50), whole.percentile(50))
    with pytest.raises(ValueError, match="not asked for"):
        released.percentile(95)


def test_extra_references_counts_what_else_holds_an_array() -> None:
    """The in-place demand and the pass buffers rely on it: a fresh local is held by nothing
    else; a dict entry or a view's base is (whatever the interpreter's stack counting)."""
    fresh = np.empty(4, dtype=np.float32)
    assert recommend_pass.extra_references(fresh) == 0
    held = {"x": np.empty(4, dtype=np.float32)}
    entry = held["x"]
    assert recommend_pass.extra_references(entry) == 1
    view = fresh[1:]
    assert recommend_pass.extra_references(fresh) == 1
    del view
    assert recommend_pass.extra_references(fresh) == 0
