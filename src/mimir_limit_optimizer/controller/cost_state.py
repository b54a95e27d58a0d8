"""Cost control's durable state: the per-day ledger, threshold and sticky-budget state, caps and
issued recommendations, as plain data in one checkpoint (`cost_control`), so a restart resumes
mid-month without re-reading it; and the collection that fills the ledger."""

from __future__ import annotations

import json
import logging
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mimir_limit_optimizer.engine.cost import CostUsage, Ledger, StickyScope, integrate_daily
from mimir_limit_optimizer.engine.cost.periods import DAY, HOUR
from mimir_limit_optimizer.sources.cost_signals import CostSource
from mimir_limit_optimizer.store import Store, StoreError

__all__ = ["CHECKPOINT_KEY", "CostState", "collect_into", "load_state", "save_state"]

CHECKPOINT_KEY = "cost_control"
STATE_VERSION = 1


@dataclass
class CostState:
    ledger: Ledger
    thresholds: dict[str, Any]
    sticky: dict[str, StickyScope]
    caps: dict[str, dict[str, Any]]  # "tenant|limit" -> what was capped (or would be)
    recommendations: list[str]

    def to_plain(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "ledger": self.ledger.to_plain(),
            "thresholds": self.thresholds,
            "sticky": {
                k: {
                    "scope": s.scope,
                    "period": s.period,
                    "periodKey": s.period_key,
                    "budget": s.budget,
                    "level": s.level if math.isfinite(s.level) else None,
                }
                for k, s in self.sticky.items()
            },
            "caps": self.caps,
            "recommendations": self.recommendations,
        }

    @classmethod
    def fresh(cls) -> CostState:
        return cls(Ledger(), {}, {}, {}, [])

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> CostState:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown cost state version {data.get('version')!r}")
        sticky = {
            k: StickyScope(
                v["scope"],
                v["period"],
                v["periodKey"],
                float(v["budget"]),
                math.inf if v["level"] is None else float(v["level"]),
            )
            for k, v in data["sticky"].items()
        }
        return cls(
            Ledger.from_plain(data["ledger"]),
            dict(data["thresholds"]),
            sticky,
            dict(data["caps"]),
            list(data["recommendations"]),
        )


def load_state(store: Store, log: logging.Logger) -> CostState:
    raw = store.load_checkpoint(CHECKPOINT_KEY)
    if raw is None:
        return CostState.fresh()
    try:
        return CostState.from_plain(json.loads(zlib.decompress(raw)))
    except (ValueError, KeyError, TypeError, zlib.error) as exc:
        log.warning("cost checkpoint unreadable, starting a new ledger: %s", exc)
        return CostState.fresh()


def save_state(store: Store, state: CostState, now: float, log: logging.Logger) -> None:
    data = zlib.compress(json.dumps(state.to_plain()).encode("utf-8"), 6)
    try:
        store.save_checkpoint(CHECKPOINT_KEY, data, at=now)
    except StoreError as exc:
        log.error("cannot checkpoint the cost state: %s", exc)


def collect_into(
    ledger: Ledger,
    source: CostSource,
    signals: Sequence[str],
    *,
    start: float,
    end: float,
) -> tuple[Ledger, CostUsage]:
    """`ledger` with [start, end] read from `source` one UTC day per query (a first backfill
    of weeks over thousands of tenants never holds more than a day in memory), and the last
    read, which covers at least the last hour (the current rates enforcement works with)."""
    windows: list[tuple[float, float]] = []
    first = start
    while True:
        day_end = (math.floor(first / DAY) + 1) * DAY
        if day_end >= end or end - day_end < HOUR:
            windows.append((min(first, end - HOUR) if windows else first, end))
            break
        windows.append((first, day_end))
        first = day_end + 1.0
    latest: CostUsage | None = None
    for low, high in windows:
        latest = source.collect_cost(signals, start=low, end=high)
        daily = integrate_daily(latest)
        ledger = ledger.merge(daily, collected_at=end, window=(low, high))
    assert latest is not None
    return ledger, latest
