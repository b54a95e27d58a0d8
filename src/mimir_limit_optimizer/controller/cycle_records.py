"""What a reconcile cycle keeps in the store besides its writes: the last cycle's results (a
restart knows where it stood), the cycle's whole plan (the UI reads it; the next cycle audits a
dry-run plan again only when it changed), the audit events of changes not applied, and the one
summarised event for what was held back. Store in, records out; no decisions here."""

from __future__ import annotations

import hashlib
import json
import zlib

import orjson

from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.plan import Plan
from mimir_limit_optimizer.engine.planning import PLAN_SCHEMA_VERSION, CyclePlan, item_rows
from mimir_limit_optimizer.engine.results import STATUS_ORDER, Recommendations
from mimir_limit_optimizer.store import AuditEvent, Store

CHECKPOINT_KEY = "last_cycle"
# When the store was recreated after its file was lost (controller/lost_store.py).
STORE_RECREATED_KEY = "store_recreated"
PLAN_KEY = "last_plan"  # the cycle's whole plan (items, held and why): the UI reads it
# Examples of held-back changes in the one summarised `change_held_back` event per cycle.
HELD_EXAMPLES = 5


def last_checkpoint(store: Store) -> dict[str, object] | None:
    """The last cycle's results saved by `save_checkpoint` (None before the first cycle)."""
    raw = store.load_checkpoint(CHECKPOINT_KEY)
    return None if raw is None else dict(json.loads(raw))


def last_plan(store: Store) -> dict[str, object] | None:
    """The last cycle's stored plan (see `save_plan`); None before the first."""
    raw = store.load_checkpoint(PLAN_KEY)
    return None if raw is None else dict(json.loads(zlib.decompress(raw)))


def write_digest(plan: Plan) -> str:
    """Identity of a set of writes: the same changes to the same values."""
    rows = sorted((c.tenant, c.limit, repr(c.old), repr(c.new)) for c in plan.changes)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def change_events(
    writes: Plan, now: float, action: str, config: Config, why: str | None = None
) -> list[AuditEvent]:
    """One event per change: `update_limits` for a write (stored with its revision), or a
    change not applied (dry-run, follower, partial collection) with `why`."""
    mode = config.mode.value
    extra = {} if why is None else {"why": why}
    return [
        AuditEvent(
            now,
            "info",
            "system",
            "controller",
            action,
            c.tenant,
            {
                "limit": c.limit,
                "old": c.old,
                "new": c.new,
                "reasons": list(c.reasons),
                "mode": mode,
                **extra,
            },
        )
        for c in writes.changes
    ]


def save_checkpoint(store: Store, recs: Recommendations, now: float) -> None:
    """The last cycle's results, so a restart knows where it stood. (Usage history itself
    lives in Prometheus: every cycle rebuilds its percentiles and histograms from there.)"""
    names = [s.value for s in STATUS_ORDER]
    limits = {}
    for name, r in recs.results.items():
        # tenant -> [current, recommended, status], built in C (dict/zip) and written by
        # orjson, which writes tuples as arrays and NaN and infinities as null.
        statuses = [names[k] for k in r.status.tolist()]
        rows = zip(r.current.tolist(), r.recommended.tolist(), statuses, strict=True)
        limits[name] = dict(zip(recs.tenants, rows, strict=True))
    payload = {"at": now, "window": list(recs.window), "limits": limits}
    store.save_checkpoint(CHECKPOINT_KEY, orjson.dumps(payload), at=now)


def save_plan(
    store: Store, plan: CyclePlan, config: Config, *, target: str, now: float, audited: str
) -> None:
    """The cycle's whole plan, held-back items and why included, for the UI and for the
    next cycle (which audits a dry-run plan again only when it changed)."""
    payload = {
        "version": PLAN_SCHEMA_VERSION,
        "at": now,
        "mode": config.mode.value,
        "target": target,
        "auditedDigest": audited,
        "items": item_rows(plan),
    }
    data = zlib.compress(orjson.dumps(payload), 1)  # level 1: ~2x faster, ~10% larger
    store.save_checkpoint(PLAN_KEY, data, at=now)


def store_recreated_hold(store: Store, config: Config, now: float) -> str:
    """Why applying waits after the store was recreated (its record of recent changes,
    which the cooldown needs, was lost), or ""."""
    raw = store.load_checkpoint(STORE_RECREATED_KEY)
    if raw is None:
        return ""
    at = float(json.loads(raw)["at"])
    if now - at >= config.change_policy.cooldown:
        return ""
    return (
        f"the store was recreated {max(0.0, now - at) / 60:.0f} min ago and lost the record "
        "of recent changes: applying resumes after changePolicy.cooldown"
    )


def held_back_details(plan: CyclePlan, config: Config) -> dict[str, object]:
    """The details of the one summarised `change_held_back` event per cycle for everything
    held back (at 10,000 tenants the per-cycle tenant cap alone holds thousands); each item
    and why is in the stored plan."""
    held = plan.held_back
    by_reason: dict[str, int] = {}
    for h in held:
        reason = h.reason.removeprefix("held: ")
        kind = reason.split(":", 1)[0] if ":" in reason[:40] else reason
        by_reason[kind] = by_reason.get(kind, 0) + 1
    return {
        "count": len(held),
        "tenants": len({h.change.tenant for h in held}),
        "reasons": by_reason,
        "examples": [
            {
                "tenant": h.change.tenant,
                "limit": h.change.limit,
                "old": h.change.old,
                "new": h.change.new,
                "reason": h.reason,
            }
            for h in held[:HELD_EXAMPLES]
        ],
        "mode": config.mode.value,
        "detail": f"the cycle's stored plan ({PLAN_KEY}) lists every held-back change",
    }
