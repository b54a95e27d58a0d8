"""The cost ledger: per tenant and UTC day, the integral of each signal (samples, series-hours,
queries, bytes), the seconds of the day the data covered, and when the day was last read.

Quantities, not money, are kept: a price change re-prices the whole period consistently. Days
of the current and the previous month are kept as days (the month-end forecast fits its trend
on them); older days of the current year are rolled up into months (for annual budgets); older
years are dropped. The ledger is an immutable value with a plain-data form for checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine.cost.periods import (
    DAY,
    PeriodKind,
    day_from_iso,
    day_iso,
    day_number,
    day_period_key,
    days_of,
    period_bounds,
    period_key,
)
from mimir_limit_optimizer.engine.cost.usage import DailyQuantities, IntArray
from mimir_limit_optimizer.engine.usage import FloatArray

BoolArray = npt.NDArray[np.bool_]

# A day is complete with this share of it covered (one missing 5-minute step is 0.35%).
COMPLETE_SHARE = 0.99
PLAIN_VERSION = 1


@dataclass(frozen=True)
class PeriodTotals:
    quantities: dict[str, FloatArray]  # signal -> (N,)
    coverage: float  # seconds of the period (so far) with data
    missing: frozenset[str]  # signals not collected on some covered day


@dataclass(frozen=True)
class Ledger:
    tenants: tuple[str, ...] = ()
    days: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    coverage: FloatArray = field(default_factory=lambda: np.zeros(0))
    collected_at: FloatArray = field(default_factory=lambda: np.zeros(0))
    quantities: Mapping[str, FloatArray] = field(default_factory=dict)  # (N, D)
    available: Mapping[str, BoolArray] = field(default_factory=dict)  # (D,)
    months: tuple[str, ...] = ()  # "YYYY-MM", rolled-up days of the current year
    month_coverage: FloatArray = field(default_factory=lambda: np.zeros(0))
    month_quantities: Mapping[str, FloatArray] = field(default_factory=dict)  # (N, M)
    month_available: Mapping[str, BoolArray] = field(default_factory=dict)  # (M,)

    # --- reading -------------------------------------------------------------------------
    def is_complete(self, day: int, *, settle: float) -> bool:
        """Fully covered, or read at least `settle` seconds after it ended (late data is in,
        whatever is still missing will never come)."""
        where = np.flatnonzero(self.days == day)
        if len(where) == 0:
            return False
        i = int(where[0])
        ended = (day + 1) * DAY
        return bool(
            self.coverage[i] >= COMPLETE_SHARE * DAY or self.collected_at[i] >= ended + settle
        )

    def collect_from(self, now: float, *, backfill_from: float, settle: float) -> float:
        """Start of the window to collect so that every day since `backfill_from` is read
        until complete: the first step of the oldest incomplete day (today at the latest)."""
        today = day_number(now)
        for day in range(day_number(backfill_from), today):
            if not self.is_complete(day, settle=settle):
                return max(day * DAY + 1.0, backfill_from)
        return max(today * DAY + 1.0, backfill_from)

    def signals(self) -> tuple[str, ...]:
        return tuple(self.quantities)

    def totals(self, kind: PeriodKind, now: float) -> PeriodTotals:
        """Quantities per tenant over the period of `kind` holding `now` (so far)."""
        n = len(self.tenants)
        in_period = np.isin(self.days, np.fromiter(days_of(kind, now), dtype=np.int64))
        key = period_key(kind, now)
        month_in = np.array([kind != "day" and m.startswith(key) for m in self.months], dtype=bool)
        quantities: dict[str, FloatArray] = {}
        missing: set[str] = set()
        covered_days = in_period & (self.coverage > 0)
        for signal, array in self.quantities.items():
            total = array[:, in_period].sum(axis=1) if n else np.zeros(0)
            if signal in self.month_quantities and month_in.any():
                total = total + self.month_quantities[signal][:, month_in].sum(axis=1)
                if not self.month_available[signal][month_in].all():
                    missing.add(signal)
            if not self.available[signal][covered_days].all():
                missing.add(signal)
            quantities[signal] = total
        coverage = float(self.coverage[in_period].sum())
        if month_in.any():
            coverage += float(self.month_coverage[month_in].sum())
        return PeriodTotals(quantities, coverage, frozenset(missing))

    # --- writing -------------------------------------------------------------------------
    def merge(
        self,
        daily: DailyQuantities,
        *,
        collected_at: float,
        window: tuple[float, float] | None = None,
    ) -> Ledger:
        """This ledger with `daily`'s days added; a day already present is replaced when the
        new reading covers at least as much of it (newer data wins at equal coverage).

        `window`: the [start, end] that was read. Its days without any data are recorded as
        read with nothing in them, so a past day the source has no data for (older than its
        retention) is not asked for again and again."""
        if window is not None:
            daily = _with_empty_days(daily, window)
        rolled = set(self.months)
        fresh = np.array([day_period_key("month", int(d)) not in rolled for d in daily.days], bool)
        if not fresh.all():  # days already rolled into a month are never counted twice
            daily = DailyQuantities(
                daily.tenants,
                daily.days[fresh],
                daily.coverage[fresh],
                {s: a[:, fresh] for s, a in daily.quantities.items()},
                daily.unavailable,
            )
        known = set(self.tenants)
        tenants = self.tenants + tuple(t for t in daily.tenants if t not in known)
        signals = tuple(dict.fromkeys((*self.quantities, *daily.quantities)))
        days = np.union1d(self.days, daily.days).astype(np.int64)
        n, d = len(tenants), len(days)
        old_cols = np.searchsorted(days, self.days)
        rows_old = np.arange(len(self.tenants))
        position = {t: i for i, t in enumerate(tenants)}
        rows_new = np.array([position[t] for t in daily.tenants], dtype=np.int64)

        coverage = np.zeros(d)
        coverage[old_cols] = self.coverage
        seen = np.zeros(d)
        seen[old_cols] = self.collected_at
        quantities = {s: np.zeros((n, d)) for s in signals}
        available = {s: np.zeros(d, dtype=bool) for s in signals}
        for s in signals:
            if s in self.quantities:
                quantities[s][np.ix_(rows_old, old_cols)] = self.quantities[s]
                available[s][old_cols] = self.available[s]

        new_cols = np.searchsorted(days, daily.days)
        replace = daily.coverage >= coverage[new_cols] - 1e-6
        cols = new_cols[replace]
        coverage[cols] = daily.coverage[replace]
        seen[new_cols] = np.maximum(seen[new_cols], collected_at)
        for s in signals:
            quantities[s][:, cols] = 0.0
            have = s in daily.quantities and s not in daily.unavailable
            available[s][cols] = have
            if have and len(rows_new):
                quantities[s][np.ix_(rows_new, cols)] = daily.quantities[s][:, replace]

        month_quantities = {
            s: _pad_rows(self.month_quantities[s], n)
            if s in self.month_quantities
            else np.zeros((n, len(self.months)))
            for s in signals
        }
        month_available = {
            s: self.month_available.get(s, np.zeros(len(self.months), dtype=bool)) for s in signals
        }
        return Ledger(
            tenants,
            days,
            coverage,
            seen,
            quantities,
            available,
            self.months,
            self.month_coverage,
            month_quantities,
            month_available,
        )

    def prune(self, now: float) -> Ledger:
        """Roll days before the previous month into months; drop what is older than the
        current year (months) or than the previous month (days)."""
        month_start, _ = period_bounds("month", now)
        previous_start, _ = period_bounds("month", month_start - DAY)
        year = period_key("year", now)
        keep = self.days >= day_number(previous_start)
        old = ~keep
        months = list(self.months)
        month_cov = list(self.month_coverage.tolist())
        month_q = {
            s: [self.month_quantities[s][:, j] for j in range(len(months))] for s in self.quantities
        }
        month_av = {s: list(self.month_available[s].tolist()) for s in self.quantities}
        for j in np.flatnonzero(old):
            day = int(self.days[j])
            key = day_period_key("month", day)
            if not key.startswith(year):
                continue
            if key not in months:
                months.append(key)
                month_cov.append(0.0)
                for s in self.quantities:
                    month_q[s].append(np.zeros(len(self.tenants)))
                    month_av[s].append(True)
            m = months.index(key)
            month_cov[m] += float(self.coverage[j])
            for s, array in self.quantities.items():
                month_q[s][m] = month_q[s][m] + array[:, j]
                if self.coverage[j] > 0 and not self.available[s][j]:
                    month_av[s][m] = False
        kept_months = [i for i, key in enumerate(months) if key.startswith(year)]
        n = len(self.tenants)
        return Ledger(
            self.tenants,
            self.days[keep],
            self.coverage[keep],
            self.collected_at[keep],
            {s: a[:, keep] for s, a in self.quantities.items()},
            {s: a[keep] for s, a in self.available.items()},
            tuple(months[i] for i in kept_months),
            np.array([month_cov[i] for i in kept_months], dtype=np.float64),
            {
                s: np.stack([month_q[s][i] for i in kept_months], axis=1)
                if kept_months
                else np.zeros((n, 0))
                for s in self.quantities
            },
            {
                s: np.array([month_av[s][i] for i in kept_months], dtype=bool)
                for s in self.quantities
            },
        )

    # --- plain data ----------------------------------------------------------------------
    def to_plain(self) -> dict[str, Any]:
        return {
            "version": PLAIN_VERSION,
            "tenants": list(self.tenants),
            "days": [day_iso(int(d)) for d in self.days],
            "coverage": self.coverage.tolist(),
            "collectedAt": self.collected_at.tolist(),
            "quantities": {s: a.tolist() for s, a in self.quantities.items()},
            "available": {s: a.tolist() for s, a in self.available.items()},
            "months": list(self.months),
            "monthCoverage": self.month_coverage.tolist(),
            "monthQuantities": {s: a.tolist() for s, a in self.month_quantities.items()},
            "monthAvailable": {s: a.tolist() for s, a in self.month_available.items()},
        }

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> Ledger:
        if data.get("version") != PLAIN_VERSION:
            raise ValueError(f"unknown ledger version {data.get('version')!r}")
        tenants = tuple(str(t) for t in data["tenants"])
        n = len(tenants)
        days = np.array([day_from_iso(d) for d in data["days"]], dtype=np.int64)
        months = tuple(str(m) for m in data["months"])

        def matrix(rows: Any, width: int) -> FloatArray:
            array = np.array(rows, dtype=np.float64)
            return array.reshape(n, width)

        return cls(
            tenants,
            days,
            np.array(data["coverage"], dtype=np.float64),
            np.array(data["collectedAt"], dtype=np.float64),
            {s: matrix(v, len(days)) for s, v in data["quantities"].items()},
            {s: np.array(v, dtype=bool) for s, v in data["available"].items()},
            months,
            np.array(data["monthCoverage"], dtype=np.float64),
            {s: matrix(v, len(months)) for s, v in data["monthQuantities"].items()},
            {s: np.array(v, dtype=bool) for s, v in data["monthAvailable"].items()},
        )


def _pad_rows(array: FloatArray, n: int) -> FloatArray:
    if array.shape[0] == n:
        return array
    out = np.zeros((n, array.shape[1]))
    out[: array.shape[0]] = array
    return out


def _with_empty_days(daily: DailyQuantities, window: tuple[float, float]) -> DailyQuantities:
    start, end = window
    wanted = np.arange(day_number(start), day_number(end) + 1, dtype=np.int64)
    extra = np.setdiff1d(wanted, daily.days)
    if len(extra) == 0:
        return daily
    days = np.concatenate([daily.days, extra])
    order = np.argsort(days, kind="stable")
    n = len(daily.tenants)
    return DailyQuantities(
        daily.tenants,
        days[order],
        np.concatenate([daily.coverage, np.zeros(len(extra))])[order],
        {
            s: np.concatenate([a, np.zeros((n, len(extra)))], axis=1)[:, order]
            for s, a in daily.quantities.items()
        },
        daily.unavailable,
    )
