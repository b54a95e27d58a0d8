"""The value of a usage-driven limit for every tenant, before the shared post-processing
(engine/recommend.py `_finish`): demand (accepted + discarded) -> one shared sort for the
usage statistics and the strategy -> spike exclusion -> the tenant's shape (variability,
memory, growth) -> strategy -> tail -> last day's level -> time-of-day factors -> buffer ->
reaction to throttling -> memory and growth floors. docs/engine.md explains each step.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mimir_limit_optimizer.catalogue import LimitSpec
from mimir_limit_optimizer.engine import adaptive, hourly, peak_memory, throttling
from mimir_limit_optimizer.engine import postprocess as pp
from mimir_limit_optimizer.engine.hourly import Float32Array, HourStats
from mimir_limit_optimizer.engine.peak_memory import PeakMemory
from mimir_limit_optimizer.engine.policy import LimitPolicy
from mimir_limit_optimizer.engine.recommend_pass import Pass, undefined
from mimir_limit_optimizer.engine.results import LimitResult, Reason
from mimir_limit_optimizer.engine.spikes import Cleaned, as_slice, detect_spikes
from mimir_limit_optimizer.engine.stats import SortedRows, history_seconds
from mimir_limit_optimizer.engine.strategies import histogram_strategy, percentile_strategy
from mimir_limit_optimizer.engine.usage import FloatArray

# Usage within 2% of the limit counts as "at the limit"; more than 5% of the window there
# (p95 at the limit) earns the saturation hint.
_SATURATION_LEVEL = 0.98
# Share of the buffer kept as standing headroom when the limit has a discard signal. The
# engine then sees throttling in the discards and answers it within one cycle with the full
# buffer on top of what the tenant sends (and never lowers it for a day), so the headroom a
# tenant that is not throttled carries only has to cover the minutes until the next cycle,
# not days of unseen change. Without a discard signal the full buffer stands.
STANDING_BUFFER_SHARE = 0.5


def usage_value(
    state: Pass,
    spec: LimitSpec,
    policy: LimitPolicy,
    result: LimitResult,
    memory: PeakMemory | None = None,
) -> FloatArray:
    obs, config = state.obs, state.config
    trend = config.trend_analysis
    usage_full = obs.usage.get(spec.name)
    if usage_full is None:
        undefined(result, np.ones(state.n, bool), f"the source returned no data for {spec.name}")
        return np.full(state.n, np.nan)
    # float32 from here on: half the memory traffic; limits are rounded to 2 digits anyway.
    # No copy when the source already hands over float32 for every tenant.
    usage = np.asarray(state.take_window(usage_full), dtype=np.float32)
    del usage_full  # a streamed array is freed as soon as the engine lets go of it
    fallback = obs.usage_fallback.get(spec.name)
    if fallback is not None:
        rows = fallback if state.all_rows else fallback[state.rows]
        result.flags |= np.where(rows, int(Reason.USAGE_FALLBACK), 0)
    demand, throttled_rows = throttling.demand(state, spec, result, usage)
    # One sort of demand serves everything: usage statistics differ from it only in the rows
    # with discards, and the spike-cleaned demand only in the rows with spikes. When most
    # rows had discards, usage gets its own sort (released before demand's, so two sorted
    # copies never coexist).
    # The percentiles read from the sort are known now (statistics, the strategy's, the
    # tail's): they are read a row (compiled) or a chunk of rows (numpy) at a time, and no
    # sorted copy is kept.
    usage_qs = [50.0, 95.0, 99.0, 100.0]
    read = [*usage_qs, trend.percentile, trend.adaptive.tail_percentile]
    if len(throttled_rows) > state.n // 4:
        observed = SortedRows(usage, only=usage_qs)
        result.p50, result.p95, result.p99, result.maximum = observed.percentiles(usage_qs)
        observed.release()  # keep the counts, not the usage
        ordered, raw_stats = _sort_demand(state, demand, read)
    else:
        ordered, raw_stats = _sort_demand(state, demand, read)
        observed = ordered.patched(throttled_rows, usage[throttled_rows])
        result.p50, result.p95, result.p99, result.maximum = observed.percentiles(usage_qs)
    if spec.name not in obs.discards:
        # More than 5% of points at the limit <=> the 95th percentile reaches it.
        with np.errstate(invalid="ignore"):
            saturated = (result.p95 >= _SATURATION_LEVEL * result.current) & (result.current > 0)
        result.flags |= np.where(saturated, int(Reason.SATURATED), 0)

    history = history_seconds(usage, state.timestamps, observed.counts)
    no_data = observed.counts == 0
    short = ~no_data & (history < trend.min_history)
    undefined(
        result,
        no_data,
        "no data for this tenant in the analysis window"
        + (" (nor from its fallback measure)" if spec.usage_fallback_query else ""),
    )
    del usage

    spike_cfg = config.event_spike
    cleaned = Cleaned(demand, throttling.NO_ROWS, np.zeros((0, demand.shape[1]), dtype=np.float32))
    if spike_cfg.enabled:
        report = detect_spikes(
            demand,
            step=obs.step,
            threshold=spike_cfg.threshold,
            baseline_window=spike_cfg.baseline_window,
            max_duration=spike_cfg.max_duration,
            row_max=ordered.maximum(),
            hour_means=None if raw_stats is None else raw_stats.means,
        )
        result.spike_count = report.count
        result.spike_ratio = report.max_ratio
        # Spikes that recur every day are the tenant's demand, not incidents: kept.
        cleaned = adaptive.keep_recurring(demand, report, history, result, trend.adaptive)

    # Memory, growth and variability of the tenant (engine/adaptive.py): scales the buffer.
    shape, policy = adaptive.prepare(
        demand,
        cleaned,  # the patch: only the rows spikes were cleaned from are averaged again
        timestamps=state.timestamps,
        step=obs.step,
        now=state.now,
        policy=policy,
        result=result,
        settings=trend.adaptive,
        raw_stats=raw_stats,
    )
    del raw_stats  # its hour means may have been sorted in place (the day levels)
    if trend.strategy == "histogram":
        strat = histogram_strategy(
            cleaned.full(),
            timestamps=state.timestamps,
            now=state.now,
            history=history,
            settings=trend.histogram,
        )
        if strat.lower is not None and strat.upper is not None:
            result.extra["lower_bound"] = strat.lower
            result.extra["upper_bound"] = strat.upper
    else:
        # `cleaned` itself is read only for the moving-average and peak options; otherwise
        # the shared sort, patched with the spike rows, holds everything the strategy needs.
        full = trend.use_moving_average or trend.include_peaks
        presorted = ordered.patched(cleaned.rows, cleaned.values)
        strat = percentile_strategy(
            cleaned.full() if full else demand,
            step=obs.step,
            history=history,
            settings=trend,
            presorted=presorted,
        )
        # A long tail (noise, routine bursts) is covered by a higher percentile held steady,
        # not by raises after each burst (engine/adaptive.py, `tail`).
        strat = dataclasses.replace(
            strat, value=adaptive.tail(strat.value, presorted, shape, result, trend.adaptive)
        )
    value = strat.value
    result.confidence = strat.confidence
    recent_level = None
    last_day = state.timestamps > state.now - throttling.RECENT_LEVEL_SECONDS
    if trend.strategy == "percentile" and 0 < np.count_nonzero(last_day) < len(last_day):
        # A week's percentile lags a tenant that grew or moved to a new level; the last
        # day's percentile does not. Raise-only: a quiet day never lowers the week's value.
        # Sorted by chunks straight from demand's columns (no copy of them), the rows spikes
        # were cleaned from on their own (a patch), as the cleaned columns would sort.
        cols = as_slice(last_day)
        day = SortedRows(cleaned.base[:, cols], only=[result.percentile])
        day = day.patched(cleaned.rows, cleaned.values[:, cols])
        recent_level = day.percentile(result.percentile)

    if trend.time_of_day_buffers:
        # Factors refine the strategy's estimate hour by hour; they never take it below it.
        value = np.fmax(value, _time_of_day(state, cleaned, result.percentile))
        result.flags |= int(Reason.TIME_OF_DAY)
    result.demand = value.copy()

    standing = policy.buffer_percent
    if spec.name in obs.discards:
        standing = policy.buffer_percent * STANDING_BUFFER_SHARE
        result.extra["standing_percent"] = standing
        result.flags |= np.where(standing > 0, int(Reason.STANDING_BUFFER), 0)
    value = pp.add_buffer(value, standing)
    result.flags |= np.where(policy.buffer_percent > 0, int(Reason.BUFFER), 0)
    if recent_level is not None:
        value, raised = pp.recent_floor(value, recent_level, standing)
        result.extra["recent_level"] = recent_level
        result.flags |= np.where(raised, int(Reason.RECENT_LEVEL), 0)
    value, rescued = throttling.react_to_throttling(
        state, policy, result, value, cleaned=cleaned, raw=demand, short=short
    )
    value = adaptive.floors(
        value,
        shape=shape,
        result=result,
        standing_percent=standing,
        full_percent=policy.buffer_percent,
        settings=trend.adaptive,
        remembered=_remembered(state, spec, memory),
    )
    for i in np.flatnonzero(short & ~rescued):
        result.undefined_reason[i] = (
            f"only {history[i] / 3600:.1f}h of history; at least "
            f"{trend.min_history / 3600:g}h needed (trendAnalysis.minHistory)"
        )
    result.extra["history_seconds"] = history
    value[no_data | (short & ~rescued)] = np.nan
    return value


def _remembered(
    state: Pass, spec: LimitSpec, memory: PeakMemory | None
) -> tuple[FloatArray, FloatArray] | None:
    """(level, age in seconds) of each tenant's long-term memory for `spec` (NaN: none)."""
    found = peak_memory.recall(
        memory,
        spec.name,
        state.tenants,
        now=state.now,
        long_term_window=state.config.trend_analysis.adaptive.long_term_window,
    )
    if found is None:
        return None
    level, seen = found
    return level, state.now - seen


def _hours(key: str) -> list[int]:
    start, _, end = key.partition("-")
    a, b = int(start), int(end)
    return list(range(a, b + 1)) if a <= b else [*range(a, 24), *range(0, b + 1)]


def _time_of_day(state: Pass, cleaned: Cleaned, percentile: float) -> FloatArray:
    """Max over hour ranges of (percentile in those hours x the range's factor); hours in no
    range form one more range with factor 1 (UTC hours)."""
    hours = ((state.timestamps % 86400) // 3600).astype(np.int64)
    covered: set[int] = set()
    value = np.full(state.n, np.nan)
    for key, factor in state.config.trend_analysis.time_of_day_buffers.items():
        chosen = _hours(key)
        covered.update(chosen)
        mask = np.isin(hours, chosen)
        if mask.any():
            level = SortedRows(cleaned.columns(mask)).percentile(percentile)
            value = np.fmax(value, level * factor)
    rest = ~np.isin(hours, sorted(covered))
    if rest.any():
        value = np.fmax(value, SortedRows(cleaned.columns(rest)).percentile(percentile))
    return value


def _sort_demand(
    state: Pass, demand: Float32Array, read: list[float]
) -> tuple[SortedRows, HourStats | None]:
    """Demand's sort (the percentiles `read`) and, in the same sweep, its hour means and
    variability: the spike filter's hourly baseline and the tenant's shape both start from
    the hour means. None for these when the window is not whole hours (the spike filter's
    blocks start at the first point, the shape's hours end at the last one)."""
    per_hour = hourly.points_per_hour(state.obs.step)
    hours = demand.shape[1] // per_hour
    if not hours or demand.shape[1] != hours * per_hour:
        return SortedRows(demand, only=read), None
    grid = state.buffer("hour_means", (demand.shape[0], hours))
    return hourly.sorted_with_hours(demand, read, per_hour, grid)
