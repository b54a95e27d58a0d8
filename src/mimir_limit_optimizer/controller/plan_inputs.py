"""What the planning function needs from the outside, read for the service's cycle and for
`mlo plan` alike: when each limit last changed (the store's revisions of the target), and the
caps the guards hold, and the engine's long-term peak memory. `guards_from_store` and
`memory_from_store` are the calls for a plan outside the service (the CLI, a UI preview)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from mimir_limit_optimizer.alerting.model import CollectingSink
from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import Config, Mode
from mimir_limit_optimizer.engine.peak_memory import PeakMemory
from mimir_limit_optimizer.engine.planning import GuardInputs, combine
from mimir_limit_optimizer.store import AuditLog, Store
from mimir_limit_optimizer.targets.base import Target

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


def guards_from_store(
    config: Config, catalogue: Catalogue, target: Target, now: float
) -> GuardInputs:
    """`stored_guards` from the service's store, for a plan outside the service (`mlo plan`,
    `mlo recommend`); none when the service has no store yet (a plan never creates one)."""
    from mimir_limit_optimizer.controller.cost import build_cost_control
    from mimir_limit_optimizer.controller.wiring import open_store, store_url

    url = store_url(config)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return GuardInputs()
    store = open_store(config)
    try:
        cost = None
        settings = config.cost_control
        if settings.enabled and settings.auto_limit_reduction:
            cost = build_cost_control(
                config,
                store=store,
                audit=AuditLog(store, logger=logging.getLogger("mimir_limit_optimizer.audit")),
                alerts=CollectingSink(),  # a plan alerts no one
                registry=CollectorRegistry(),
                catalogue=catalogue,
            )
        return stored_guards(config, catalogue, store, target.describe(), now=now, cost=cost)
    finally:
        store.close()


def memory_from_store(config: Config) -> PeakMemory | None:
    """The long-term peak memory the service saved (controller/peak_memory.py), for a plan
    outside the service; None when it is off or there is no store yet (a plan never creates
    one). Rows that do not decode are left out, as the service leaves them out."""
    from mimir_limit_optimizer.controller.peak_memory import load_memory
    from mimir_limit_optimizer.controller.wiring import open_store, store_url

    if config.trend_analysis.adaptive.long_term_window <= 0:
        return None
    url = store_url(config)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None
    store = open_store(config)
    try:
        memory, _problems = load_memory(store)
    finally:
        store.close()
    return memory
