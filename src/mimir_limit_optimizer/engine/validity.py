"""Usage values no Mimir can produce are invalid data, not demand (docs/reliability.md).

A negative rate or series count, an infinite value, or a value beyond anything a cluster can
reach in the limit's base unit (samples/s, series, bytes, seconds) comes from a broken
exporter, a counter reset mishandled by a recording rule, or a wrong query: taking it as
usage could lower a limit below real demand or raise it without bound. Such points are
dropped (NaN: no data) and every tenant that had one is marked incomplete for the limits that
read them, with the reason; the engine then makes no recommendation for that tenant and limit
(`recommend` reports it undefined), so nothing is applied for it. NaN samples are gaps, as
Prometheus means them, not invalid data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine.usage import AnyFloatArray, Observation

# Above any real cluster in any base unit: 1e15 samples/s, series or bytes (a petabyte).
MAX_PLAUSIBLE = 1e15
# A usage signal with no point at all, for any tenant, in the last max(STALE_STEPS x step,
# STALE_AFTER) seconds of the window has stopped (scrapes or remote-write broken): planning
# from the older data would ignore whatever happened since, so the signal is unavailable.
STALE_STEPS = 3
STALE_AFTER = 900.0  # seconds


def invalid_points(values: AnyFloatArray) -> npt.NDArray[np.bool_]:
    """True where a value is negative, infinite or beyond MAX_PLAUSIBLE (NaN is a gap)."""
    with np.errstate(invalid="ignore"):
        return (values < 0) | (values > MAX_PLAUSIBLE) | np.isinf(values)


def _describe(what: str, values: AnyFloatArray, bad: npt.NDArray[np.bool_]) -> str:
    example = float(values[bad][0])
    count = int(bad.sum())
    return (
        f"invalid {what} dropped: {count} point(s) negative, infinite or above "
        f"{MAX_PLAUSIBLE:g} (e.g. {example:g}); no recommendation until the data is valid"
    )


def stale_signals(observation: Observation) -> dict[str, str]:
    """limit -> why its usage is stale, for every limit, when no usage signal has a point
    for any tenant near the window's end although some had points before: the source as a
    whole stopped (scrapes or remote-write broken). One sparse signal going quiet (a discard
    counter whose series went away) is not staleness: others still answer."""
    stamps = observation.timestamps
    if len(stamps) == 0 or not observation.usage:
        return {}
    horizon = max(STALE_STEPS * observation.step, STALE_AFTER)
    if stamps[-1] - stamps[0] <= horizon:
        return {}  # too short a window to tell
    recent = stamps > stamps[-1] - horizon
    newest: float | None = None
    for array in observation.usage.values():
        if array.shape[0] == 0:
            continue
        seen = np.flatnonzero(np.isfinite(array).any(axis=0))
        if len(seen) == 0:
            continue
        if recent[seen[-1]]:
            return {}  # fresh data somewhere
        newest = max(newest or 0.0, float(stamps[seen[-1]]))
    if newest is None:
        return {}  # no data at all: "no data", not stale
    why = (
        f"no usage point for any tenant in the last {horizon:.0f} s of the window (the newest "
        f"is {stamps[-1] - newest:.0f} s old): stale data (scrapes or remote-write stopped?)"
    )
    return dict.fromkeys(observation.usage, why)


def screen(observation: Observation) -> Observation:
    """`observation` with invalid usage, discard and current-limit values dropped (NaN) and
    `tenant_problems[limit][tenant]` saying why, for every limit that reads them, and stale
    signals (`stale_signals`) unavailable. Returns the same object when all is valid."""
    tenants = observation.tenants
    problems: dict[str, dict[str, str]] = {
        limit: dict(by_tenant) for limit, by_tenant in observation.tenant_problems.items()
    }
    cleaned: dict[int, tuple[AnyFloatArray, dict[int, str]]] = {}  # shared arrays: once

    def clean(array: AnyFloatArray, what: str) -> tuple[AnyFloatArray, dict[int, str]]:
        key = id(array)
        if key not in cleaned:
            bad = invalid_points(array)
            if not bad.any():
                cleaned[key] = (array, {})
            else:
                rows = bad if bad.ndim == 1 else bad.any(axis=1)
                reasons = {
                    int(i): _describe(what, array[i], bad[i] if bad.ndim > 1 else bad[i : i + 1])
                    for i in np.flatnonzero(rows)
                }
                cleaned[key] = (np.where(bad, np.nan, array), reasons)
        return cleaned[key]

    def screened(arrays: Mapping[str, AnyFloatArray], what: str) -> dict[str, AnyFloatArray]:
        out: dict[str, AnyFloatArray] = {}
        for limit, array in arrays.items():
            out[limit], reasons = clean(array, what)
            for i, reason in reasons.items():
                problems.setdefault(limit, {}).setdefault(tenants[i], reason)
        return out

    usage = screened(observation.usage, "usage values")
    discards = screened(observation.discards, "discard values")
    current = {  # limits in force stay float64
        limit: np.asarray(values, dtype=np.float64)
        for limit, values in screened(observation.current, "current-limit value").items()
    }
    stale = stale_signals(observation)
    if not stale and all(not reasons for _, reasons in cleaned.values()):
        return observation
    unavailable = {**stale, **observation.unavailable}
    return dataclasses.replace(
        observation,
        usage=usage,
        discards=discards,
        current=current,
        tenant_problems=problems,
        unavailable=unavailable,
    )
