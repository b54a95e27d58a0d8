"""One planning pipeline, shared by `mlo recommend`, `mlo plan`, the service's cycle (`mlo run`)
and the UI: observation, current limits, config, guard inputs and `now` in; a CyclePlan out.

    recommend -> changes -> protection holds -> budget caps -> safety caps -> CyclePlan

Pure: the guard inputs are plain data the controller gathered (when each limit last changed,
protection's active caps, budget caps), so what `plan` prints is what `run` writes when both
see the same inputs. Every item carries the engine's target (before any step limit), the step
the next write sets, and, when held back, why.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.cost.enforce import Cap, CapOutcome, apply_caps
from mimir_limit_optimizer.engine.current import merge_current
from mimir_limit_optimizer.engine.peak_memory import PeakMemory
from mimir_limit_optimizer.engine.plan import Change, Plan, build_plan
from mimir_limit_optimizer.engine.protection.guard import ProtectionCap, hold_caps
from mimir_limit_optimizer.engine.recommend import recommend
from mimir_limit_optimizer.engine.results import LimitResult, Recommendations
from mimir_limit_optimizer.engine.safety import HeldBack, apply_safety
from mimir_limit_optimizer.engine.usage import FloatArray, Observation

# The plan's read model: bump when a field changes meaning or goes away (docs/output.md).
PLAN_SCHEMA_VERSION = 1
Key = tuple[str, str]  # (tenant, limit)


@dataclass(frozen=True)
class GuardInputs:
    """What the guards know, as data. `last_changed[(tenant, limit)]`: unix time of the last
    applied change (("*", "*"): a rollback); `protection`: active protection caps; `budget`:
    budget caps, which shape the plan only when `budget_acting` (prod) and are otherwise
    reported as "would cap"."""

    last_changed: Mapping[Key, float] = field(default_factory=dict)
    protection: Mapping[Key, ProtectionCap] = field(default_factory=dict)
    budget: tuple[Cap, ...] = ()
    budget_acting: bool = False


@dataclass(frozen=True)
class PlanItem:
    """One tenant x limit that should move. `current` is the value in force, `target` the
    engine's answer before any step limit (NaN when a guard alone asks for the change),
    `step` the value the next write sets; `held` says why this cycle does not write it."""

    tenant: str
    limit: str
    current: float
    target: float
    step: float
    reasons: tuple[str, ...]
    held: str | None = None

    @property
    def change(self) -> Change:
        return Change(self.tenant, self.limit, self.current, self.step, self.reasons)


@dataclass(frozen=True)
class CyclePlan:
    recommendations: Recommendations
    items: tuple[PlanItem, ...]
    budget: tuple[CapOutcome, ...] = ()

    @functools.cached_property
    def writes(self) -> Plan:
        """The changes this cycle writes (prod, leader, complete collection)."""
        return Plan(tuple(i.change for i in self.items if i.held is None))

    @functools.cached_property
    def held_back(self) -> tuple[HeldBack, ...]:
        return tuple(HeldBack(i.change, i.held) for i in self.items if i.held is not None)

    def __len__(self) -> int:
        return len(self.items)


def plan_cycle(
    observation: Observation,
    current: Mapping[str, FloatArray],
    config: Config,
    catalogue: Catalogue,
    *,
    guards: GuardInputs,
    now: float,
    limits: Sequence[str] | None = None,
    memory: PeakMemory | None = None,
) -> CyclePlan:
    """The whole pipeline: `current` (per limit, aligned to observation.tenants; NaN: not
    set) comes from the overrides and wins over what the source reported; `memory` is the
    long-term peak memory the service keeps (engine/peak_memory.py)."""
    merged = merge_current(observation, current)
    recs = recommend(merged, config, catalogue, now=now, limits=limits, memory=memory)
    return plan_recommendations(recs, config, catalogue, guards=guards, now=now)


def plan_recommendations(
    recs: Recommendations,
    config: Config,
    catalogue: Catalogue,
    *,
    guards: GuardInputs,
    now: float,
) -> CyclePlan:
    """The guards and caps over finished recommendations (the second half of plan_cycle)."""
    plan = hold_caps(build_plan(recs), guards.protection, catalogue)
    outcomes: list[CapOutcome] = []
    if guards.budget:
        capped, outcomes = apply_caps(plan, recs, guards.budget)
        if guards.budget_acting:
            plan = capped
    safety = apply_safety(
        plan, config, last_changed=guards.last_changed, now=now, catalogue=catalogue
    )
    # Safety keeps each change (maybe stepped) or holds it with a reason; the plan's order.
    decided: dict[Key, tuple[Change, str | None]] = {
        (c.tenant, c.limit): (c, None) for c in safety.allowed.changes
    }
    for held in safety.held_back:
        decided[(held.change.tenant, held.change.limit)] = (held.change, held.reason)
    index = {tenant: i for i, tenant in enumerate(recs.tenants)}
    targets = {name: _target(result) for name, result in recs.results.items()}
    items: list[PlanItem] = []
    for c in plan.changes:
        final, why = decided[(c.tenant, c.limit)]
        row = index.get(c.tenant)
        values = targets.get(c.limit)
        target = values[row] if values is not None and row is not None else math.nan
        items.append(PlanItem(c.tenant, c.limit, c.old, target, final.new, final.reasons, why))
    return CyclePlan(recs, tuple(items), tuple(outcomes))


def _target(result: LimitResult) -> list[float]:
    """Per tenant, the engine's target before any step limit (NaN: none)."""
    target = result.target if result.target is not None else result.recommended
    return np.where(np.isfinite(target), target, math.nan).tolist()  # type: ignore[no-any-return]


def bounds(result: LimitResult, i: int) -> tuple[float, float]:
    """(lower, upper) of tenant i's target, in the limit's units, after the same buffer.

    The histogram strategy reports its lower and upper percentiles (the upper widened while
    history is short). The percentile strategy reports the median demand below and the
    higher of p99 and the demand estimate above, widened by up to 2x as confidence falls.
    The bounds always contain the target. NaN when the limit is not usage-driven."""
    target = result.target_of(i)
    if not math.isfinite(target) or not math.isfinite(float(result.demand[i])):
        return math.nan, math.nan
    if result.spec.signal.value != "usage-driven":
        return math.nan, math.nan
    buffer = 1.0 + float(result.buffer_percent[i]) / 100.0
    lower_arr: Any = result.extra.get("lower_bound")
    upper_arr: Any = result.extra.get("upper_bound")
    if lower_arr is not None and upper_arr is not None:
        lower, upper = float(lower_arr[i]) * buffer, float(upper_arr[i]) * buffer
    else:
        confidence = float(result.confidence[i])
        lower = float(result.p50[i]) * buffer
        high = max(float(result.p99[i]), float(result.demand[i]))
        upper = high * buffer * (2.0 - min(max(confidence, 0.0), 1.0))
    lower = min(lower, target) if math.isfinite(lower) else target
    upper = max(upper, target) if math.isfinite(upper) else target
    return lower, upper


def combine(parts: Sequence[GuardInputs], last_changed: Mapping[Key, float]) -> GuardInputs:
    """The inputs of several guards as one (caps of the same key: the lower wins)."""
    protection: dict[Key, ProtectionCap] = {}
    budget: list[Cap] = []
    acting = False
    for part in parts:
        for key, cap in part.protection.items():
            known = protection.get(key)
            if known is None or cap.value < known.value:
                protection[key] = cap
        budget.extend(part.budget)
        acting = acting or part.budget_acting
    return GuardInputs(dict(last_changed), protection, tuple(budget), acting)


def _plain(value: float) -> float | int | None:
    if not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)


def item_rows(plan: CyclePlan) -> list[dict[str, Any]]:
    """The plan's items as plain data (the stored plan, `mlo plan -f json`, the UI)."""
    return [
        {
            "tenant": i.tenant,
            "limit": i.limit,
            "current": _plain(i.current),
            "target": _plain(i.target),
            "recommended": _plain(i.step),
            "held": i.held,
            "reasons": list(i.reasons),
        }
        for i in plan.items
    ]
