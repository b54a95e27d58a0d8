"""Blast protection and panic mode, pure: fast signals and `now` in; per-tenant breaker
states, cluster pressure levels and clamps (tightenings of specific tenants' limits, each
with a reason, a floor and a recovery path) out. No clock, no I/O; state is plain data."""

from mimir_limit_optimizer.engine.protection.model import (
    BASELINES,
    KIND_LIMITS,
    KINDS,
    RESOURCES,
    SIGNALS,
    BreakerState,
    Event,
    FastObservation,
    Kind,
    Level,
)
from mimir_limit_optimizer.engine.protection.policy import TenantPolicy, resolve_policy
from mimir_limit_optimizer.engine.protection.state import Clamp, ProtectionState
from mimir_limit_optimizer.engine.protection.step import (
    StepResult,
    breaker_summary,
    settle,
    step,
    tenant_states,
)

__all__ = [
    "BASELINES",
    "KINDS",
    "KIND_LIMITS",
    "RESOURCES",
    "SIGNALS",
    "BreakerState",
    "Clamp",
    "Event",
    "FastObservation",
    "Kind",
    "Level",
    "ProtectionState",
    "StepResult",
    "TenantPolicy",
    "breaker_summary",
    "resolve_policy",
    "settle",
    "step",
    "tenant_states",
]
