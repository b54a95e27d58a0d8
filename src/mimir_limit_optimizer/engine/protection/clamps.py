"""Clamp arithmetic: floors, maximum depth, rounding, and the recovery steps back up.

A clamp only ever tightens: it is at most the value in force before it (`target`), at least
the limit's floor (the larger of the catalogue minimum and `circuitBreaker.floors`), and,
unless it is a freeze at current usage + margin, at least (100 - maxClampDepthPercent)% of the
target. A target at or below the floor is left alone.
0 means "unlimited" for the limits whose catalogue entry says so: such a target is infinite
for comparisons, has no depth bound, and recovers in the same number of steps as a finite
one (each step adds stepPercent of the cap the recovery started from) before it is restored.
"""

from __future__ import annotations

import math

from mimir_limit_optimizer.catalogue import Catalogue, LimitType
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.protection.state import Clamp


def effective(value: float, limit: str, catalogue: Catalogue) -> float:
    """`value` for comparisons: inf when 0 means unlimited for `limit`, NaN stays NaN."""
    spec = catalogue.limits[limit]
    if spec.zero_means_unlimited and value == 0:
        return math.inf
    return value


def floor_of(limit: str, config: Config, catalogue: Catalogue) -> float:
    floors = {str(name): value for name, value in config.circuit_breaker.floors.items()}
    configured = floors.get(limit)
    minimum = catalogue.limits[limit].min_value
    return max(minimum, float(configured)) if configured is not None else minimum


# Caps are written for people to read: 3000, not 3001. Three significant digits move a cap
# by less than 1%, so a freeze at usage + margin keeps its margin.
READABLE_DIGITS = 3


def round_limit(value: float, limit: str, catalogue: Catalogue) -> float:
    """Up to an integer: counts must be integers, and a rate in whole samples/s reads well.
    Rounding up keeps every floor."""
    spec = catalogue.limits[limit]
    if spec.type is LimitType.RATE and value < 10:
        return math.ceil(value * 100) / 100
    return float(math.ceil(value - 1e-9))


def _significant(value: float, *, up: bool) -> float:
    """`value` rounded to READABLE_DIGITS significant digits, up or down."""
    if not math.isfinite(value) or value <= 0:
        return value
    exponent = math.floor(math.log10(value)) - (READABLE_DIGITS - 1)
    scale = 10.0**exponent
    ratio = value / scale
    digits = math.ceil(ratio - 1e-9) if up else math.floor(ratio + 1e-9)
    return digits * scale if exponent >= 0 else digits / 10.0 ** (-exponent)


def readable_cap(
    value: float, lowest: float, limit: str, catalogue: Catalogue, *, up: bool = False
) -> float:
    """A cap at about `value`, readable (3001 -> 3000): rounded down (tighter), unless that
    breaks the floor `lowest` or `up` asks otherwise (a freeze at usage + margin never loses
    its margin, a recovery step never goes back), then up; always a valid value of the limit
    (round_limit)."""
    down = round_limit(_significant(value, up=False), limit, catalogue)
    if down >= lowest and not up:
        return down
    raised = round_limit(_significant(value, up=True), limit, catalogue)
    return raised if raised >= lowest else round_limit(lowest, limit, catalogue)


def bounded(
    value: float,
    target: float,
    limit: str,
    config: Config,
    catalogue: Catalogue,
    *,
    depth: bool = True,
) -> float:
    """A cap of `limit` at `value` (tenant's target = value in force before any cap), within
    the floor, the maximum depth (unless `depth` is False: freezes at current usage + margin
    never cut into usage, so only floors bound them) and the target. NaN `value` means "no
    cap": the target."""
    top = effective(target, limit, catalogue)
    if math.isnan(value):
        return target
    lowest = floor_of(limit, config, catalogue)
    if math.isfinite(top):
        if top <= lowest:
            return target  # already at or below the floor: never raised, never lowered
        if depth:
            share = config.circuit_breaker.max_clamp_depth_percent / 100.0
            lowest = max(lowest, top * (1.0 - share))
    capped = readable_cap(max(value, lowest), lowest, limit, catalogue, up=not depth)
    return target if capped >= top else capped


def tightened(cap: float | None, value: float) -> float:
    """Caps only tighten: the lower of the existing cap and the new one."""
    return value if cap is None else min(cap, value)


def step_up(
    clamp: Clamp,
    source: str,
    limit: str,
    step_percent: float,
    catalogue: Catalogue,
) -> tuple[float | None, bool]:
    """Raise the cap of `source` ("breaker" or "emergency") by one recovery step.

    Returns (new cap, done); done (cap None) when it reached the target."""
    cap = clamp.breaker if source == "breaker" else clamp.emergency
    if cap is None:
        return None, True
    top = effective(clamp.target, limit, catalogue)
    start = clamp.start.setdefault(source, cap)
    steps = clamp.steps.get(source, 0) + 1
    clamp.steps[source] = steps
    if math.isfinite(top):
        raised = readable_cap(cap + step_percent / 100.0 * top, cap, limit, catalogue, up=True)
        if raised >= top:
            return None, True
        return raised, False
    if steps >= math.ceil(100.0 / step_percent - 1e-9):
        return None, True
    step = cap + step_percent / 100.0 * start
    return readable_cap(step, cap, limit, catalogue, up=True), False


def set_cap(clamp: Clamp, source: str, value: float | None) -> None:
    if source == "breaker":
        clamp.breaker = value
    else:
        clamp.emergency = value
    if value is None:
        clamp.start.pop(source, None)
        clamp.steps.pop(source, None)
