"""Who a cost belongs to: tenants, their teams (`costControl.teams`, tenant globs -> team) and
the whole cluster; and the budgets, enforcement mode and floors each is under.

Rows: every per-scope array has R = N tenants + T teams + 1 global rows, in that order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.config.cost import Budget, CostControlSettings, TenantBudget
from mimir_limit_optimizer.engine.cost.periods import PERIODS, PeriodKind
from mimir_limit_optimizer.engine.cost.usage import IntArray
from mimir_limit_optimizer.engine.tenants import first_match
from mimir_limit_optimizer.engine.usage import FloatArray

BoolArray = npt.NDArray[np.bool_]
GLOBAL = "global"


@dataclass(frozen=True)
class Scopes:
    tenants: tuple[str, ...]
    team_of: tuple[str | None, ...]  # (N,) None: in no team
    teams: tuple[str, ...]  # sorted
    team_index: IntArray  # (N,) index into `teams`, -1 for none

    @property
    def size(self) -> int:
        return len(self.tenants) + len(self.teams) + 1

    @property
    def global_row(self) -> int:
        return self.size - 1

    def team_row(self, team: str) -> int:
        return len(self.tenants) + self.teams.index(team)

    def keys(self) -> list[str]:
        """`tenant:<id>`, `team:<name>`, `global` (state and alert keys)."""
        return [
            *(f"tenant:{t}" for t in self.tenants),
            *(f"team:{t}" for t in self.teams),
            GLOBAL,
        ]

    def kind(self, row: int) -> str:
        n = len(self.tenants)
        return "tenant" if row < n else "team" if row < n + len(self.teams) else "global"

    def name(self, row: int) -> str:
        n = len(self.tenants)
        if row < n:
            return self.tenants[row]
        if row < n + len(self.teams):
            return self.teams[row - n]
        return GLOBAL

    def rows(self, per_tenant: FloatArray) -> FloatArray:
        """(N, ...) per-tenant values -> (R, ...): tenants, sums per team, the total."""
        values = np.asarray(per_tenant, dtype=np.float64)
        teams = np.zeros((len(self.teams), *values.shape[1:]))
        members = self.team_index >= 0
        np.add.at(teams, self.team_index[members], values[members])
        total = values.sum(axis=0, keepdims=True)
        return np.concatenate([values, teams, total], axis=0)

    def members(self, row: int) -> BoolArray:
        """(N,) tenants counted in scope row `row`."""
        kind = self.kind(row)
        if kind == "tenant":
            mask = np.zeros(len(self.tenants), dtype=bool)
            mask[row] = True
            return mask
        if kind == "team":
            return np.asarray(self.team_index == row - len(self.tenants), dtype=bool)
        return np.ones(len(self.tenants), dtype=bool)


def build_scopes(tenants: tuple[str, ...], settings: CostControlSettings) -> Scopes:
    team_of = tuple(first_match(t, settings.teams) if settings.teams else None for t in tenants)
    teams = tuple(sorted({t for t in team_of if t is not None} | set(settings.team_budgets)))
    index = {team: i for i, team in enumerate(teams)}
    team_index = np.array([-1 if t is None else index[t] for t in team_of], dtype=np.int64)
    return Scopes(tenants, team_of, teams, team_index)


def _tenant_entry(settings: CostControlSettings, tenant: str) -> TenantBudget | None:
    return first_match(tenant, settings.tenant_budgets) if settings.tenant_budgets else None


def budget_rows(settings: CostControlSettings, scopes: Scopes) -> dict[PeriodKind, FloatArray]:
    """Budget per scope row and period kind; NaN where there is none.

    A tenant's budget per period: its `tenantBudgets` entry (most specific glob), else
    `perTenantBudgets` (per field, so an entry setting only `enforceBudget` keeps the
    default amounts); an entry with `enabled: false` means no budget."""
    out = {kind: np.full(scopes.size, np.nan) for kind in PERIODS}
    default = settings.per_tenant_budgets.amounts()
    for i, tenant in enumerate(scopes.tenants):
        entry = _tenant_entry(settings, tenant)
        own = entry.amounts() if entry is not None else {}
        if entry is not None and not entry.enabled:
            continue
        for kind in PERIODS:
            value = own.get(kind)
            value = default[kind] if value is None else value
            if value is not None:
                out[kind][i] = value
    for team in scopes.teams:
        budget: Budget | None = settings.team_budgets.get(team)
        if budget is None:
            continue
        for kind, value in budget.amounts().items():
            if value is not None:
                out[kind][scopes.team_row(team)] = value
    for kind, value in settings.global_budget.amounts().items():
        if value is not None:
            out[kind][scopes.global_row] = value
    return out


def enforce_mask(settings: CostControlSettings, scopes: Scopes) -> BoolArray:
    """(N,) tenants in enforce mode (the Go tool's hybrid mode): the first `enforceBudget` set of
    the tenant's `tenantBudgets` entry, `perTenantBudgets`, its team's budget, `globalBudget`.
    Enforcement still needs prod mode and `autoLimitReduction`."""
    mask = np.zeros(len(scopes.tenants), dtype=bool)
    for i, tenant in enumerate(scopes.tenants):
        entry = _tenant_entry(settings, tenant)
        team = scopes.team_of[i]
        team_budget = settings.team_budgets.get(team) if team is not None else None
        for candidate in (entry, settings.per_tenant_budgets, team_budget, settings.global_budget):
            if candidate is not None and candidate.enforce_budget is not None:
                mask[i] = candidate.enforce_budget
                break
    return mask


def floor_values(settings: CostControlSettings, scopes: Scopes, limit: str) -> FloatArray:
    """(N,) floor of `limit` per tenant: the tenant entry's, `perTenantBudgets`', else
    `costControl.floors` (0 when none)."""
    base = float(settings.floors.get(limit, 0.0))
    default = settings.per_tenant_budgets.floors.get(limit)
    out = np.full(len(scopes.tenants), base if default is None else float(default))
    for i, tenant in enumerate(scopes.tenants):
        entry = _tenant_entry(settings, tenant)
        if entry is not None and limit in entry.floors:
            out[i] = float(entry.floors[limit])
    return out
