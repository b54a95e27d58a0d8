"""The store's file deleted or replaced under the running service: writes would go to an
unlinked file and vanish at the next start, so the service recreates it and applies nothing
for one cooldown (docs/reliability.md)."""

from __future__ import annotations

import json
import logging

from mimir_limit_optimizer.alerting import Alert, AlertingManager, Priority, Severity
from mimir_limit_optimizer.controller.cycle_apply import CycleResult
from mimir_limit_optimizer.controller.cycle_records import STORE_RECREATED_KEY
from mimir_limit_optimizer.controller.reporter import audit_quietly
from mimir_limit_optimizer.observability.metrics import ControllerMetrics
from mimir_limit_optimizer.store import AuditEvent, AuditLog, Store, StoreError


def recreate_lost_store(
    store: Store,
    *,
    now: float,
    metrics: ControllerMetrics,
    log: logging.Logger,
    audit: AuditLog,
    alerting: AlertingManager,
) -> CycleResult | None:
    """None while the store's file is the one opened. Otherwise recreate it (records are
    durable again, alerts can be queued), record the loss, and return the failed cycle that
    applies nothing (the record of recent changes is gone); when it cannot be recreated, every
    cycle fails loudly."""
    problem = store.file_problem()
    if problem is None:
        return None
    metrics.errors_total.labels(component="store", reason="file_lost").inc()
    log.error("%s: nothing is applied; recreating the store", problem)
    try:
        store.reopen()
        store.save_checkpoint(
            STORE_RECREATED_KEY, json.dumps({"at": now, "problem": problem}).encode(), at=now
        )
    except StoreError as exc:
        detail = f"{problem}, and it cannot be recreated ({exc}): nothing is applied"
        log.error(detail)
        return CycleResult(False, detail=detail)
    detail = (
        f"{problem}: recreated empty (earlier history and audit are lost); nothing is "
        "applied for changePolicy.cooldown"
    )
    audit_quietly(
        audit,
        AuditEvent(now, "error", "system", "store", "store_lost", None, {"error": problem}),
        log,
    )
    alerting.emit(
        Alert("store_lost", Priority.P1, Severity.ERROR, detail, "store", "store_lost", now)
    )
    return CycleResult(False, detail=detail)
