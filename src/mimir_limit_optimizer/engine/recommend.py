"""One recommendation pass: Observation + config + catalogue + now -> Recommendations.

Per limit, vectorised over tenants, in this order (docs/engine.md explains each step):
demand correction (accepted + discarded) -> spike exclusion -> strategy -> time-of-day factors
-> buffer -> tier cap -> min/max -> never-lower / zero rules -> deadband -> step limit ->
rounding. Derived limits follow their parent; discard-driven and policy-only limits have their
own short paths. "Cannot decide" is NaN plus a reason, never 0 and never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.catalogue import Catalogue, LimitSpec, LimitType, SignalKind
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine import adaptive, throttling
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
from mimir_limit_optimizer.engine.usage import FloatArray, Observation
from mimir_limit_optimizer.engine.usage_limit import usage_value

Flags = npt.NDArray[np.int64]


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
        value = usage_value(state, spec, policy, result, memory)
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
