"""What the planning function needs from the outside, read for the service's cycle and for
`mlo plan` alike: when each limit last changed (the store's revisions of the target)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import Config, Mode
from mimir_limit_optimizer.engine.planning import GuardInputs, combine
from mimir_limit_optimizer.store import Store

if TYPE_CHECKING:
    from mimir_limit_optimizer.controller.cost import CostControl

# Marker in `last_changed` for "a rollback happened within the cooldown" (engine/safety.py).
ROLLED_BACK = ("*", "*")
# Revisions read back for the cooldown: far more than any cooldown holds in practice.
REVISIONS_READ = 200


def last_changed(store: Store, target: str, since: float) -> dict[tuple[str, str], float]:
    """When each tenant x limit was last changed on `target` since `since` (unix seconds)."""
    out: dict[tuple[str, str], float] = {}
    for revision in store.revisions(target, limit=REVISIONS_READ):
        if revision.created_at < since:
            break
        if revision.kind == "rollback":
            out[ROLLED_BACK] = revision.created_at  # a recent rollback holds every change
            continue
        if revision.kind != "apply":
            continue
        for row in revision.plan:
            key = (str(row["tenant"]), str(row["limit"]))
            out.setdefault(key, revision.created_at)
    return out


def stored_guards(
    config: Config,
    catalogue: Catalogue,
    store: Store,
    target: str,
    *,
    now: float,
    cost: CostControl | None = None,
) -> GuardInputs:
    """The guard inputs a prod cycle of the service would plan with now: the cooldowns from
    the target's revisions, protection's active caps from its checkpoint, and (with `cost`,
    when budget enforcement is on) the budget caps. Reads only; reports nothing."""
    prod = config.model_copy(update={"mode": Mode.PROD})
    from mimir_limit_optimizer.controller.protection import stored_caps

    parts = [stored_caps(store, prod)]
    if cost is not None:
        parts.append(cost.guard_inputs(prod, now))
    since = now - config.change_policy.cooldown
    del catalogue  # the caps are checked against the catalogue by the planning function
    return combine(parts, last_changed(store, target, since))
