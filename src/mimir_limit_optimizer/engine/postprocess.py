"""Post-processors: each one small step on (N,) arrays, returning the new values and a mask of
the tenants it changed (for the reasons). Applied in order by engine/recommend.py.

NaN means "undefined" and passes through every step untouched.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine.usage import FloatArray

BoolArray = npt.NDArray[np.bool_]
Step = tuple[FloatArray, BoolArray]


def add_buffer(value: FloatArray, buffer_percent: FloatArray) -> FloatArray:
    """Headroom on top of the demand estimate: value x (1 + buffer/100)."""
    return value * (1.0 + buffer_percent / 100.0)


def recent_floor(value: FloatArray, recent: FloatArray, buffer_percent: FloatArray) -> Step:
    """At least the last day's level plus the buffer (NaN levels change nothing)."""
    floor = recent * (1.0 + buffer_percent / 100.0)
    with np.errstate(invalid="ignore"):
        hit = floor > value
    return np.where(hit, floor, value), hit


def throttle_floor(
    value: FloatArray, sending: FloatArray, throttled: BoolArray, buffer_percent: FloatArray
) -> Step:
    """A tenant throttled now gets at least what it sends now plus its buffer: a window
    percentile notices a new level only once it fills 5% of the window (8 hours of a week)."""
    floor = sending * (1.0 + buffer_percent / 100.0)
    with np.errstate(invalid="ignore"):
        hit = throttled & (floor > value)
    return np.where(hit, floor, value), hit


def cap(value: FloatArray, ceiling: FloatArray) -> Step:
    """Tier caps: never above the tier's limit."""
    hit = value > ceiling
    return np.where(hit, ceiling, value), hit


def clamp(
    value: FloatArray, minimum: float, maximum: float
) -> tuple[FloatArray, BoolArray, BoolArray]:
    """Per-limit floor and ceiling. Returns (values, raised-to-min mask, lowered-to-max mask)."""
    low = value < minimum
    high = value > maximum
    return np.clip(value, minimum, maximum), low, high


def keep_current_when_lower(value: FloatArray, current: FloatArray) -> Step:
    """For measures that cannot see the true maximum (per-query averages): never lower."""
    hit = np.isfinite(current) & (value < current)
    return np.where(hit, current, value), hit


def deadband(value: FloatArray, current: FloatArray, percent: float) -> Step:
    """No change when the new value is within `percent` of a positive current value."""
    with np.errstate(invalid="ignore", divide="ignore"):
        close = (current > 0) & (np.abs(value - current) <= current * (percent / 100.0))
    return np.where(close, current, value), close


def limit_step(
    value: FloatArray,
    current: FloatArray,
    max_increase_percent: float,
    max_decrease_percent: float,
    *,
    safe: BoolArray | None = None,
    safe_decrease_percent: float = 0.0,
) -> tuple[FloatArray, BoolArray, BoolArray]:
    """Raise fast, lower slowly: bound the move from a positive current value per cycle.
    `safe`: tenants whose lowering is safe and may step down by `safe_decrease_percent`
    (when larger than the usual step). Returns (values, raise-limited, lower-limited masks)."""
    has = current > 0
    upper = current * (1.0 + max_increase_percent / 100.0)
    decrease = np.full(current.shape, max_decrease_percent)
    if safe is not None:
        decrease = np.where(safe, max(max_decrease_percent, safe_decrease_percent), decrease)
    lower = current * (1.0 - decrease / 100.0)
    raised = has & (value > upper)
    lowered = has & (value < lower)
    out = np.where(raised, upper, np.where(lowered, lower, value))
    return out, raised, lowered


def _readable(value: FloatArray, digits: int, *, up: bool) -> FloatArray:
    positive = np.isfinite(value) & (value > 0)
    safe = np.where(positive, value, 1.0)
    scale = 10.0 ** (np.floor(np.log10(safe)) - (digits - 1))
    ratio = safe / scale
    # Subtract/add a hair so float noise (13000.0000001) does not jump a whole unit.
    rounded = np.ceil(ratio - 1e-9) if up else np.floor(ratio + 1e-9)
    # Divide by 10**-e for negative exponents: 34 * 0.1 is 3.4000000000000004, 34 / 10 is 3.4.
    exponent = np.floor(np.log10(safe)) - (digits - 1)
    exact = np.where(exponent >= 0, rounded * scale, rounded / 10.0 ** (-exponent))
    return np.where(positive, exact, value)


def round_readable(
    value: FloatArray,
    current: FloatArray,
    *,
    digits: int,
    minimum: float,
    maximum: float,
    integer: bool,
) -> FloatArray:
    """Round up to `digits` significant digits (keeps the buffer; monotone in the input).
    Values equal to the current value are left alone. After a step limit, rounding up may
    pass the step bound by less than one rounding unit: the step is a soft bound, min/max are
    hard ones and hold after rounding. Rounding up never turns a lowering into a raise: a
    value below the current one rounds up to at most the current one (which keeps the result
    monotone in the input when a higher input stayed at the current value)."""
    changed = value != current
    rounded = _readable(value, digits, up=True)
    if integer:
        rounded = np.where(np.isfinite(rounded), np.ceil(rounded - 1e-9), rounded)
    with np.errstate(invalid="ignore"):
        rounded = np.where(value < current, np.minimum(rounded, current), rounded)
        minimum, maximum = float(np.ceil(minimum)), float(np.floor(maximum))
    clipped = np.where(np.isfinite(rounded), np.clip(rounded, minimum, maximum), rounded)
    return np.where(changed, clipped, value)


def variability_scale(
    variability: FloatArray, reference: float, low: float, high: float
) -> FloatArray:
    """Factor on the buffer: the tenant's variability / the reference, within [low, high]
    (1 where the variability is unknown or scaling is off, reference 0)."""
    if reference <= 0:
        return np.ones(variability.shape)
    with np.errstate(invalid="ignore"):
        scale = np.clip(variability / reference, low, high)
    return np.where(np.isfinite(scale), scale, 1.0)


def quiet_floor(
    value: FloatArray,
    current: FloatArray,
    peak: FloatArray,
    quiet_for: FloatArray,
    buffer_percent: FloatArray,
    *,
    quiet_after: float,
    hold: float,
    keep: float,
) -> Step:
    """A tenant quiet for `quiet_after` or more seconds is not lowered below its limit in
    force for `hold` seconds of quiet, then not below `keep` x its sustained peak plus the
    buffer (never raised by this: at most to the limit in force)."""
    remembered = peak * keep * (1.0 + buffer_percent / 100.0)
    floor = np.where(quiet_for < hold, current, np.fmin(current, remembered))
    with np.errstate(invalid="ignore"):
        hit = (quiet_for >= quiet_after) & (floor > value)
    return np.where(hit, floor, value), hit


def memory_floor(
    value: FloatArray,
    current: FloatArray,
    remembered: FloatArray,
    below: BoolArray,
    buffer_percent: FloatArray,
    *,
    keep: float,
) -> Step:
    """A tenant `below` its level remembered from before the window (engine/peak_memory.py)
    is not lowered below `keep` x that level plus the buffer (never raised by this: at most
    to the limit in force). NaN remembered levels change nothing."""
    # np.minimum keeps a NaN remembered level NaN (np.fmin would floor at the limit in force).
    floor = np.minimum(current, remembered * keep * (1.0 + buffer_percent / 100.0))
    with np.errstate(invalid="ignore"):
        hit = below & (floor > value)
    return np.where(hit, floor, value), hit


def growth_floor(
    value: FloatArray,
    level: FloatArray,
    growth: FloatArray,
    throttled: BoolArray,
    buffer_percent: FloatArray,
    *,
    days: float,
) -> Step:
    """A throttled tenant that grows `growth` per day gets at least its level now, grown
    for `days`, plus the buffer."""
    floor = level * (1.0 + growth) ** days * (1.0 + buffer_percent / 100.0)
    with np.errstate(invalid="ignore"):
        hit = throttled & (growth > 0) & (floor > value)
    return np.where(hit, floor, value), hit
