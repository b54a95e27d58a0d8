"""Budget alert thresholds as a state machine on plain data (checkpointed by the controller).

Per scope (`global`, `team:<name>`, `tenant:<id>`) and period kind (day, month, year), each
threshold (percent of the budget) FIRES the first time spend reaches it in a period, and never
again in that period; a fired threshold RESOLVES when spend is back under it (a raised budget)
or when its period ends. Spend to date only grows within a period, so in practice each
threshold fires once per period and resolves at the period's end.

State: {scope: {period kind: {"period": key, "fired": [percent...], "active": [percent...]}}}.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mimir_limit_optimizer.engine.cost.periods import PeriodKind

_EPSILON = 1e-9


@dataclass(frozen=True)
class BudgetCheck:
    scope: str
    period: PeriodKind
    period_key: str  # "2024-01-15", "2024-01", "2024"
    spent: float
    budget: float

    @property
    def percent(self) -> float:
        if self.budget > 0:
            return 100.0 * self.spent / self.budget
        return math.inf if self.spent > 0 else 0.0


@dataclass(frozen=True)
class ThresholdEvent:
    status: Literal["firing", "resolved"]
    scope: str
    period: PeriodKind
    period_key: str
    threshold: float  # percent
    percent: float | None  # spend as percent of the budget (None when no longer known)
    spent: float | None
    budget: float | None
    why: str  # "reached", "back under", "period ended", "budget removed"

    @property
    def dedup_key(self) -> str:
        return f"budget:{self.scope}:{self.period}:{self.period_key}:{self.threshold:g}"


def evaluate_thresholds(
    state: Mapping[str, Any],
    checks: Iterable[BudgetCheck],
    thresholds: Sequence[float],
) -> tuple[dict[str, Any], list[ThresholdEvent]]:
    """The next state and the events to send. `checks`: every scope x period with a budget
    now; state entries without a check (budget removed, scope gone) resolve and are dropped."""
    new: dict[str, Any] = copy.deepcopy(dict(state))
    events: list[ThresholdEvent] = []
    wanted = sorted(set(thresholds))
    seen: set[tuple[str, str]] = set()
    for check in checks:
        seen.add((check.scope, check.period))
        periods = new.setdefault(check.scope, {})
        entry = periods.get(check.period)
        if entry is not None and entry["period"] != check.period_key:
            events.extend(_resolve_all(check.scope, check.period, entry, "period ended"))
            entry = None
        if entry is None:
            entry = periods[check.period] = {"period": check.period_key, "fired": [], "active": []}
        percent = check.percent
        for threshold in sorted(set(entry["active"]) - set(wanted)):
            entry["active"].remove(threshold)
            events.append(_event("resolved", check, threshold, "threshold removed"))
        for threshold in wanted:
            reached = percent >= threshold - _EPSILON
            if reached and threshold not in entry["fired"]:
                entry["fired"].append(threshold)
                entry["active"].append(threshold)
                events.append(_event("firing", check, threshold, "reached"))
            elif not reached and threshold in entry["active"]:
                entry["active"].remove(threshold)
                events.append(_event("resolved", check, threshold, "back under"))
    for scope in list(new):
        for period in list(new[scope]):
            if (scope, period) not in seen:
                events.extend(_resolve_all(scope, period, new[scope][period], "budget removed"))
                del new[scope][period]
        if not new[scope]:
            del new[scope]
    return new, events


def _event(
    status: Literal["firing", "resolved"], check: BudgetCheck, threshold: float, why: str
) -> ThresholdEvent:
    return ThresholdEvent(
        status,
        check.scope,
        check.period,
        check.period_key,
        threshold,
        check.percent,
        check.spent,
        check.budget,
        why,
    )


def _resolve_all(scope: str, period: Any, entry: dict[str, Any], why: str) -> list[ThresholdEvent]:
    events = [
        ThresholdEvent("resolved", scope, period, entry["period"], t, None, None, None, why)
        for t in sorted(entry["active"])
    ]
    entry["active"] = []
    return events
