"""Rules read from each tenant's own history (trendAnalysis.adaptive; docs/engine.md,
"Memory, growth and variability"), called from engine/recommend.py for usage-driven limits:

- `keep_recurring`, after spike detection: spikes that recur every day (bursts) stay in the
  demand; only rare ones (incidents) are excluded;
- `prepare`, before the buffer: the tenant's shape (variability, sustained peak, quiet time,
  growth) and its buffer scaled with its variability;
- `floors`, after the reaction to throttling: a quiet tenant is kept near its remembered
  peak; a throttled tenant that grows is raised to its level projected ahead;
- `lowering`, before the step limit: lowerings wait for the recent hourly peak and are then
  taken in fewer, larger steps.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.config.models import AdaptiveSettings
from mimir_limit_optimizer.engine import postprocess as pp
from mimir_limit_optimizer.engine.policy import LimitPolicy
from mimir_limit_optimizer.engine.results import LimitResult, Reason
from mimir_limit_optimizer.engine.spikes import Cleaned, SpikeReport
from mimir_limit_optimizer.engine.strategies import TenantShape, tenant_shape
from mimir_limit_optimizer.engine.usage import AnyFloatArray, FloatArray

BoolArray = npt.NDArray[np.bool_]
# Below quietShare of its peak for a whole daily cycle: quiet (a night's trough is not).
QUIET_AFTER_SECONDS = 86400.0
DAY = 86400.0


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
) -> tuple[TenantShape, LimitPolicy]:
    """The tenant's shape, and the policy with its buffer scaled by its variability."""
    shape = tenant_shape(
        raw,
        cleaned,
        timestamps=timestamps,
        step=step,
        now=now,
        quiet_share=settings.quiet_share,
        recent=max(settings.quiet_hold, DAY),
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
) -> FloatArray:
    """Quiet memory, then growth for throttled tenants (see the module docstring)."""
    if settings.quiet_share > 0:
        value, kept = pp.quiet_floor(
            value,
            result.current,
            shape.peak,
            shape.quiet_for,
            standing_percent,
            quiet_after=QUIET_AFTER_SECONDS,
            hold=settings.quiet_hold,
            keep=settings.quiet_keep,
        )
        result.flags |= np.where(kept, int(Reason.QUIET_MEMORY), 0)
    throttled = result.extra.get("throttled_recently")
    if settings.growth_horizon > 0 and throttled is not None:
        level = np.fmax(shape.recent_peak, result.extra.get("sending_now", shape.recent_peak))
        value, grown = pp.growth_floor(
            value,
            level,
            shape.growth,
            np.asarray(throttled, dtype=bool),
            full_percent,
            days=settings.growth_horizon / DAY,
        )
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
