"""A plan: the changes a set of recommendations asks for, and how they read as a diff."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.engine.overrides import OverridesDocument
from mimir_limit_optimizer.engine.results import CHANGE, Recommendations, render_value


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


def render_plan(plan: Plan, catalogue: Catalogue, *, with_reasons: bool = True) -> str:
    """A readable diff, grouped by tenant:

    tenant-a
      ~ ingestion_rate: 10K samples/s -> 13K samples/s (+30%)
          throttled: 12% of demand was discarded ...
    """
    if not plan.changes:
        return "No changes: every managed limit is where it should be.\n"
    lines: list[str] = []
    tenant = None
    for change in plan.changes:
        if change.tenant != tenant:
            tenant = change.tenant
            lines.append(tenant)
        spec = catalogue.limits[change.limit]
        rel = change.relative
        delta = f" ({rel:+.0%})" if rel is not None else " (from 0)"
        sign = "+" if change.new > change.old else "-"
        lines.append(
            f"  {sign} {change.limit}: {render_value(change.old, spec)} -> "
            f"{render_value(change.new, spec)}{delta}"
        )
        if with_reasons:
            lines.extend(f"      {reason}" for reason in change.reasons)
    raised = sum(1 for c in plan.changes if c.new > c.old)
    lines.append(
        f"{len(plan.changes)} change(s) for {len(plan.tenants())} tenant(s): "
        f"{raised} raised, {len(plan.changes) - raised} lowered"
    )
    return "\n".join(lines) + "\n"
