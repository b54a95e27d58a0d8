"""Recommendation results: per limit, arrays over tenants plus reasons rendered on demand.

Reasons are stored as bit flags and context arrays, and turned into sentences only when a
row is shown: building 100k Python lists of strings would cost more than the math itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntFlag, StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.catalogue import LimitSpec, LimitType
from mimir_limit_optimizer.catalogue.units import format_duration, format_number
from mimir_limit_optimizer.engine.usage import FloatArray


class Status(StrEnum):
    CHANGE = "change"
    UNCHANGED = "unchanged"
    UNDEFINED = "undefined"


class Reason(IntFlag):
    NONE = 0
    DISCARDS_ADDED = 1 << 0  # demand = accepted + discarded
    SPIKES_EXCLUDED = 1 << 1
    BUFFER = 1 << 2
    TIME_OF_DAY = 1 << 3
    TIER_CAP = 1 << 4
    RAISED_TO_MIN = 1 << 5
    LOWERED_TO_MAX = 1 << 6
    DEADBAND = 1 << 7
    RAISE_LIMITED = 1 << 8
    LOWER_LIMITED = 1 << 9
    NEVER_LOWER = 1 << 10
    DERIVED = 1 << 11
    DISCARD_RAISE = 1 << 12
    NO_DISCARDS = 1 << 13
    POLICY_VALUE = 1 << 14
    CURRENT_DEFAULT = 1 << 15
    ZERO_KEPT = 1 << 16
    UNLIMITED_NOW = 1 << 17
    SATURATED = 1 << 18  # pinned at the limit without a discard signal
    THROTTLED_NOW = 1 << 19  # discards in the last day: never lowered
    UNLIMITED_KEPT = 1 << 20  # 0 = unlimited kept (changePolicy.tightenUnlimited is off)
    THROTTLE_FLOOR = 1 << 21  # throttled now: at least what it sends now + buffer
    SHORT_BUT_THROTTLED = 1 << 22  # short history, but discards seen: raised, never lowered
    RECENT_LEVEL = 1 << 23  # the last day's percentile is above the window's: raised to it
    STANDING_BUFFER = 1 << 24  # discard signal: part of the buffer stands, all on throttling
    VARIABILITY_BUFFER = 1 << 25  # buffer scaled with the tenant's short-term variation
    QUIET_MEMORY = 1 << 26  # went quiet: kept near its remembered sustained peak
    GROWTH = 1 << 27  # throttled and growing: raised to its level projected ahead
    SAFE_LOWERING = 1 << 28  # lowered by the larger step: still covers recent hourly levels
    LOWERING_WAITS = 1 << 29  # not lowered below the highest hourly level of recent days
    RECURRING_BURSTS = 1 << 30  # spikes recur every day: kept in the demand, not excluded
    RETRIES_BOUNDED = 1 << 31  # rate_limited discards capped: retried batches count again
    USAGE_FALLBACK = 1 << 32  # usage from the catalogue's fallback measure (see its reason)
    TAIL = 1 << 33  # at least the window's tailPercentile: a long tail held steady
    LONG_TERM_MEMORY = 1 << 34  # quiet for longer than the window: its remembered level


@dataclass
class LimitResult:
    """Results of one limit for every tenant (index i = tenant i of Recommendations.tenants)."""

    spec: LimitSpec
    current: FloatArray
    recommended: FloatArray  # NaN = undefined
    status: npt.NDArray[np.int8]  # index into STATUS_ORDER
    demand: FloatArray  # estimate before buffer; NaN when none
    p50: FloatArray
    p95: FloatArray
    p99: FloatArray
    maximum: FloatArray
    confidence: FloatArray
    flags: npt.NDArray[np.int64]
    # Context for reasons.
    undefined_reason: list[str | None]
    buffer_percent: FloatArray
    spike_count: npt.NDArray[np.int64]
    spike_ratio: FloatArray
    discard_share: FloatArray  # fraction of demand that was discarded (0..1)
    parent_value: FloatArray  # derived: the parent's value used
    minimum: float = 0.0
    maximum_allowed: float = float("inf")
    percentile: float = 95.0
    strategy: str = "percentile"
    extra: dict[str, Any] = field(default_factory=dict)
    # The engine's answer before the per-cycle step limit (changePolicy.maxIncrease/
    # DecreasePercent): where the limit is heading; `recommended` is the next step towards it.
    # None: same as `recommended`.
    target: FloatArray | None = None

    def target_of(self, i: int) -> float:
        return float((self.recommended if self.target is None else self.target)[i])

    def status_of(self, i: int) -> Status:
        return STATUS_ORDER[int(self.status[i])]

    def reasons(self, i: int) -> list[str]:
        return _render_reasons(self, i)

    def current_origin(self, i: int) -> str:
        """Where the current value of tenant i comes from: "tenant override (file)",
        "cluster default (where)" or "flag default (cluster default unknown)"."""
        if Reason.CURRENT_DEFAULT in Reason(int(self.flags[i])):
            if _guessed(self, i):
                return "flag default (cluster default unknown)"
            return "cluster default (limitOverrides.defaultValue)"
        origins = self.extra.get("origin_list")
        if origins is None:
            return ""
        index = self.extra.get("origin_index")
        return str(origins[int(index[i]) if index is not None else i])


def _guessed(r: LimitResult, i: int) -> bool:
    guessed = r.extra.get("current_guessed")
    return bool(guessed[i]) if guessed is not None else False


STATUS_ORDER = (Status.CHANGE, Status.UNCHANGED, Status.UNDEFINED)
CHANGE, UNCHANGED, UNDEFINED = 0, 1, 2


def render_value(value: float, spec: LimitSpec, *, unit: bool = True) -> str:
    """`value` in the limit's unit for people: 1.5K samples/s, 64 MiB, 30d, true; "?" when
    undefined. `unit=False` leaves out a count's unit (tables show it once per row)."""
    if not math.isfinite(value):  # a float; numpy's scalar isfinite costs ~1 us
        return "?"
    if spec.type is LimitType.DURATION:
        return format_duration(value)
    if spec.type is LimitType.BOOL:
        return "true" if value else "false"
    if spec.type is LimitType.BYTES:
        return format_number(value, "bytes")
    return format_number(value, spec.unit if unit else "")


class _Bits:
    """`Reason.X in bits` on a plain int: IntFlag's own `in` costs ~1 us, and a plan at
    10,000 tenants renders reasons for ~30,000 changes x ~35 tests."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def __contains__(self, flag: Reason) -> bool:
        return bool(self.value & flag._value_)


def _long_term(r: LimitResult, i: int, v: Callable[[float], str]) -> str:
    level = r.extra.get("remembered_level")
    age = r.extra.get("remembered_age")
    shown = f" ({v(level[i])})" if level is not None else ""
    hours = float(age[i]) // 3600 if age is not None and math.isfinite(age[i]) else math.nan
    ago = f" {format_duration(hours * 3600)} ago" if math.isfinite(hours) else " earlier"
    return (
        f"quiet for longer than the analysis window: kept near the level it held{ago}{shown} "
        "(trendAnalysis.adaptive.longTermKeep of it + buffer) until that level is "
        "trendAnalysis.adaptive.longTermWindow old"
    )


def _render_reasons(r: LimitResult, i: int) -> list[str]:
    undefined = r.undefined_reason[i]
    if undefined:
        return [undefined]
    f = _Bits(int(r.flags[i]))
    spec = r.spec
    out: list[str] = []

    def v(x: float) -> str:
        return render_value(float(x), spec)

    if Reason.CURRENT_DEFAULT in f and _guessed(r, i):
        out.append(
            f"the cluster default is unknown: current assumed to be Mimir's flag default "
            f"{v(r.current[i])} (set mimir.configUrl, mimir.configFile or "
            "limitOverrides.defaultValue to know it)"
        )
    elif Reason.CURRENT_DEFAULT in f:
        out.append(
            f"no override set: current is the cluster default {v(r.current[i])} "
            "(limitOverrides.defaultValue)"
        )
    if Reason.DISCARDS_ADDED in f:
        retried = "rate_limited" in spec.discard_reasons
        out.append(
            f"throttled: {r.discard_share[i]:.0%} of demand was discarded "
            f"({', '.join(spec.discard_reasons)}); demand = accepted + discarded"
            + (
                ", an upper bound: a retried batch is discarded (and counted) again"
                if retried
                else ""
            )
        )
    if Reason.RETRIES_BOUNDED in f:
        out.append(
            "demand bounded at 2x the accepted rate, as clients that retry 429s inflate the "
            "discards; if it is still throttled, the next cycle raises again"
        )
    if Reason.SATURATED in f:
        out.append("usage sat at the current limit: real demand may be higher")
    if Reason.SPIKES_EXCLUDED in f:
        out.append(
            f"{int(r.spike_count[i])} transient spike(s) up to {r.spike_ratio[i]:.1f}x baseline "
            "kept out of the baseline"
        )
    if math.isfinite(r.demand[i]) and spec.signal.value == "usage-driven":
        label = f"p{r.percentile:g}" if r.strategy == "percentile" else "decaying-histogram target"
        out.append(f"demand {v(r.demand[i])} ({label} over the window)")
    if Reason.TIME_OF_DAY in f:
        out.append("time-of-day buffers decided the value")
    standing = r.extra.get("standing_percent")
    if Reason.BUFFER in f and Reason.STANDING_BUFFER in f and standing is not None:
        out.append(
            f"+{standing[i]:g}% standing buffer (of {r.buffer_percent[i]:g}%: throttling shows "
            "in the discards and gets the full buffer within a cycle)"
        )
    elif Reason.BUFFER in f:
        out.append(f"+{r.buffer_percent[i]:g}% buffer")
    if Reason.DERIVED in f:
        parent = format_number(float(r.parent_value[i]), str(r.extra.get("parent_unit", "")))
        out.append(f"derived: {spec.derive_factor:g} x {spec.derived_from} ({parent})")
    if Reason.DISCARD_RAISE in f:
        out.append(f"discards for {', '.join(spec.discard_reasons)} seen recently: raised")
    if Reason.NO_DISCARDS in f:
        out.append(f"no discards for {', '.join(spec.discard_reasons)} recently: kept")
    if Reason.POLICY_VALUE in f:
        out.append("policy-only limit: value from the tenant's tier or limitOverrides.defaultValue")
    if Reason.TIER_CAP in f:
        out.append("capped by the tenant's tier limit")
    if Reason.RAISED_TO_MIN in f:
        out.append(f"raised to the minimum {v(r.minimum)}")
    if Reason.LOWERED_TO_MAX in f:
        out.append(f"lowered to the maximum {v(r.maximum_allowed)}")
    if Reason.NEVER_LOWER in f:
        out.append(
            "kept: this measure cannot show the true maximum, so it never justifies lowering"
        )
    if Reason.ZERO_KEPT in f:
        out.append("kept at 0: it disables the feature, and the optimizer does not enable features")
    if Reason.UNLIMITED_NOW in f:
        out.append("currently 0 (unlimited)")
    if Reason.UNLIMITED_KEPT in f:
        would = r.extra.get("would_be")
        hint = f" (would be {v(would[i])})" if would is not None and np.isfinite(would[i]) else ""
        out.append(
            f"kept at 0 (unlimited){hint}: set changePolicy.tightenUnlimited to recommend a limit"
        )
    if Reason.RECENT_LEVEL in f:
        level = r.extra.get("recent_level")
        shown = f" ({v(level[i])})" if level is not None else ""
        out.append(f"the last day ran above the window{shown}: raised to it + buffer")
    if Reason.SHORT_BUT_THROTTLED in f:
        seconds = r.extra.get("history_seconds")
        hours = f"{seconds[i] / 3600:.1f}h" if seconds is not None else "a short"
        out.append(
            f"only {hours} of history, but it was throttled: raised to its demand, never lowered"
        )
    if Reason.THROTTLE_FLOOR in f:
        sending = r.extra.get("sending_now")
        now = f" ({v(sending[i])})" if sending is not None else ""
        out.append(f"throttled now: raised to cover what it sends now{now} + buffer")
    if Reason.THROTTLED_NOW in f:
        out.append("discards in the last day: a throttled tenant is never lowered")
    if Reason.VARIABILITY_BUFFER in f:
        cv = r.extra.get("variability")
        shown = f" ({cv[i]:.0%})" if cv is not None and np.isfinite(cv[i]) else ""
        out.append(f"buffer scaled with the tenant's short-term variation{shown}")
    if Reason.QUIET_MEMORY in f:
        peak = r.extra.get("sustained_peak")
        shown = f" ({v(peak[i])})" if peak is not None else ""
        out.append(
            f"went quiet: kept near its remembered level{shown}; lowered only after "
            "trendAnalysis.adaptive.quietHold, and then only part of the way"
        )
    if Reason.LONG_TERM_MEMORY in f:
        out.append(_long_term(r, i, v))
    if Reason.TAIL in f:
        level = r.extra.get("tail_level")
        shown = f" {v(level[i])}" if level is not None else ""
        out.append(
            f"long tail (noise or routine bursts): at least its percentile "
            f"trendAnalysis.adaptive.tailPercentile over the window{shown}, held steady"
        )
    if Reason.GROWTH in f:
        growth = r.extra.get("growth_per_day")
        shown = f" {growth[i]:.1%}/day" if growth is not None else ""
        out.append(
            f"growing{shown}: raised to its level projected "
            "trendAnalysis.adaptive.growthHorizon ahead + buffer (from what it sends now, with "
            "the full buffer, when throttled)"
        )
    if Reason.SAFE_LOWERING in f:
        out.append(
            "safe lowering, larger step: the new value covers every hourly level of recent days"
        )
    if Reason.RECURRING_BURSTS in f:
        out.append(
            f"{int(r.spike_count[i])} bursts in the window (daily or more): part of its demand, "
            "not excluded as spikes"
        )
    if Reason.LOWERING_WAITS in f:
        out.append("lowering waits: not below the highest hourly level of recent days")
    if spec.estimate:
        out.append(spec.estimate)
    if Reason.USAGE_FALLBACK in f and spec.usage_fallback_reason:
        out.append(spec.usage_fallback_reason)
    if Reason.DEADBAND in f:
        out.append("within the deadband of the current value: unchanged")
    if Reason.RAISE_LIMITED in f:
        out.append("raise limited by the maximum step per cycle")
    if Reason.LOWER_LIMITED in f:
        out.append("lowering limited by the maximum step per cycle")
    return out


@dataclass
class Recommendations:
    tenants: tuple[str, ...]
    results: dict[str, LimitResult]
    window: tuple[float, float]
    generated_at: float

    def rows(self) -> Iterator[tuple[str, LimitResult, int]]:
        """(tenant, result, index) for every tenant x limit, tenants in order."""
        for i, tenant in enumerate(self.tenants):
            for result in self.results.values():
                yield tenant, result, i
