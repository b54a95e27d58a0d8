"""A plan's write set: the changes a set of recommendations asks for, and how they are applied
to an overrides document. engine/planning.py turns them into the full plan (target, next step,
held and why); cli/output.py renders it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.engine.overrides import OverridesDocument
from mimir_limit_optimizer.engine.results import CHANGE, Recommendations


@dataclass(frozen=True)
class Change:
    tenant: str
    limit: str
    old: float
    new: float
    reasons: tuple[str, ...]

    @property
    def relative(self) -> float | None:
        """Relative change (0.3 = +30%); None from 0."""
        return None if self.old == 0 else (self.new - self.old) / self.old


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]

    def __len__(self) -> int:
        return len(self.changes)

    def tenants(self) -> list[str]:
        return list(dict.fromkeys(c.tenant for c in self.changes))


def build_plan(recommendations: Recommendations) -> Plan:
    changes: list[Change] = []
    tenants = recommendations.tenants
    for result in recommendations.results.values():
        for i in np.flatnonzero(result.status == CHANGE):
            changes.append(
                Change(
                    tenant=tenants[i],
                    limit=result.spec.name,
                    old=float(result.current[i]),
                    new=float(result.recommended[i]),
                    reasons=tuple(result.reasons(int(i))),
                )
            )
    order = {t: k for k, t in enumerate(tenants)}
    changes.sort(key=lambda c: (order[c.tenant], c.limit))
    return Plan(tuple(changes))


def apply_plan(document: OverridesDocument, plan: Plan, catalogue: Catalogue) -> None:
    """Write every change of `plan` into `document` (in memory; the caller renders it)."""
    for change in plan.changes:
        document.set(change.tenant, change.limit, change.new, catalogue.limits[change.limit])
