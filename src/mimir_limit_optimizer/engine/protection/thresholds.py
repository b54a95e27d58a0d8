"""Per-tenant demand and thresholds, vectorised over tenants.

Auto threshold of a kind = multiplier x reference x (1 + safety margin), where the reference
is the tenant's limit in force (the Go optimizer's formula) and, with real-time adaptation, also its
traffic baseline: the threshold is the lower of the two, so adaptation can only make a
limit-based threshold tighter, never looser. A limit of 0 (unlimited) or no limit at all (query
rate: Mimir has no per-tenant query-rate limit) leaves the baseline as the only reference.
Traffic thresholds never go below a floor per kind (MINIMUM_TRAFFIC_THRESHOLD: a quiet
tenant's baseline of 0 must not make every sample a blast).

Manual thresholds are absolute; hybrid uses a tenant's manual value where it has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.protection.model import (
    BURST_LIMIT,
    KIND_LIMITS,
    SIG_INGESTION,
    SIG_INGESTION_DISCARDED,
    SIG_NEW_SERIES,
    SIG_QUERIES,
    SIG_SERIES,
    SIG_SERIES_DISCARDED,
    FastObservation,
    Kind,
)
from mimir_limit_optimizer.engine.protection.policy import (
    MODE_AUTO,
    MODE_HYBRID,
    MODE_MANUAL,
    TenantPolicy,
)
from mimir_limit_optimizer.engine.protection.state import ProtectionState
from mimir_limit_optimizer.engine.usage import FloatArray

# Floors of traffic-based thresholds, per kind (samples/s, series, queries/s).
MINIMUM_TRAFFIC_THRESHOLD: Mapping[Kind, float] = MappingProxyType(
    {
        Kind.INGESTION: 1000.0,
        Kind.SERIES: 10_000.0,
        Kind.QUERY: 5.0,
    }
)


def demand(obs: FastObservation) -> dict[str, FloatArray]:
    """Per kind (and new series), what the tenant tries to do, NaN where unknown:
    usage + what the limit rejected (ingestion, series), queries/s, new series/s."""
    ingestion = obs.signal(SIG_INGESTION)
    series = obs.signal(SIG_SERIES)
    return {
        Kind.INGESTION.value: ingestion + np.nan_to_num(obs.signal(SIG_INGESTION_DISCARDED)),
        Kind.SERIES.value: series + np.nan_to_num(obs.signal(SIG_SERIES_DISCARDED)),
        Kind.QUERY.value: obs.signal(SIG_QUERIES),
        SIG_NEW_SERIES: obs.signal(SIG_NEW_SERIES),
    }


@dataclass(frozen=True)
class KindThresholds:
    """Thresholds of one kind: `value` must be exceeded for the detection window; `burst`
    (ingestion only) trips at once. Both inf where not checked."""

    value: FloatArray
    burst: FloatArray
    limit_based: FloatArray  # for the reasons
    traffic_based: FloatArray


def _unlimited_to_nan(values: FloatArray) -> FloatArray:
    out = values.astype(np.float64, copy=True)
    out[~(np.isfinite(out) & (out > 0))] = np.nan
    return out


def compute_thresholds(
    state: ProtectionState,
    policy: TenantPolicy,
    limits: Mapping[str, FloatArray],
    config: Config,
) -> dict[Kind, KindThresholds]:
    """Thresholds of every kind for every tenant of `state` (aligned arrays)."""
    breaker = config.circuit_breaker
    auto = breaker.auto_config
    multipliers = auto.limit_multipliers
    factor = 1.0 + policy.margin
    adapting = auto.realtime_adaptation.enabled
    n = len(state.tenants)
    out: dict[Kind, KindThresholds] = {}
    per_kind = {
        Kind.INGESTION: multipliers.ingestion_rate_multiplier,
        Kind.SERIES: multipliers.series_multiplier,
        Kind.QUERY: multipliers.query_rate_multiplier,
    }
    for kind, multiplier in per_kind.items():
        reference = (
            _unlimited_to_nan(limits[KIND_LIMITS[kind][0]])
            if kind is not Kind.QUERY
            else np.full(n, np.nan)
        )
        limit_based = np.where(np.isfinite(reference), multiplier * reference * factor, np.inf)
        baseline = state.baselines[kind.value]
        traffic = np.maximum(baseline, 0.0) * multiplier * factor
        traffic = np.maximum(traffic, MINIMUM_TRAFFIC_THRESHOLD[kind])
        traffic = np.where(np.isfinite(baseline), traffic, np.inf)
        if adapting:
            automatic = np.minimum(limit_based, traffic)
        else:  # the Go optimizer's static thresholds; the baseline only where there is no limit
            automatic = np.where(np.isfinite(limit_based), limit_based, traffic)
        if not auto.enabled:
            automatic = np.full(n, np.inf)
        burst = np.full(n, np.inf)
        if kind is Kind.INGESTION and auto.enabled:
            bucket = (
                reference + _unlimited_to_nan(limits[BURST_LIMIT]) / breaker.fast_loop.rate_window
            )
            burst = np.where(
                np.isfinite(bucket), multipliers.burst_multiplier * bucket * factor, np.inf
            )
        manual = policy.manual[kind]
        has_manual = np.isfinite(manual)
        use_auto_in_hybrid = breaker.blast_protection.use_auto_thresholds
        value = np.where(
            policy.mode == MODE_MANUAL,
            np.where(has_manual, manual, np.inf),
            np.where(
                (policy.mode == MODE_HYBRID) & has_manual,
                manual,
                np.where((policy.mode == MODE_AUTO) | use_auto_in_hybrid, automatic, np.inf),
            ),
        )
        auto_used = (policy.mode == MODE_AUTO) | (
            (policy.mode == MODE_HYBRID) & ~has_manual & use_auto_in_hybrid
        )
        out[kind] = KindThresholds(
            value=value,
            burst=np.where(auto_used, burst, np.inf),
            limit_based=limit_based,
            traffic_based=traffic,
        )
    return out


def seed_baselines(state: ProtectionState, values: Mapping[str, FloatArray]) -> None:
    """Baselines still unknown start at `values` (warm-up percentiles, or first sight)."""
    for name, baseline in state.baselines.items():
        fresh = values.get(name)
        if fresh is None:
            continue
        unknown = ~np.isfinite(baseline) & np.isfinite(fresh)
        baseline[unknown] = fresh[unknown]


def adapt_baselines(
    state: ProtectionState, samples: Mapping[str, FloatArray], config: Config, now: float
) -> bool:
    """Collect this tick's `samples` (NaN for tenants that must not teach the baseline) and,
    once per adaptation interval, move every baseline toward the cycle's percentile: by
    `learningRate` of the gap, at most `maxChangePercent` of the baseline. True if moved."""
    settings = config.circuit_breaker.auto_config.realtime_adaptation
    if not settings.enabled:
        return False
    for name, values in samples.items():
        state.samples.setdefault(name, []).append(values.copy())
    if not np.isfinite(state.adapt_at):
        state.adapt_at = now
        return False
    if now - state.adapt_at < settings.interval:
        return False
    for name, batch in state.samples.items():
        if not batch or name not in state.baselines:
            continue
        stacked = np.vstack(batch)
        seen = np.isfinite(stacked).any(axis=0)
        target = np.full(stacked.shape[1], np.nan)
        if seen.any():
            target[seen] = np.nanpercentile(stacked[:, seen], settings.percentile, axis=0)
        baseline = state.baselines[name]
        moving = seen & np.isfinite(baseline)
        step = settings.learning_rate * (target - baseline)
        bound = settings.max_change_percent / 100.0 * np.abs(baseline)
        step = np.clip(step, -bound, bound)
        baseline[moving] = baseline[moving] + step[moving]
        fresh = seen & ~np.isfinite(baseline)
        baseline[fresh] = target[fresh]
    state.samples = {}
    state.adapt_at = now
    return True
