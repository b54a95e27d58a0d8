"""Rules read from each tenant's own history (trendAnalysis.adaptive; docs/engine.md,
"Memory, growth and variability"), called from engine/recommend.py for usage-driven limits:

- `prepare`, before the buffer: the tenant's shape (variability, sustained peak, quiet time,
  growth) and its buffer scaled with its variability;
- `floors`, after the reaction to throttling: a quiet tenant is kept near its remembered
  peak; a throttled tenant that grows is raised to its level projected ahead;
- `safe_lowering`, before the step limit: the lowerings that may be taken in one step.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.config.models import AdaptiveSettings
from mimir_limit_optimizer.engine import postprocess as pp
from mimir_limit_optimizer.engine.policy import LimitPolicy
from mimir_limit_optimizer.engine.results import LimitResult, Reason
from mimir_limit_optimizer.engine.strategies import TenantShape, tenant_shape
from mimir_limit_optimizer.engine.usage import AnyFloatArray, FloatArray

BoolArray = npt.NDArray[np.bool_]
# Below quietShare of its peak for a whole daily cycle: quiet (a night's trough is not).
QUIET_AFTER_SECONDS = 86400.0
DAY = 86400.0


def prepare(
    raw: AnyFloatArray,
    cleaned: AnyFloatArray,
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


def safe_lowering(
    value: FloatArray, result: LimitResult, settings: AdaptiveSettings
) -> BoolArray | None:
    """Tenants whose lowering may take the larger step (safeLoweringPercent): the new value covers
    the highest hourly level of the last max(quietHold, 1 day) plus the standing buffer, and
    the tenant is not quiet (a quiet tenant waits; see `floors`)."""
    recent_peak = result.extra.get("recent_peak")
    if settings.safe_lowering_percent <= 0 or recent_peak is None:
        return None
    standing = result.extra.get("standing_percent", result.buffer_percent)
    with np.errstate(invalid="ignore"):
        covers = value >= recent_peak * (1.0 + np.asarray(standing) / 100.0)
    quiet = result.extra.get("quiet_for", np.zeros(value.shape)) >= QUIET_AFTER_SECONDS
    safe: BoolArray = covers & ~quiet & (value < result.current)
    return safe
