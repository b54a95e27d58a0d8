"""The inputs of one step, aligned to the state's tenants, shared by the breaker and the
pressure machines."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.catalogue.units import format_number
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.protection.clamps import bounded, effective, tightened
from mimir_limit_optimizer.engine.protection.model import Event, FastObservation, Kind
from mimir_limit_optimizer.engine.protection.policy import TenantPolicy
from mimir_limit_optimizer.engine.protection.state import Clamp, ProtectionState
from mimir_limit_optimizer.engine.protection.thresholds import KindThresholds
from mimir_limit_optimizer.engine.usage import FloatArray


@dataclass
class Tick:
    state: ProtectionState
    obs: FastObservation  # aligned to state.tenants
    demand: dict[str, FloatArray]
    limits: dict[str, FloatArray]  # in force, aligned
    policy: TenantPolicy
    thresholds: dict[Kind, KindThresholds]
    config: Config
    catalogue: Catalogue
    now: float
    events: list[Event] = field(default_factory=list)

    def target_of(self, i: int, limit: str) -> float:
        """The value a new cap of tenant i's `limit` returns to: the existing entry's target,
        or the value in force now."""
        clamp = self.state.clamps.get((self.state.tenants[i], limit))
        return clamp.target if clamp is not None else float(self.limits[limit][i])

    def cap(
        self, i: int, limit: str, source: str, value: float, reason: str, *, depth: bool = True
    ) -> dict[str, object] | None:
        """Cap tenant i's `limit` at `value` (bounded; `depth` False for freezes at usage +
        margin, which only floors bound) for `source`; caps only tighten.
        Returns {"old", "new"} when the cap is (now) below the target, else None."""
        tenant = self.state.tenants[i]
        target = self.target_of(i, limit)
        if math.isnan(target):
            return None  # the value in force is unknown: nothing safe to compute
        new = bounded(value, target, limit, self.config, self.catalogue, depth=depth)
        if new >= effective(target, limit, self.catalogue):
            return None
        clamp = self.state.clamps.get((tenant, limit))
        if clamp is None:
            clamp = self.state.clamps[(tenant, limit)] = Clamp(target=target, since=self.now)
        current = clamp.breaker if source == "breaker" else clamp.emergency
        capped = tightened(current, new)
        if source == "breaker":
            clamp.breaker = capped
        else:
            clamp.emergency = capped
        clamp.start.pop(source, None)  # a (re)cap restarts that source's recovery
        clamp.steps.pop(source, None)
        if reason not in clamp.reasons:
            clamp.reasons = [*clamp.reasons[-4:], reason]
        return {"limit": limit, "old": target, "new": capped}


def fmt(value: float) -> str:
    if math.isnan(value):
        return "?"
    if math.isinf(value):
        return "unlimited"
    return format_number(value)
