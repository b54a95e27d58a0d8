"""Protection's status for the API: the runtime switch, breakers that are not closed (with the
value and threshold of the last tick), the emergency level and pressure, and every cap."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mimir_limit_optimizer.config.models import Config, Mode
from mimir_limit_optimizer.engine.protection import (
    KINDS,
    BreakerState,
    Level,
    ProtectionState,
    StepResult,
    breaker_summary,
)


def _plain(value: float) -> float | None:
    return value if math.isfinite(value) else None


def status_of(
    config: Config,
    state: ProtectionState,
    last: StepResult | None,
    *,
    enabled: bool,
    origin: str,
    last_error: str | None,
) -> dict[str, Any]:
    """The status document of `state` (plain JSON types)."""
    breakers = []
    for kind in KINDS:
        table = state.breakers[kind.value]
        for i in np.flatnonzero(table.state != BreakerState.CLOSED).tolist():
            value = threshold = math.nan
            if last is not None and i < len(last.demand[kind.value]):
                value = float(last.demand[kind.value][i])
                threshold = float(last.thresholds[kind].value[i])
            breakers.append(
                {
                    "tenant": state.tenants[i],
                    "kind": kind.value,
                    "state": BreakerState(int(table.state[i])).name.lower(),
                    "openedAt": _plain(float(table.opened_at[i])),
                    "relapses": int(table.relapses[i]),
                    "value": _plain(value),
                    "threshold": _plain(threshold),
                }
            )
    return {
        "mode": config.mode.value,
        "enabled": enabled,
        "enabledSource": origin,
        "acting": config.mode is Mode.PROD and enabled,
        "lastTick": _plain(state.last_tick),
        "lastError": last_error,
        "circuitBreaker": {
            "enabled": config.circuit_breaker.enabled,
            "mode": config.circuit_breaker.mode,
            "tenants": breaker_summary(state),
            "breakers": breakers,
        },
        "emergency": {
            "enabled": config.emergency.enabled,
            "level": Level(state.pressure.level).label,
            "since": _plain(state.pressure.level_since),
            "pressure": {k: _plain(v) for k, v in state.pressure.last.items() if math.isfinite(v)},
        },
        "clamps": [
            {
                "tenant": tenant,
                "limit": limit,
                "target": clamp.target,
                "breaker": clamp.breaker,
                "emergency": clamp.emergency,
                "desired": clamp.desired(),
                "written": clamp.written,
                "reasons": list(clamp.reasons),
            }
            for (tenant, limit), clamp in sorted(state.clamps.items())
        ],
    }
