"""One recommendation pass: Observation + config + catalogue + now -> Recommendations.

Per limit, vectorised over tenants, in this order (docs/engine.md explains each step):
demand correction (accepted + discarded) -> spike exclusion -> strategy -> time-of-day factors
-> buffer -> tier cap -> min/max -> never-lower / zero rules -> deadband -> step limit ->
rounding. Derived limits follow their parent; discard-driven and policy-only limits have their
own short paths. "Cannot decide" is NaN plus a reason, never 0 and never an exception.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.catalogue import Catalogue, LimitSpec, LimitType, SignalKind
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine import adaptive, hourly, peak_memory, throttling
from mimir_limit_optimizer.engine import postprocess as pp
from mimir_limit_optimizer.engine.peak_memory import PeakMemory
from mimir_limit_optimizer.engine.policy import LimitPolicy, resolve_policy
from mimir_limit_optimizer.engine.recommend_pass import Pass, undefined
from mimir_limit_optimizer.engine.results import (
    CHANGE,
    UNCHANGED,
    UNDEFINED,
    LimitResult,
    Reason,
    Recommendations,
)
from mimir_limit_optimizer.engine.spikes import Cleaned, as_slice, detect_spikes
from mimir_limit_optimizer.engine.stats import SortedRows, history_seconds
from mimir_limit_optimizer.engine.strategies import histogram_strategy, percentile_strategy
from mimir_limit_optimizer.engine.usage import FloatArray, Observation

Flags = npt.NDArray[np.int64]
# Usage within 2% of the limit counts as "at the limit"; more than 5% of the window there
# (p95 at the limit) earns the saturation hint.
_SATURATION_LEVEL = 0.98
# Share of the buffer kept as standing headroom when the limit has a discard signal. The
# engine then sees throttling in the discards and answers it within one cycle with the full
# buffer on top of what the tenant sends (and never lowers it for a day), so the headroom a
# tenant that is not throttled carries only has to cover the minutes until the next cycle,
# not days of unseen change. Without a discard signal the full buffer stands.
STANDING_BUFFER_SHARE = 0.5


def enabled_limits(config: Config, catalogue: Catalogue) -> list[LimitSpec]:
    """Managed limits in effect: enabledLimits minus limitOverrides with enabled: false."""
    if not config.dynamic_limits.enabled:
        return []
    names = list(dict.fromkeys(config.dynamic_limits.enabled_limits))
    overrides = config.dynamic_limits.limit_overrides
    return [
        catalogue.limits[name]
        for name in names
        if name in catalogue.limits and (name not in overrides or overrides[name].enabled)
    ]


def _ordered(specs: Sequence[LimitSpec]) -> list[LimitSpec]:
    """Derived limits after their parents."""
    return sorted(specs, key=lambda s: s.signal is SignalKind.DERIVED)


def recommend(
    obs: Observation,
    config: Config,
    catalogue: Catalogue,
    *,
    now: float,
    limits: Sequence[str] | None = None,
    memory: PeakMemory | None = None,
) -> Recommendations:
    """Recommend every enabled limit (or `limits`) for every in-scope tenant of `obs`.
    `memory`: the long-term peak memory of earlier cycles (engine/peak_memory.py; None:
    nothing remembered beyond the window)."""
    specs = (
        [catalogue.limits[name] for name in limits]
        if limits is not None
        else enabled_limits(config, catalogue)
    )
    state = Pass(obs, config, now)
    results: dict[str, LimitResult] = {}
    for spec in _ordered(specs):
        results[spec.name] = _recommend_limit(state, spec, results, memory)
    window = (
        (float(state.timestamps[0]), float(state.timestamps[-1]))
        if len(state.timestamps)
        else (now, now)
    )
    ordered = {spec.name: results[spec.name] for spec in specs}
    return Recommendations(state.tenants, ordered, window, now)


def _current(state: Pass, spec: LimitSpec, policy: LimitPolicy) -> tuple[FloatArray, Flags]:
    observed = state.obs.current.get(spec.name)
    current = state.take(observed).copy() if observed is not None else np.full(state.n, np.nan)
    missing = ~np.isfinite(current)
    fallback = policy.default_value if policy.default_value is not None else spec.default
    current[missing] = fallback
    flags = np.where(missing, int(Reason.CURRENT_DEFAULT), 0).astype(np.int64)
    return current, flags


def _empty_result(
    state: Pass, spec: LimitSpec, policy: LimitPolicy, current: FloatArray, flags: Flags
) -> LimitResult:
    n = state.n
    nan = np.full(n, np.nan)
    trend = state.config.trend_analysis
    return LimitResult(
        spec=spec,
        current=current,
        recommended=nan.copy(),
        status=np.full(n, UNDEFINED, dtype=np.int8),
        demand=nan.copy(),
        p50=nan.copy(),
        p95=nan.copy(),
        p99=nan.copy(),
        maximum=nan.copy(),
        confidence=np.zeros(n),
        flags=flags,
        undefined_reason=[None] * n,
        buffer_percent=policy.buffer_percent,
        spike_count=np.zeros(n, dtype=np.int64),
        spike_ratio=nan.copy(),
        discard_share=np.zeros(n),
        parent_value=nan.copy(),
        minimum=policy.minimum,
        maximum_allowed=policy.maximum,
        percentile=trend.percentile
        if trend.strategy == "percentile"
        else trend.histogram.target_percentile,
        strategy=trend.strategy,
    )


def _recommend_limit(
    state: Pass, spec: LimitSpec, done: dict[str, LimitResult], memory: PeakMemory | None
) -> LimitResult:
    policy = resolve_policy(state.config, spec, state.tiers)
    current, flags = _current(state, spec, policy)
    result = _empty_result(state, spec, policy, current, flags)
    if policy.default_value is None:  # the catalogue's Mimir default stood in: a guess
        result.extra["current_guessed"] = (flags & int(Reason.CURRENT_DEFAULT)) != 0
    # Origins of the current values, read per row only when shown (no 100k-string copies).
    origins = state.obs.current_origin.get(spec.name)
    if origins is not None:
        result.extra["origin_list"] = origins
        result.extra["origin_index"] = None if state.all_rows else np.flatnonzero(state.rows)
    unavailable = state.obs.unavailable.get(spec.name)
    if unavailable:
        result.undefined_reason = [unavailable] * state.n
        return result
    if spec.signal is SignalKind.USAGE:
        value = _usage_value(state, spec, policy, result, memory)
    elif spec.signal is SignalKind.DISCARD:
        value = throttling.discard_value(state, spec, result)
    elif spec.signal is SignalKind.DERIVED:
        value = _derived_value(state, spec, result, done)
    else:
        value = _policy_value(state, spec, policy, result)
    _finish(state, spec, policy, result, value)
    _incomplete(state, spec, result)
    return result


def _incomplete(state: Pass, spec: LimitSpec, result: LimitResult) -> None:
    """Tenants whose data for this limit is incomplete (invalid values dropped at the
    source, engine/validity.py): no recommendation, with the reason."""
    problems = state.obs.tenant_problems.get(spec.name)
    if not problems:
        return
    for i, tenant in enumerate(state.tenants):
        reason = problems.get(tenant)
        if reason is not None:
            result.recommended[i] = np.nan
            result.status[i] = UNDEFINED
            result.undefined_reason[i] = reason


def _usage_value(
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
    # tail's): it is done a chunk of rows at a time and no sorted copy is kept.
    usage_qs = [50.0, 95.0, 99.0, 100.0]
    read = [*usage_qs, trend.percentile, trend.adaptive.tail_percentile]
    if len(throttled_rows) > state.n // 4:
        observed = SortedRows(usage, only=usage_qs)
        result.p50, result.p95, result.p99, result.maximum = observed.percentiles(usage_qs)
        observed.release()  # keep the counts, not the usage
        ordered = SortedRows(demand, only=read)
    else:
        ordered = SortedRows(demand, only=read)
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

    # Demand's hour means and variability, once: the spike filter's hourly baseline and the
    # tenant's shape both start from the hour means (one pass over the points less). Only
    # when the window is whole hours: the spike filter's blocks start at the first point,
    # the shape's hours end at the last one.
    per_hour = hourly.points_per_hour(obs.step)
    hours = demand.shape[1] // per_hour
    raw_stats = None
    if hours and demand.shape[1] == hours * per_hour:
        grid = state.buffer("hour_means", (demand.shape[0], hours))
        raw_stats = hourly.means_and_variability(demand, per_hour, out=grid)
        del grid

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


def _derived_value(
    state: Pass, spec: LimitSpec, result: LimitResult, done: dict[str, LimitResult]
) -> FloatArray:
    parent_name = spec.derived_from or ""
    factor = spec.derive_factor or 1.0
    parent = done.get(parent_name)
    if parent is not None:
        base = parent.recommended
        result.confidence = parent.confidence
        for key in ("throttled_now", "throttled_recently"):  # nor is a throttled one's burst
            if key in parent.extra:
                result.extra[key] = parent.extra[key]
        undefined(result, ~np.isfinite(base), f"{parent_name} is undefined for this tenant")
    else:
        observed = state.obs.current.get(parent_name)
        base = state.take(observed) if observed is not None else np.full(state.n, np.nan)
        result.confidence = np.where(np.isfinite(base), 1.0, 0.0)
        undefined(
            result,
            ~np.isfinite(base),
            f"{parent_name} is not managed and its current value is unknown",
        )
    result.parent_value = base
    result.extra["parent_unit"] = done[parent_name].spec.unit if parent_name in done else ""
    result.flags |= int(Reason.DERIVED)
    return base * factor


def _policy_value(
    state: Pass, spec: LimitSpec, policy: LimitPolicy, result: LimitResult
) -> FloatArray:
    # Only a tier's explicit value is a recommendation; limitOverrides.defaultValue describes
    # the cluster's global default (what an unset tenant gets), never a value to write.
    value = policy.tier_value.copy()
    undefined(
        result,
        ~np.isfinite(value),
        f"policy-only limit: no tier sets it (limits.tenantTiers.<tier>.limits.{spec.name})",
    )
    result.flags |= np.where(np.isfinite(value), int(Reason.POLICY_VALUE), 0)
    result.confidence = np.where(np.isfinite(value), 1.0, 0.0)
    return value


def _finish(
    state: Pass, spec: LimitSpec, policy: LimitPolicy, result: LimitResult, value: FloatArray
) -> None:
    change = state.config.change_policy
    current = result.current
    defined = np.isfinite(value)
    flags = result.flags

    value, hit = pp.cap(value, policy.cap)
    flags |= np.where(hit & defined, int(Reason.TIER_CAP), 0)
    value, low, high = pp.clamp(value, policy.minimum, policy.maximum)
    flags |= np.where(low & defined, int(Reason.RAISED_TO_MIN), 0)
    flags |= np.where(high & defined, int(Reason.LOWERED_TO_MAX), 0)
    if not spec.may_lower:
        value, hit = pp.keep_current_when_lower(value, current)
        flags |= np.where(hit & defined, int(Reason.NEVER_LOWER), 0)

    throttled = result.extra.get("throttled_recently", result.extra.get("throttled_now"))
    if throttled is not None:
        hit = throttled & defined & (value < current)
        value = np.where(hit, current, value)
        flags |= np.where(hit, int(Reason.THROTTLED_NOW), 0)

    zero = current == 0
    keep_zero = np.zeros(state.n, dtype=bool)
    if spec.signal is not SignalKind.POLICY:
        keep_zero = zero & defined
        if not spec.zero_means_unlimited:
            flags |= np.where(keep_zero, int(Reason.ZERO_KEPT), 0)
        elif change.tighten_unlimited:
            keep_zero[:] = False
            flags |= np.where(zero & defined, int(Reason.UNLIMITED_NOW), 0)
        else:
            result.extra["would_be"] = np.where(keep_zero, value, np.nan)
            flags |= np.where(keep_zero, int(Reason.UNLIMITED_KEPT), 0)

    unstepped = value
    if spec.signal is not SignalKind.POLICY and spec.type is not LimitType.BOOL:
        moved = value != current
        # The deadband never keeps a current value that breaks the hard min/max.
        in_bounds = (current >= policy.minimum) & (current <= policy.maximum)
        value, hit = pp.deadband(
            value, np.where(in_bounds, current, np.nan), change.deadband_percent
        )
        flags |= np.where(hit & moved & defined & ~zero, int(Reason.DEADBAND), 0)
        # The engine's answer before the pacing of this cycle (a lowering that waits for the
        # recent peak, the per-cycle step): its target.
        unstepped = value
        value, safe = adaptive.lowering(value, result, state.config.trend_analysis.adaptive)
        # The engine's answer before the step limit: where it is heading (cost advice).
        result.extra["unstepped"] = np.clip(value, policy.minimum, policy.maximum)
        value, raised, lowered = pp.limit_step(
            value,
            current,
            change.max_increase_percent,
            change.max_decrease_percent,
            safe=safe,
            safe_decrease_percent=state.config.trend_analysis.adaptive.safe_lowering_percent,
        )
        if safe is not None:
            flags |= np.where(safe & defined & (value < current), int(Reason.SAFE_LOWERING), 0)
        flags |= np.where(raised & defined, int(Reason.RAISE_LIMITED), 0)
        flags |= np.where(lowered & defined, int(Reason.LOWER_LIMITED), 0)
        # min/max are hard bounds, the step a soft one: re-clamp after stepping.
        value = np.clip(value, policy.minimum, policy.maximum)
    # 0 that switches a feature off stays 0, whatever the clamps say.
    value = np.where(keep_zero, 0.0, value)
    target = np.where(keep_zero, 0.0, np.clip(unstepped, policy.minimum, policy.maximum))
    if spec.type in (LimitType.RATE, LimitType.COUNT, LimitType.BYTES):
        integer = spec.type is not LimitType.RATE
        lo, hi, digits = policy.minimum, policy.maximum, change.rounding_digits
        value = pp.round_readable(
            value, current, digits=digits, minimum=lo, maximum=hi, integer=integer
        )
        target = pp.round_readable(
            target, current, digits=digits, minimum=lo, maximum=hi, integer=integer
        )

    result.flags = flags
    result.recommended = np.where(defined, value, np.nan)
    result.target = np.where(defined, target, np.nan)
    status = np.where(result.recommended == current, UNCHANGED, CHANGE).astype(np.int8)
    status[~defined] = UNDEFINED
    result.status = status
