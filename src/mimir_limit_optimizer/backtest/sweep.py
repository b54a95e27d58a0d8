"""Trade-off curves: each strategy replayed at several settings of its headroom knob, and the
comparison read along the curves rather than at one point per strategy.

A single point per strategy cannot tell "throttles less" from "carries more headroom": a
baseline whose limits sit below demand wins on headroom by under-provisioning. So each
strategy's knob is swept (ours: the buffer; the p95 x 1.2 formula and the KRR-like strategy:
their multiplier), every point is scored over the whole suite, and the curves of throttled
minutes (and churn) against median headroom are compared at EQUAL median headroom, by linear
interpolation, over the headroom range both curves cover.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mimir_limit_optimizer.backtest.case import Case
from mimir_limit_optimizer.backtest.replay import replay
from mimir_limit_optimizer.backtest.score import METRIC_DEFINITIONS, Score, score_replay, total
from mimir_limit_optimizer.backtest.strategies import GO_FORMULA, KRR, Ours, Strategy
from mimir_limit_optimizer.backtest.suite import BASELINES_TO_BEAT, score_fields
from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import Config

# The knob ranges of issue 13: ours' buffer in percent, the baselines' multipliers.
OURS_BUFFERS = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0)
GO_FORMULA_MULTIPLIERS = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6)
KRR_MULTIPLIERS = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5)
# Points of the common headroom grid the curves are compared on.
GRID_POINTS = 41
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Setting:
    """One point of a sweep: a strategy with its knob at `value`."""

    strategy: Strategy
    knob: str  # "buffer %" or "multiplier"
    value: float

    @property
    def label(self) -> str:
        return f"{self.value:g}%" if self.knob == "buffer %" else f"×{self.value:g}"


@dataclass(frozen=True)
class Curve:
    """One strategy's sweep: suite totals per knob value, in knob order."""

    strategy: str
    description: str
    knob: str
    values: tuple[float, ...]
    totals: tuple[Score, ...]

    def labels(self) -> list[str]:
        return [f"{v:g}%" if self.knob == "buffer %" else f"×{v:g}" for v in self.values]

    def along_headroom(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(median headroom, throttled minutes, churn), sorted by headroom (points without a
        headroom, i.e. without demand, are left out)."""
        rows = sorted(
            (s.headroom_median, s.throttled_minutes, float(s.churn))
            for s in self.totals
            if s.headroom_median is not None
        )
        array = np.array(rows, dtype=np.float64).reshape(-1, 3)
        return array[:, 0], array[:, 1], array[:, 2]


@dataclass(frozen=True)
class Comparison:
    """Ours against one baseline at equal median headroom, over the baseline's range.

    - `low`..`high`: the compared range (x, limit / p99 of true demand): from the lowest
      headroom both curves reach to the highest the baseline reaches. Above ours' highest
      point, ours is read at that point: it carries less headroom there than the baseline,
      so throttling less there is still a win at no more headroom (Pareto);
    - `coverage`: the compared range's share of the baseline's own range (below 1.0 when the
      baseline reaches lower headrooms than ours' curve: under-provisioned points that ours,
      with more headroom, cannot be compared with);
    - `ratio_median` / `ratio_min`: the baseline's throttled minutes / ours along the range
      (inf where ours throttles 0 minutes and the baseline does not), at grid points where
      the baseline throttles at all;
    - `dominates`: ours throttles strictly less at every such grid point, and no more where
      the baseline throttles 0;
    - `churn_ratio`: ours' churn / the baseline's, at worst along the range (<= 1: ours
      changes limits no more often at equal headroom)."""

    baseline: str
    low: float
    high: float
    coverage: float
    ratio_median: float
    ratio_min: float
    dominates: bool
    churn_ratio: float

    def sentence(self) -> str:
        if self.high < self.low:
            return f"ours' curve and {self.baseline}'s do not overlap in median headroom"
        span = f"{self.low:.2f}×–{self.high:.2f}×"
        churn = (
            f"{self.churn_ratio:.2f}× as often" if math.isfinite(self.churn_ratio) else "more often"
        )
        return (
            f"at the same median headroom ({span}, {self.coverage:.0%} of {self.baseline}'s "
            f"range), ours throttles {_times(self.ratio_median)} less than {self.baseline} "
            f"(at least {_times(self.ratio_min)}) and changes limits at most {churn}"
        )


def _times(ratio: float) -> str:
    return "∞×" if math.isinf(ratio) else f"{ratio:.1f}×"


@dataclass(frozen=True)
class SweepResult:
    curves: tuple[Curve, ...]  # ours first
    comparisons: tuple[Comparison, ...]  # one per baseline to beat that ran
    scenarios: tuple[str, ...]

    def curve(self, strategy: str) -> Curve:
        return next(c for c in self.curves if c.strategy == strategy)


def sweep_settings(
    config: Config,
    catalogue: Catalogue,
    *,
    buffers: Sequence[float] = OURS_BUFFERS,
    go_formula: Sequence[float] = GO_FORMULA_MULTIPLIERS,
    krr: Sequence[float] = KRR_MULTIPLIERS,
) -> list[Setting]:
    """Ours with `dynamicLimits.defaultBuffer` at each buffer (a tier's bufferPercentage or a
    limit's bufferFactor in `config` still take precedence), then the baselines with their
    multiplier on both limit types."""
    settings: list[Setting] = []
    for buffer in buffers:
        tuned = config.model_copy(
            update={
                "dynamic_limits": config.dynamic_limits.model_copy(
                    update={"default_buffer": buffer}
                )
            }
        )
        settings.append(Setting(Ours(tuned, catalogue), "buffer %", buffer))
    for base, values in ((GO_FORMULA, go_formula), (KRR, krr)):
        for value in values:
            strategy = dataclasses.replace(base, factor_rate=value, factor_count=value)
            settings.append(Setting(strategy, "multiplier", value))
    return settings


def run_sweep(
    cases: Sequence[Case], settings: Sequence[Setting], *, progress: Progress | None = None
) -> SweepResult:
    by_strategy: dict[str, list[tuple[float, Score]]] = {}
    descriptions: dict[str, tuple[str, str]] = {}
    count = len(cases) * len(settings)
    done = 0
    for setting in settings:
        name = setting.strategy.name
        scores: list[Score] = []
        for case in cases:
            scores.append(score_replay(replay(case, setting.strategy)))
            done += 1
            if progress is not None:
                progress(done, count, f"{name} {setting.label}: {case.name}")
        by_strategy.setdefault(name, []).append((setting.value, total(name, scores)))
        descriptions.setdefault(name, (setting.strategy.description, setting.knob))
    curves = tuple(
        Curve(
            strategy=name,
            description=descriptions[name][0],
            knob=descriptions[name][1],
            values=tuple(v for v, _ in sorted(points, key=lambda p: p[0])),
            totals=tuple(s for _, s in sorted(points, key=lambda p: p[0])),
        )
        for name, points in by_strategy.items()
    )
    names = [c.strategy for c in curves]
    comparisons = (
        tuple(
            compare(curves[names.index("ours")], curves[names.index(b)])
            for b in BASELINES_TO_BEAT
            if b in names
        )
        if "ours" in names
        else ()
    )
    return SweepResult(curves, comparisons, tuple(c.name for c in cases))


def compare(ours: Curve, baseline: Curve) -> Comparison:
    """Interpolate both curves on a common grid over the headroom range both span."""
    ox, oy, oc = ours.along_headroom()
    bx, by, bc = baseline.along_headroom()
    nan = math.nan
    if len(ox) == 0 or len(bx) == 0:
        return Comparison(baseline.strategy, nan, nan, 0.0, nan, nan, False, nan)
    low, high = max(ox[0], bx[0]), bx[-1]
    if high < low:
        return Comparison(baseline.strategy, low, high, 0.0, nan, nan, False, nan)
    spread = bx[-1] - bx[0]
    coverage = 1.0 if spread <= 0 else float((high - low) / spread)
    grid = np.linspace(low, high, GRID_POINTS)
    # np.interp holds the end values beyond the last point: ours' highest-headroom point.
    mine, theirs = np.interp(grid, ox, oy), np.interp(grid, bx, by)
    busy = theirs > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(mine > 0, theirs / mine, np.inf)[busy]
    dominates = bool(busy.any() and (mine[busy] < theirs[busy]).all() and (mine <= theirs).all())
    my_churn, their_churn = np.interp(grid, ox, oc), np.interp(grid, bx, bc)
    with np.errstate(divide="ignore", invalid="ignore"):
        churn = np.where(their_churn > 0, my_churn / their_churn, np.where(my_churn > 0, np.inf, 0))
    return Comparison(
        baseline=baseline.strategy,
        low=float(low),
        high=float(high),
        coverage=coverage,
        ratio_median=float(np.median(ratios)) if ratios.size else nan,
        ratio_min=float(ratios.min()) if ratios.size else nan,
        dominates=dominates,
        churn_ratio=float(churn.max()),
    )


def _number(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf"  # JSON has no infinity: ours throttled 0 minutes where the baseline did
    return round(value, 3)


def sweep_document(result: SweepResult) -> dict[str, Any]:
    return {
        "definitions": dict(METRIC_DEFINITIONS),
        "scenarios": list(result.scenarios),
        "curves": [
            {
                "strategy": c.strategy,
                "description": c.description,
                "knob": c.knob,
                "points": [
                    {"knob": v, **score_fields(s)} for v, s in zip(c.values, c.totals, strict=True)
                ],
            }
            for c in result.curves
        ],
        "comparisons": [
            {
                "baseline": c.baseline,
                "headroom_low": _number(c.low),
                "headroom_high": _number(c.high),
                "coverage": _number(c.coverage),
                "throttled_ratio_median": _number(c.ratio_median),
                "throttled_ratio_min": _number(c.ratio_min),
                "ours_dominates": c.dominates,
                "churn_ratio_max": _number(c.churn_ratio),
                "summary": c.sentence(),
            }
            for c in result.comparisons
        ],
    }
