"""Tables of `mlo backtest` (per scenario, totals, verdicts) and of `mlo backtest --sweep`
(one table per strategy's curve, then the comparisons at equal headroom), each followed by
what every column means and in which unit."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from mimir_limit_optimizer.backtest.score import METRIC_DEFINITIONS, Score
from mimir_limit_optimizer.backtest.suite import SuiteResult
from mimir_limit_optimizer.backtest.sweep import SweepResult
from mimir_limit_optimizer.catalogue.units import format_number

# Printed under every table: the columns' definitions and units (docs/benchmarks.md, Method).
COLUMN_DEFINITIONS = (
    f"throttled min: {METRIC_DEFINITIONS['throttled_minutes']}",
    f"dropped samples: {METRIC_DEFINITIONS['dropped_samples']}",
    f"rejected series: {METRIC_DEFINITIONS['rejected_series']}",
    f"headroom p50 / p90: {METRIC_DEFINITIONS['headroom']}",
    f"churn: {METRIC_DEFINITIONS['churn']}",
)


def _number(value: float) -> str:
    return "0" if value == 0 else format_number(value)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}×"


def _cells(score: Score) -> list[str]:
    return [
        f"{score.throttled_minutes:,.0f}",
        _number(score.dropped_samples),
        _number(score.rejected_series),
        _ratio(score.headroom_median),
        _ratio(score.headroom_p90),
        str(score.churn),
    ]


def _columns(table: Table) -> Table:
    for name in ("throttled min", "dropped samples", "rejected series"):
        table.add_column(name, justify="right")
    table.add_column("headroom p50", justify="right")
    table.add_column("headroom p90", justify="right")
    table.add_column("churn (changes)", justify="right")
    return table


def _table(title: str, first: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(first)
    table.add_column("strategy")
    return _columns(table)


def print_definitions(console: Console) -> None:
    for line in COLUMN_DEFINITIONS:
        console.print(f"[dim]- {line}[/]", highlight=False)


def render_tables(result: SuiteResult, console: Console) -> None:
    """Per scenario, then totals, then the Pareto verdicts and the columns' definitions."""
    per_case = _table("Backtest per scenario", "scenario")
    for info in result.cases:
        scores = [s for s in result.scores if s.scenario == info.name]
        for k, score in enumerate(scores):
            per_case.add_row(info.name if k == 0 else "", score.strategy, *_cells(score))
        per_case.add_section()
    console.print(per_case)
    totals = _table(f"Totals over {len(result.cases)} scenario(s)", "")
    for score in result.totals:
        totals.add_row("", score.strategy, *_cells(score))
    console.print(totals)
    ours = result.total_of("ours") if any(n == "ours" for n, _ in result.strategies) else None
    for other, ok in result.dominance().items():
        verdict = "[green]yes[/]" if ok else "[red]no[/]"
        theirs = result.total_of(other)
        detail = ""
        if ours is not None and ours.headroom_median and theirs.headroom_median:
            fewer = (
                f"{theirs.throttled_minutes / ours.throttled_minutes:.1f}× fewer"
                if ours.throttled_minutes > 0
                else "no"
            )
            detail = (
                f": {fewer} throttled minutes at "
                f"{ours.headroom_median / theirs.headroom_median:.3f}× its median headroom"
            )
        console.print(
            f"ours Pareto-dominates {other} at the default settings (fewer throttled minutes at "
            f"no more median headroom, within 1%): {verdict}{detail}; `--sweep` compares the "
            "trade-off curves at equal headroom",
            highlight=False,
        )
    descriptions = "; ".join(f"{name}: {text}" for name, text in result.strategies)
    console.print(f"[dim]{descriptions}[/]", highlight=False)
    print_definitions(console)


def render_sweep(result: SweepResult, console: Console) -> None:
    """One table per curve (suite totals at each knob value), then the comparisons."""
    for curve in result.curves:
        table = Table(
            title=f"{curve.strategy}: {curve.description} — {curve.knob} swept",
            title_justify="left",
        )
        table.add_column(curve.knob)
        _columns(table)
        for label, score in zip(curve.labels(), curve.totals, strict=True):
            table.add_row(label, *_cells(score))
        console.print(table)
    for comparison in result.comparisons:
        mark = "[green]dominates[/]" if comparison.dominates else "[red]does not dominate[/]"
        console.print(f"{comparison.sentence()}: ours {mark} along the curve", highlight=False)
    console.print(
        f"[dim]suite totals over {len(result.scenarios)} scenario(s); curves compared at "
        "equal median headroom by linear interpolation[/]",
        highlight=False,
    )
    print_definitions(console)
