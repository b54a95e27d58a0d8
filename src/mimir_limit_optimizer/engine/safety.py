"""Safety caps on a plan: what one cycle may apply. Pure: plan, config, last-change times and
`now` in; the allowed plan and the held-back changes (each with its reason) out.

Order: pinned tenants, cooldown, maximum relative change, then the maximum number of tenants
(raises first, so throttled tenants get their room before anyone is lowered; then the largest
moves). A freeze holds back everything.

A move larger than safety.maxChangePercent is not held back (it would then be held every
cycle, forever): it is stepped to the largest readable value within the cap, and the next
cycles step on from there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

from mimir_limit_optimizer.catalogue import Catalogue, LimitType
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.plan import Change, Plan
from mimir_limit_optimizer.engine.results import render_value
from mimir_limit_optimizer.engine.tenants import TenantMatcher


@dataclass(frozen=True)
class HeldBack:
    change: Change
    reason: str


@dataclass(frozen=True)
class SafetyResult:
    allowed: Plan
    held_back: tuple[HeldBack, ...]


def apply_safety(
    plan: Plan,
    config: Config,
    *,
    last_changed: Mapping[tuple[str, str], float],
    now: float,
    catalogue: Catalogue | None = None,
) -> SafetyResult:
    """`last_changed[(tenant, limit)]`: unix time of the last applied change of that limit;
    the key ("*", "*") marks a rollback, which holds every change for the cooldown (the plan
    that was rolled back would otherwise come straight back)."""
    safety = config.safety
    cooldown = config.change_policy.cooldown
    digits = config.change_policy.rounding_digits
    held: list[HeldBack] = []
    if safety.freeze:
        held = [HeldBack(c, "frozen: safety.freeze is on") for c in plan.changes]
        return SafetyResult(Plan(()), tuple(held))
    rolled_back = last_changed.get(("*", "*"))
    if rolled_back is not None and now - rolled_back < cooldown:
        ago = (now - rolled_back) / 60
        reason = f"a rollback {ago:.0f} min ago holds changes for changePolicy.cooldown"
        return SafetyResult(Plan(()), tuple(HeldBack(c, reason) for c in plan.changes))
    pinned = TenantMatcher(safety.pinned_tenants) if safety.pinned_tenants else None
    candidates: list[Change] = []
    max_percent = safety.max_change_percent
    for change in plan.changes:
        relative = change.relative
        when = last_changed.get((change.tenant, change.limit))
        if pinned is not None and pinned.matches(change.tenant):
            held.append(HeldBack(change, "pinned: listed in safety.pinnedTenants"))
        elif when is not None and now - when < cooldown:
            ago = (now - when) / 60
            held.append(
                HeldBack(change, f"cooldown: changed {ago:.0f} min ago (changePolicy.cooldown)")
            )
        elif relative is not None and abs(relative) * 100 > max_percent:
            stepped = _within(change, safety.max_change_percent, catalogue, digits)
            if stepped is None:
                held.append(
                    HeldBack(
                        change,
                        f"held: a {change.relative:+.0%} move exceeds safety.maxChangePercent "
                        f"({safety.max_change_percent:g}%)",
                    )
                )
            else:
                candidates.append(stepped)
        else:
            candidates.append(change)

    # Tenants ranked: any raise first, then by their largest relative move (one pass over the
    # candidates: at 10,000 tenants a scan per tenant would cost seconds).
    ranks: dict[str, tuple[int, float]] = {}
    for c in candidates:
        relative = c.relative
        move = abs(relative) if relative is not None else 1.0
        raises, biggest = ranks.get(c.tenant, (1, 0.0))
        ranks[c.tenant] = (0 if c.new > c.old else raises, min(biggest, -move))
    tenants = sorted(ranks, key=ranks.__getitem__)
    allowed_tenants = set(tenants[: safety.max_tenants_per_cycle])
    allowed: list[Change] = []
    over_cap = (
        f"more than safety.maxTenantsPerCycle ({safety.max_tenants_per_cycle}) "
        "tenants changing this cycle: next cycle"
    )
    for change in candidates:
        if change.tenant in allowed_tenants:
            allowed.append(change)
        else:
            held.append(HeldBack(change, over_cap))
    return SafetyResult(Plan(tuple(allowed)), tuple(held))


def _within(
    change: Change, percent: float, catalogue: Catalogue | None, digits: int
) -> Change | None:
    """`change` stepped to the largest readable move within `percent` of its old value, with a
    reason; None when no such step moves the value (then it is held)."""
    spec = catalogue.limits.get(change.limit) if catalogue is not None else None
    integer = spec is not None and spec.type in (LimitType.COUNT, LimitType.BYTES)
    if spec is not None and spec.type in (LimitType.BOOL, LimitType.DURATION):
        return None  # not a quantity to step
    up = change.new > change.old
    bound = change.old * (1 + percent / 100 if up else 1 - percent / 100)
    for places in range(digits, 16):  # coarse first: the most readable value that moves
        value = _toward(bound, change.old, places)
        if integer:
            value = float(math.floor(value) if up else math.ceil(value))
        if (value > change.old) if up else (value < change.old):
            shown = (
                (render_value(value, spec), render_value(change.new, spec))
                if spec is not None
                else (f"{value:g}", f"{change.new:g}")
            )
            why = (
                f"stepped to {shown[0]}: the engine's {shown[1]} is a "
                f"{change.relative:+.0%} move, more than safety.maxChangePercent "
                f"({percent:g}%) allows in one cycle"
            )
            return dataclasses.replace(change, new=value, reasons=(*change.reasons, why))
    return None


def _toward(value: float, origin: float, digits: int) -> float:
    """`value` rounded to `digits` significant digits in the direction of `origin`."""
    if value <= 0 or not math.isfinite(value):
        return value
    exponent = math.floor(math.log10(value)) - (digits - 1)
    scale = 10.0**exponent
    ratio = value / scale
    rounded = math.floor(ratio + 1e-9) if value > origin else math.ceil(ratio - 1e-9)
    return rounded * scale if exponent >= 0 else rounded / 10.0 ** (-exponent)
