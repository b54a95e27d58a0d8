"""One protection step: fast signals in, state advanced, events out. Pure: time is passed in,
nothing is read or written; the state is updated in place (the caller owns it) and returned.

What the step decides is held in `state.clamps`: per (tenant, limit) the caps in force and
the value to return to. The controller writes `Clamp.desired()` where it differs from the
target's content (prod), or reports it as "would" (dry-run), then calls `settle`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.protection.breaker import (
    learning_samples,
    step_breakers,
    step_global,
)
from mimir_limit_optimizer.engine.protection.model import BreakerState, Event, FastObservation, Kind
from mimir_limit_optimizer.engine.protection.policy import TenantPolicy, resolve_policy
from mimir_limit_optimizer.engine.protection.pressure import step_pressure
from mimir_limit_optimizer.engine.protection.state import ProtectionState
from mimir_limit_optimizer.engine.protection.thresholds import (
    KindThresholds,
    adapt_baselines,
    compute_thresholds,
    demand,
    seed_baselines,
)
from mimir_limit_optimizer.engine.protection.tick import Tick
from mimir_limit_optimizer.engine.usage import FloatArray

# A tenant not seen for this long, with every breaker closed and no clamp, is forgotten.
FORGET_AFTER = 3600.0

PolicyResolver = Callable[[Config, Sequence[str]], TenantPolicy]


@dataclass
class StepResult:
    state: ProtectionState
    events: list[Event]
    thresholds: dict[Kind, KindThresholds]
    demand: dict[str, FloatArray]
    limits: dict[str, FloatArray]  # in force, aligned to state.tenants
    adapted: bool


def _aligned(values: FloatArray, rows: np.ndarray) -> FloatArray:
    out = np.full(len(rows), np.nan)
    present = rows >= 0
    out[present] = values[rows[present]]
    return out


def _align_observation(
    obs: FastObservation, tenants: list[str], in_force: Mapping[str, FloatArray]
) -> tuple[FastObservation, dict[str, FloatArray]]:
    if list(obs.tenants) == tenants:
        return obs, {k: np.asarray(v, dtype=np.float64) for k, v in in_force.items()}
    index = {t: i for i, t in enumerate(obs.tenants)}
    rows = np.array([index.get(t, -1) for t in tenants], dtype=np.int64)
    aligned = FastObservation(
        at=obs.at,
        tenants=tuple(tenants),
        signals={k: _aligned(v, rows) for k, v in obs.signals.items()},
        limits={k: _aligned(v, rows) for k, v in obs.limits.items()},
        pressure=obs.pressure,
        components_down=obs.components_down,
        reload_ok=obs.reload_ok,
        unavailable=obs.unavailable,
        warmup={k: _aligned(v, rows) for k, v in obs.warmup.items()},
    )
    return aligned, {
        k: _aligned(np.asarray(v, dtype=np.float64), rows) for k, v in in_force.items()
    }


def _tenants_to_keep(state: ProtectionState, obs: FastObservation, now: float) -> list[str]:
    seen = set(obs.tenants)
    keep = list(obs.tenants)
    clamped = {tenant for tenant, _ in state.clamps}
    for i, tenant in enumerate(state.tenants):
        if tenant in seen:
            continue
        busy = any(table.state[i] != BreakerState.CLOSED for table in state.breakers.values())
        recent = np.isfinite(state.last_seen[i]) and now - state.last_seen[i] < FORGET_AFTER
        if busy or recent or tenant in clamped:
            keep.append(tenant)
    return keep


def step(
    state: ProtectionState,
    obs: FastObservation,
    in_force: Mapping[str, FloatArray],
    config: Config,
    catalogue: Catalogue,
    *,
    now: float,
    policy: PolicyResolver = resolve_policy,
) -> StepResult:
    """Advance `state` by one tick.

    `in_force[limit]` is (N,) aligned to `obs.tenants`: the value of each protected limit in
    force for each tenant (overrides file, exporter, configured and catalogue defaults);
    NaN where unknown. `policy` resolves per-tenant settings (callers pass a cached one)."""
    state.align(_tenants_to_keep(state, obs, now))
    aligned, limits = _align_observation(obs, state.tenants, in_force)
    wanted = demand(aligned)
    seen = np.zeros(len(state.tenants), dtype=bool)
    for values in wanted.values():
        seen |= np.isfinite(values)
    state.last_seen[seen] = now
    if aligned.warmup:
        seed_baselines(state, aligned.warmup)
    seed_baselines(state, wanted)
    tenant_policy = policy(config, state.tenants)
    thresholds = compute_thresholds(state, tenant_policy, limits, config)
    tick = Tick(
        state=state,
        obs=aligned,
        demand=wanted,
        limits=limits,
        policy=tenant_policy,
        thresholds=thresholds,
        config=config,
        catalogue=catalogue,
        now=now,
    )
    breaching = step_breakers(tick)
    step_global(tick)
    adapted = adapt_baselines(state, learning_samples(tick, breaching), config, now)
    step_pressure(tick)
    state.last_tick = now
    return StepResult(state, tick.events, thresholds, wanted, limits, adapted)


def settle(state: ProtectionState) -> list[tuple[str, str]]:
    """Forget clamps with no cap left that the controller no longer needs to restore
    (never written, or restored: `written` is None). Returns the pairs forgotten."""
    done = [
        key for key, clamp in state.clamps.items() if not clamp.active and clamp.written is None
    ]
    for key in done:
        del state.clamps[key]
    return done


def breaker_summary(state: ProtectionState) -> dict[str, int]:
    """Tenants per state: a tenant's state is its worst breaker (open > half-open > closed)."""
    worst = tenant_states(state)
    return {s.name.lower(): int((worst == int(s)).sum()) for s in BreakerState}


def tenant_states(state: ProtectionState) -> np.ndarray:
    """(N,) per tenant: OPEN if any breaker is open, else HALF_OPEN if any is, else CLOSED."""
    n = len(state.tenants)
    worst = np.zeros(n, dtype=np.int8)
    for table in state.breakers.values():
        worst = np.where(table.state == BreakerState.OPEN, BreakerState.OPEN, worst)
    for table in state.breakers.values():
        worst = np.where(
            (table.state == BreakerState.HALF_OPEN) & (worst != BreakerState.OPEN),
            BreakerState.HALF_OPEN,
            worst,
        )
    return worst
