"""UTC calendar periods: days are numbered from the Unix epoch (day 0 = 1970-01-01), months
and years are calendar months and years. Budgets, costs and alert state all use these."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Literal

DAY = 86400.0
HOUR = 3600.0
# Months of recommendations ("saves X per month") are 30 days: a price, not a calendar fact.
MONTH_30 = 30 * DAY

PeriodKind = Literal["day", "month", "year"]
PERIODS: tuple[PeriodKind, ...] = ("day", "month", "year")
# The budget key of each period kind (costControl.*.daily / monthly / annual).
BUDGET_NAMES: Mapping[PeriodKind, str] = MappingProxyType(
    {"day": "daily", "month": "monthly", "year": "annual"}
)

_EPOCH = date(1970, 1, 1)


def day_number(ts: float) -> int:
    """The UTC day holding instant `ts` (unix seconds)."""
    return math.floor(ts / DAY)


def day_date(number: int) -> date:
    return _EPOCH + timedelta(days=number)


def day_iso(number: int) -> str:
    return day_date(number).isoformat()


def day_from_iso(text: str) -> int:
    return (date.fromisoformat(text) - _EPOCH).days


def _date_of(ts: float) -> date:
    return datetime.fromtimestamp(ts, tz=UTC).date()


def period_key(kind: PeriodKind, ts: float) -> str:
    """`2024-01-15`, `2024-01` or `2024` for the period of `kind` holding `ts`."""
    d = _date_of(ts)
    if kind == "day":
        return d.isoformat()
    if kind == "month":
        return f"{d.year:04d}-{d.month:02d}"
    return f"{d.year:04d}"


def day_period_key(kind: PeriodKind, number: int) -> str:
    """period_key of the period of `kind` holding day `number`."""
    return period_key(kind, number * DAY)


def period_bounds(kind: PeriodKind, ts: float) -> tuple[float, float]:
    """[start, end) in unix seconds of the period of `kind` holding `ts`."""
    d = _date_of(ts)
    if kind == "day":
        start = datetime(d.year, d.month, d.day, tzinfo=UTC)
        end = start + timedelta(days=1)
    elif kind == "month":
        start = datetime(d.year, d.month, 1, tzinfo=UTC)
        end = datetime(d.year + d.month // 12, d.month % 12 + 1, 1, tzinfo=UTC)
    else:
        start = datetime(d.year, 1, 1, tzinfo=UTC)
        end = datetime(d.year + 1, 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


def days_of(kind: PeriodKind, ts: float) -> range:
    """Day numbers of the period of `kind` holding `ts`."""
    start, end = period_bounds(kind, ts)
    return range(day_number(start), day_number(end))


def backfill_start(now: float, fit_days: int) -> float:
    """Oldest instant the cost ledger wants: the month's start, or `fit_days` complete days
    back when that is earlier (the forecast fits its trend on them)."""
    month_start, _ = period_bounds("month", now)
    return min(month_start, day_number(now) * DAY - fit_days * DAY)
