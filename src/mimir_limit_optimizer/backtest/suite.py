"""Run every strategy on every case, score, total, and say who dominates whom."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mimir_limit_optimizer.backtest.case import Case
from mimir_limit_optimizer.backtest.replay import replay
from mimir_limit_optimizer.backtest.score import (
    METRIC_DEFINITIONS,
    Score,
    dominates,
    score_replay,
    total,
)
from mimir_limit_optimizer.backtest.strategies import Strategy

# Ours must Pareto-dominate these on the repository's suite (issue 4).
BASELINES_TO_BEAT = ("p95x1.2", "krr")
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class CaseInfo:
    name: str
    description: str
    tenants: int
    cycles: int
    step: float
    history: float  # seconds
    evaluation: float  # seconds


@dataclass(frozen=True)
class SuiteResult:
    strategies: tuple[tuple[str, str], ...]  # (name, description), ours first
    cases: tuple[CaseInfo, ...]
    scores: tuple[Score, ...]  # scenario-major, strategies in order
    totals: tuple[Score, ...]  # one per strategy, in order

    def total_of(self, strategy: str) -> Score:
        return next(s for s in self.totals if s.strategy == strategy)

    def dominance(self, ours: str = "ours") -> dict[str, bool]:
        """For each baseline to beat that ran: does `ours` Pareto-dominate it?"""
        names = {name for name, _ in self.strategies}
        if ours not in names:
            return {}
        mine = self.total_of(ours)
        return {
            other: dominates(mine, self.total_of(other))
            for other in BASELINES_TO_BEAT
            if other in names
        }


def run_suite(
    cases: Sequence[Case], strategies: Sequence[Strategy], *, progress: Progress | None = None
) -> SuiteResult:
    scores: list[Score] = []
    infos: list[CaseInfo] = []
    done, count = 0, len(cases) * len(strategies)
    for case in cases:
        cycles = 0
        for strategy in strategies:
            run = replay(case, strategy)
            cycles = run.cycles
            scores.append(score_replay(run))
            done += 1
            if progress is not None:
                progress(done, count, f"{case.name}: {strategy.name}")
        ts = case.timestamps
        infos.append(
            CaseInfo(
                name=case.name,
                description=case.description,
                tenants=len(case.tenants),
                cycles=cycles,
                step=case.step,
                history=case.history_end - float(ts[0]) + case.step,
                evaluation=float(ts[-1]) - case.history_end,
            )
        )
    totals = tuple(total(s.name, scores) for s in strategies)
    return SuiteResult(
        strategies=tuple((s.name, s.description) for s in strategies),
        cases=tuple(infos),
        scores=tuple(scores),
        totals=totals,
    )


def _number(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    return round(value, digits)


def score_fields(score: Score) -> dict[str, Any]:
    return {
        "strategy": score.strategy,
        "scenario": score.scenario,
        "tenants": score.tenants,
        "throttled_minutes": _number(score.throttled_minutes, 1),
        "dropped_samples": _number(score.dropped_samples, 0),
        "rejected_series": _number(score.rejected_series, 0),
        "headroom_median": _number(score.headroom_median, 3),
        "headroom_p90": _number(score.headroom_p90, 3),
        "churn": score.churn,
        "cycles": score.cycles,
    }


def suite_document(result: SuiteResult) -> dict[str, Any]:
    """The JSON document: one object per strategy x scenario, totals per strategy, the
    strategies and scenarios that ran, and the Pareto verdicts."""
    return {
        "strategies": [{"name": n, "description": d} for n, d in result.strategies],
        "scenarios": [
            {
                "name": c.name,
                "description": c.description,
                "tenants": c.tenants,
                "cycles": c.cycles,
                "step_seconds": c.step,
                "history_seconds": c.history,
                "evaluation_seconds": c.evaluation,
            }
            for c in result.cases
        ],
        "results": [score_fields(s) for s in result.scores],
        "totals": [score_fields(s) for s in result.totals],
        "ours_dominates": result.dominance(),
        "definitions": dict(METRIC_DEFINITIONS),
    }
