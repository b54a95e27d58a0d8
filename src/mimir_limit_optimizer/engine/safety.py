"""Safety caps on a plan: what one cycle may apply. Pure: plan, config, last-change times and
`now` in; the allowed plan and the held-back changes (each with its reason) out.

Order: pinned tenants, cooldown, maximum relative change, then the maximum number of tenants
(raises first, so throttled tenants get their room before anyone is lowered; then the largest
moves). A freeze holds back everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.plan import Change, Plan
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
) -> SafetyResult:
    """`last_changed[(tenant, limit)]`: unix time of the last applied change of that limit;
    the key ("*", "*") marks a rollback, which holds every change for the cooldown (the plan
    that was rolled back would otherwise come straight back)."""
    safety = config.safety
    cooldown = config.change_policy.cooldown
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
    for change in plan.changes:
        when = last_changed.get((change.tenant, change.limit))
        if pinned is not None and pinned.matches(change.tenant):
            held.append(HeldBack(change, "pinned: listed in safety.pinnedTenants"))
        elif when is not None and now - when < cooldown:
            ago = (now - when) / 60
            held.append(
                HeldBack(change, f"cooldown: changed {ago:.0f} min ago (changePolicy.cooldown)")
            )
        elif change.relative is not None and abs(change.relative) * 100 > safety.max_change_percent:
            held.append(
                HeldBack(
                    change,
                    f"a {change.relative:+.0%} move exceeds safety.maxChangePercent "
                    f"({safety.max_change_percent:g}%)",
                )
            )
        else:
            candidates.append(change)

    # Tenants ranked: any raise first, then by their largest relative move. One pass over the
    # candidates (a per-tenant scan of all candidates was quadratic: minutes at 10k tenants).
    ranks: dict[str, tuple[int, float]] = {}
    for c in candidates:
        raises, biggest = ranks.get(c.tenant, (1, 0.0))
        move = abs(c.relative) if c.relative is not None else 1.0
        ranks[c.tenant] = (0 if c.new > c.old else raises, min(biggest, -move))
    tenants = sorted(ranks, key=ranks.__getitem__)
    allowed_tenants = set(tenants[: safety.max_tenants_per_cycle])
    allowed: list[Change] = []
    for change in candidates:
        if change.tenant in allowed_tenants:
            allowed.append(change)
        else:
            held.append(
                HeldBack(
                    change,
                    f"more than safety.maxTenantsPerCycle ({safety.max_tenants_per_cycle}) "
                    "tenants changing this cycle: next cycle",
                )
            )
    return SafetyResult(Plan(tuple(allowed)), tuple(held))
