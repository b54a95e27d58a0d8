"""Rules read from each tenant's own history (trendAnalysis.adaptive; docs/engine.md,
"Memory, growth and variability"), called from engine/usage_limit.py for usage-driven limits:

- `keep_recurring`, after spike detection: spikes that recur every day (bursts) stay in the
  demand; only rare ones (incidents) are excluded;
- `tail`, after the strategy: noisy and bursty tenants get at least a high percentile of
  the window (their tail, held steady, instead of raises after each burst);
- `prepare`, before the buffer: the tenant's shape (variability, sustained peak, quiet time,
  growth) and its buffer scaled with its variability;
- `floors`, after the reaction to throttling: a quiet tenant is kept near its remembered
  peak (the window's, or the long-term one of engine/peak_memory.py beyond the window); a
  throttled tenant that grows is raised to its level projected ahead;
- `lowering`, before the step limit: lowerings wait for the recent hourly peak and are then
  taken in fewer, larger steps.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.config.recommendation import AdaptiveSettings
from mimir_limit_optimizer.engine import postprocess as pp
from mimir_limit_optimizer.engine.hourly import HourStats
from mimir_limit_optimizer.engine.peak_memory import HELD_LEVEL, RENEW_SHARE
from mimir_limit_optimizer.engine.policy import LimitPolicy
from mimir_limit_optimizer.engine.results import LimitResult, Reason
from mimir_limit_optimizer.engine.spikes import Cleaned, SpikeReport
from mimir_limit_optimizer.engine.stats import SortedRows
from mimir_limit_optimizer.engine.strategies import TenantShape, tenant_shape
from mimir_limit_optimizer.engine.usage import AnyFloatArray, FloatArray

BoolArray = npt.NDArray[np.bool_]
# Below quietShare of its peak for a whole daily cycle: quiet (a night's trough is not).
QUIET_AFTER_SECONDS = 86400.0
DAY = 86400.0
# A level a tenant sends, as opposed to a burst: held this long (seconds). Bursts of cron jobs
# and agent restarts last minutes; a return or a new level lasts.
SUSTAINED_SECONDS = 900.0
# Growth projected ahead is at most this per day (a fraction): faster "growth" over three days
# is a return or a new level, which the reaction to throttling covers.
MAX_GROWTH_PER_DAY = 0.25


def keep_recurring(
    demand: AnyFloatArray,
    report: SpikeReport,
    history: FloatArray,
    result: LimitResult,
    settings: AdaptiveSettings,
) -> Cleaned:
    """Cleaned demand, except for tenants with recurringSpikesPerDay spikes a day or more
    over their history: their bursts are what they send, and a limit must cover them."""
    days = np.maximum(history / DAY, 1.0)
    per_day = settings.recurring_spikes_per_day
    recurring = (report.count >= per_day * days) if per_day > 0 else np.zeros(len(days), bool)
    result.flags |= np.where((report.count > 0) & ~recurring, int(Reason.SPIKES_EXCLUDED), 0)
    result.flags |= np.where(recurring, int(Reason.RECURRING_BURSTS), 0)
    cleaned = report.cleaned
    if not recurring.any():
        return cleaned
    # Recurring tenants keep their demand: their rows leave the patch of cleaned rows.
    stay = ~recurring[cleaned.rows]
    return Cleaned(cleaned.base, cleaned.rows[stay], cleaned.values[stay])


def prepare(
    raw: AnyFloatArray,
    cleaned: AnyFloatArray | Cleaned,
    *,
    timestamps: FloatArray,
    step: float,
    now: float,
    policy: LimitPolicy,
    result: LimitResult,
    settings: AdaptiveSettings,
    raw_stats: HourStats | None = None,
) -> tuple[TenantShape, LimitPolicy]:
    """The tenant's shape, and the policy with its buffer scaled by its variability.
    `raw_stats`: the hour means and variability of `raw`, when the caller has them."""
    shape = tenant_shape(
        raw,
        cleaned,
        timestamps=timestamps,
        step=step,
        now=now,
        quiet_share=settings.quiet_share,
        recent=max(settings.quiet_hold, DAY),
        raw_stats=raw_stats,
    )
    result.extra["variability"] = shape.variability
    result.extra["sustained_peak"] = shape.peak
    result.extra["growth_per_day"] = shape.growth
    result.extra["recent_peak"] = shape.recent_peak
    result.extra["quiet_for"] = shape.quiet_for
    if settings.variability_reference <= 0:
        return shape, policy
    scale = pp.variability_scale(
        shape.variability,
        settings.variability_reference,
        settings.buffer_scale_min,
        settings.buffer_scale_max,
    )
    buffer = policy.buffer_percent * scale
    result.buffer_percent = buffer
    scaled = (scale != 1.0) & (policy.buffer_percent > 0)
    result.flags |= np.where(scaled, int(Reason.VARIABILITY_BUFFER), 0)
    return shape, dataclasses.replace(policy, buffer_percent=buffer)


def floors(
    value: FloatArray,
    *,
    shape: TenantShape,
    result: LimitResult,
    standing_percent: FloatArray,
    full_percent: FloatArray,
    settings: AdaptiveSettings,
    remembered: tuple[FloatArray, FloatArray] | None = None,
) -> FloatArray:
    """Quiet memory (the window's, then the long-term one: `remembered`, the level
    engine/peak_memory.recall gives and its age in seconds), then growth for throttled
    tenants (see the module docstring)."""
    if settings.quiet_share > 0:
        value, kept = pp.quiet_floor(
            value,
            result.current,
            # Remembered at its highest hour, not its day level: a tenant that comes back
            # returns to its daily peak.
            np.fmax(shape.peak, shape.top_hour),
            shape.quiet_for,
            standing_percent,
            quiet_after=QUIET_AFTER_SECONDS,
            hold=settings.quiet_hold,
            keep=settings.quiet_keep,
        )
        result.flags |= np.where(kept, int(Reason.QUIET_MEMORY), 0)
    # The long-term memory records the window's highest day level (peak_memory.update), not
    # its highest hour: a level held most of a day, which a cardinality blast or an
    # incident of a few hours is not (remembered for a month, an hour's blast would keep
    # the limit at its height all that time).
    result.extra[HELD_LEVEL] = shape.peak
    if remembered is not None:
        # Quiet for longer than the window: the window no longer holds the remembered level
        # (as when it is not renewed), so its own level no longer says where the tenant was.
        # The full buffer: the level is a day level, below the daily peak a return reaches.
        level, age = remembered
        with np.errstate(invalid="ignore"):
            below = shape.peak < RENEW_SHARE * level
        value, kept = pp.memory_floor(
            value,
            result.current,
            level,
            below,
            full_percent,
            keep=settings.long_term_keep,
        )
        result.extra["remembered_level"] = level
        result.extra["remembered_age"] = age
        result.flags |= np.where(kept, int(Reason.LONG_TERM_MEMORY), 0)
    if settings.growth_horizon > 0:
        # A return from quiet looks like growth (each day above the one before): projected
        # at most MAX_GROWTH_PER_DAY, or one return would double the limit.
        growth = np.minimum(shape.growth, MAX_GROWTH_PER_DAY)
        days = settings.growth_horizon / DAY
        throttled_extra = result.extra.get("throttled_recently")
        throttled = (
            np.zeros(value.shape, dtype=bool)
            if throttled_extra is None
            else np.asarray(throttled_extra, dtype=bool)
        )
        # Throttled: from what it sends now (demand incl. discards), with the full buffer.
        level = np.fmax(shape.recent_peak, result.extra.get("sending_now", shape.recent_peak))
        value, grown = pp.growth_floor(value, level, growth, throttled, full_percent, days=days)
        # Throttled earlier in the window, not in the last day: raised ahead of its growth
        # with the standing buffer, before its next daily peak finds the limit where the last
        # raise left it. Only these: a tenant never throttled has shown no limit its growth
        # reaches, and a weekly cycle's Monday reads like growth.
        before = (result.discard_share > 0) & ~throttled
        # Only steady growth: faster is a return, whose level the quiet memory holds.
        steady = np.where(shape.growth <= MAX_GROWTH_PER_DAY, shape.growth, 0.0)
        result.extra["raised_ahead"] = before
        value, ahead = pp.growth_floor(
            value, shape.recent_peak, steady, before, standing_percent, days=days
        )
        grown |= ahead
        result.flags |= np.where(grown, int(Reason.GROWTH), 0)
    return value


def lowering(
    value: FloatArray, result: LimitResult, settings: AdaptiveSettings
) -> tuple[FloatArray, BoolArray | None]:
    """Fewer, larger lowering steps; where a lowering is not safe, wait.

    A lowering never goes below the highest hourly level of the last max(quietHold, 1 day)
    (it waits until that level has passed), a growing tenant is not lowered, and a lowering
    is then taken with the larger step
    safeLoweringPercent instead of changePolicy.maxDecreasePercent. Returns the values and
    the tenants whose lowering may take the larger step (None: rule off)."""
    recent_peak = result.extra.get("recent_peak")
    if settings.safe_lowering_percent <= 0 or recent_peak is None:
        return value, None
    current = result.current
    # A tenant whose day level grew on each of the last days is not lowered at all: its
    # next peak is above the last ones.
    growing = result.extra.get("growth_per_day", np.zeros(value.shape)) > 0
    # Nor is one that may be raised ahead of growth (`floors`) while its last day ran above
    # its window's level: the day-over-day growth reading flickers with noise from one cycle
    # to the next, this one does not, so a raise ahead is not undone at the next cycle.
    recent_level = result.extra.get("recent_level")
    if recent_level is not None:
        with np.errstate(invalid="ignore"):
            rising = recent_level > result.demand
        ahead = result.extra.get("raised_ahead")
        if ahead is not None:
            growing = growing | (rising & np.asarray(ahead, dtype=bool))
    with np.errstate(invalid="ignore"):
        lower = value < current
        floor = np.fmin(np.where(np.isfinite(recent_peak), recent_peak, -np.inf), current)
        floor = np.where(growing, current, floor)
        waited = lower & (floor > value)
    result.flags |= np.where(waited, int(Reason.LOWERING_WAITS), 0)
    value = np.where(waited, floor, value)
    with np.errstate(invalid="ignore"):
        larger: BoolArray = (value < current) & np.isfinite(recent_peak)
    return value, larger


def held_level(
    demand: AnyFloatArray, recent: BoolArray, rows: npt.NDArray[np.int64], *, step: float
) -> FloatArray:
    """Per tenant of `rows`: the highest level its demand held for SUSTAINED_SECONDS (the
    highest rolling minimum over that many points) within the `recent` columns. NaN points
    count as not holding; a row without a whole run of points gets its recent maximum."""
    block = np.asarray(demand[:, recent][rows], dtype=np.float32)  # the hour, then the rows
    width = max(1, round(SUSTAINED_SECONDS / step))
    if block.shape[1] < width or len(rows) == 0:
        return (
            np.fmax.reduce(block, axis=1).astype(np.float64)
            if block.shape[1]
            else (np.full(len(rows), np.nan))
        )
    filled = np.where(np.isnan(block), np.float32(-np.inf), block)
    runs = np.lib.stride_tricks.sliding_window_view(filled, width, axis=1).min(axis=2)
    top = runs.max(axis=1).astype(np.float64)
    return np.where(np.isfinite(top), top, np.nan)


def tail(
    value: FloatArray,
    ordered: SortedRows,
    shape: TenantShape,
    result: LimitResult,
    settings: AdaptiveSettings,
) -> FloatArray:
    """Noisy tenants (short-term variation above variabilityReference): at least the
    tailPercentile of the window's demand (before the buffer). The steady limit that covers
    a noisy or bursty tenant's tail throttles fewer minutes for the same average headroom
    than a lower limit raised after each burst (bursts come at random times: a raise after
    one is headroom spent when the next is elsewhere). Steady tenants keep the configured
    percentile: their level shifts are the other rules' business."""
    if settings.tail_percentile <= 0 or settings.variability_reference <= 0:
        return value
    with np.errstate(invalid="ignore"):
        noisy = shape.variability > settings.variability_reference
    if not noisy.any():
        return value
    top = ordered.percentile(settings.tail_percentile)
    with np.errstate(invalid="ignore"):
        hit = noisy & (top > value)
    result.extra["tail_level"] = top
    result.flags |= np.where(hit, int(Reason.TAIL), 0)
    return np.where(hit, top, value)
