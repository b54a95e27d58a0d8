"""The dashboard's summary: mode and freeze, what was applied, pending and held back in the
last 24 h, throttled tenants, open breakers, and the health of the source, the store and each
alert channel."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mimir_limit_optimizer.controller.ui_parts import ServiceParts
from mimir_limit_optimizer.store import StoreError
from mimir_limit_optimizer.store.queries import count_actions
from mimir_limit_optimizer.web.ui.model import CyclePoint, Health, Overview, TenantRow

DAY = 86400.0

# The cycles kept for the charts and the tenant rows of the last cycle, read under the read
# model's lock.
CycleSnapshot = Callable[[], tuple[Sequence[CyclePoint], Sequence[TenantRow]]]


def build_overview(parts: ServiceParts, snapshot: CycleSnapshot) -> Overview:
    config = parts.config()
    now = parts.clock()
    try:
        counts = count_actions(
            parts.store,
            ("update_limits", "would_update_limits", "change_held_back"),
            since=now - DAY,
        )
        store_health = Health("store", True, parts.store.url)
    except StoreError as exc:
        counts, store_health = {}, Health("store", False, str(exc))
    try:
        status = parts.protection_status()
    except Exception as exc:
        status = {"lastError": str(exc)}
    breakers = status.get("circuitBreaker", {}).get("breakers", [])
    cycles, rows = snapshot()
    frozen_by = parts.runtime_freeze()
    _ok, body = parts.health.readyz(now)
    reachable = body.get("source_reachable")
    source = Health(
        "source",
        reachable is True,
        "not checked yet" if reachable is None else str(body.get("source_detail") or ""),
    )
    return Overview(
        mode=config.mode.value,
        frozen=config.safety.freeze or frozen_by is not None,
        frozen_by=frozen_by if frozen_by else ("config" if config.safety.freeze else None),
        tenants=len(rows),
        limits_managed=len(config.dynamic_limits.enabled_limits),
        applied_24h=counts.get("update_limits", 0),
        pending_24h=counts.get("would_update_limits", 0),
        held_back_24h=_held_back_since(parts, now - DAY),
        throttled_now=sum(1 for r in rows if r.status == "throttled"),
        open_breakers=sum(1 for b in breakers if b.get("state") == "open"),
        protection_enabled=bool(status.get("enabled", False)),
        emergency_level=str(status.get("emergency", {}).get("level", "unknown")),
        last_cycle=cycles[-1] if cycles else None,
        health=(source, store_health, *_channel_health(parts)),
        cycles=tuple(cycles),
        target=parts.applier.name,
    )


def _held_back_since(parts: ServiceParts, since: float) -> int:
    """Changes held back since `since`: one summarised event per cycle carries `count`
    (older per-change events count one each)."""
    try:
        events = parts.store.audit(action="change_held_back", since=since, limit=2000)
    except StoreError:
        return 0
    return sum(int(e.details.get("count", 1) or 0) for e in events)


def _channel_health(parts: ServiceParts) -> list[Health]:
    try:
        channels = parts.alerting_status().get("channels", [])
    except Exception as exc:
        return [Health("alerting", False, str(exc))]
    return [
        Health(f"alerts: {c['name']}", bool(c.get("healthy")), str(c.get("lastError") or ""))
        for c in channels
    ]
