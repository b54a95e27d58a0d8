"""The tenant list of the UI: one row per tenant, built once per cycle (vectorised over
tenants) and then filtered, sorted and paged per request without touching the engine.

Statuses, first match wins: breaker open, throttled (discards seen), undefined (no limit could
be recommended), near limit (usage p95 >= 90% of a usage-driven limit), over-provisioned
(every usage-driven limit at least 3x its usage p95), ok.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mimir_limit_optimizer.catalogue import SignalKind
from mimir_limit_optimizer.engine.results import CHANGE, UNDEFINED, Reason, Recommendations
from mimir_limit_optimizer.web.ui.model import Page, TenantQuery, TenantRow, TenantStatus, UiError

NEAR_LIMIT = 0.9  # usage p95 / limit at or above this: near limit
OVER_PROVISIONED = 1 / 3  # every usage-driven limit's p95 / limit below this: over-provisioned
THROTTLED = Reason.DISCARDS_ADDED | Reason.THROTTLED_NOW | Reason.THROTTLE_FLOOR


@dataclass(frozen=True)
class TenantIndex:
    rows: tuple[TenantRow, ...]
    by_name: Mapping[str, int]

    @classmethod
    def empty(cls) -> TenantIndex:
        return cls((), {})

    @classmethod
    def from_recommendations(
        cls,
        recs: Recommendations,
        *,
        open_breakers: Collection[str] = (),
        costs: Mapping[str, float] | None = None,
        currency: str = "",
    ) -> TenantIndex:
        n = len(recs.tenants)
        utilisation = np.full(n, np.nan)
        which = np.full(n, -1)
        throttled = np.zeros(n, dtype=bool)
        defined = np.zeros(n, dtype=bool)
        changes = np.zeros(n, dtype=np.int64)
        all_low = np.ones(n, dtype=bool)
        any_usage = np.zeros(n, dtype=bool)
        names = list(recs.results)
        for k, result in enumerate(recs.results.values()):
            changes += result.status == CHANGE
            defined |= result.status != UNDEFINED
            throttled |= (result.flags & int(THROTTLED)) != 0
            if result.spec.signal is not SignalKind.USAGE:
                continue
            current = np.asarray(result.current, dtype=np.float64)
            p95 = np.asarray(result.p95, dtype=np.float64)
            ok = np.isfinite(current) & np.isfinite(p95) & (current > 0)
            ratio = np.where(ok, p95 / np.where(ok, current, 1.0), np.nan)
            higher = ok & ~(ratio <= utilisation)  # NaN-safe "greater than the best so far"
            utilisation = np.where(higher, ratio, utilisation)
            which = np.where(higher, k, which)
            any_usage |= ok
            all_low &= ~ok | (ratio < OVER_PROVISIONED)
        rows = []
        for i, tenant in enumerate(recs.tenants):
            u = float(utilisation[i])
            status: TenantStatus
            if tenant in open_breakers:
                status = "breaker open"
            elif throttled[i]:
                status = "throttled"
            elif not defined[i]:
                status = "undefined"
            elif np.isfinite(u) and u >= NEAR_LIMIT:
                status = "near limit"
            elif any_usage[i] and all_low[i]:
                status = "over-provisioned"
            else:
                status = "ok"
            rows.append(
                TenantRow(
                    tenant=tenant,
                    status=status,
                    utilisation=u if np.isfinite(u) else None,
                    utilisation_limit=names[int(which[i])] if which[i] >= 0 else None,
                    changes=int(changes[i]),
                    cost=None if costs is None else costs.get(tenant),
                    currency=currency,
                )
            )
        return cls(tuple(rows), {r.tenant: i for i, r in enumerate(rows)})

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any]) -> TenantIndex:
        """Rows from the last cycle's checkpoint in the store (after a restart, before the
        first cycle): statuses and change counts; no utilisation (no percentiles stored)."""
        limits: Mapping[str, Mapping[str, list[Any]]] = checkpoint.get("limits", {})
        changes: dict[str, int] = {}
        defined: dict[str, bool] = {}
        for per_tenant in limits.values():
            for tenant, (_current, _recommended, status) in per_tenant.items():
                changes[tenant] = changes.get(tenant, 0) + (status == "change")
                defined[tenant] = defined.get(tenant, False) or status != "undefined"
        rows = tuple(
            TenantRow(
                tenant=t,
                status="ok" if defined[t] else "undefined",
                utilisation=None,
                utilisation_limit=None,
                changes=changes[t],
                cost=None,
            )
            for t in changes
        )
        return cls(rows, {r.tenant: i for i, r in enumerate(rows)})

    def query(self, q: TenantQuery) -> Page[TenantRow]:
        if q.page < 1 or not 1 <= q.per_page <= 500:
            raise UiError("page must be >= 1 and perPage between 1 and 500")
        rows: list[TenantRow] = list(self.rows)
        pattern = q.pattern.strip() or "*"
        if pattern != "*":
            glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
            matcher = re.compile(fnmatch.translate(glob), re.IGNORECASE).match
            rows = [r for r in rows if matcher(r.tenant)]
        if q.status is not None:
            rows = [r for r in rows if r.status == q.status]
        rows.sort(key=_SORTS[q.sort], reverse=q.descending)
        start = (q.page - 1) * q.per_page
        return Page(tuple(rows[start : start + q.per_page]), len(rows), q.page, q.per_page)


def _missing_last(value: float | None) -> tuple[bool, float]:
    return (value is not None, value if value is not None else 0.0)


_STATUS_RANK = {s: k for k, s in enumerate(("breaker open", "throttled", "near limit"))}
_SORTS: dict[str, Any] = {
    "tenant": lambda r: r.tenant,
    "utilisation": lambda r: (_missing_last(r.utilisation), r.tenant),
    "changes": lambda r: (r.changes, r.tenant),
    "cost": lambda r: (_missing_last(r.cost), r.tenant),
    "status": lambda r: (-_STATUS_RANK.get(r.status, 9), r.status, r.tenant),
}
