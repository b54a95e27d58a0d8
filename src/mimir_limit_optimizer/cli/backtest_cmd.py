"""`mlo backtest`: replay scenario files (or recorded Prometheus history) against our engine
and the baselines, and score throttling, headroom and churn (docs/benchmarks.md)."""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from mimir_limit_optimizer.backtest.case import Case
from mimir_limit_optimizer.backtest.generate import build_case
from mimir_limit_optimizer.backtest.plot import plot_png
from mimir_limit_optimizer.backtest.recorded import case_from_observations
from mimir_limit_optimizer.backtest.scenario import load_scenarios
from mimir_limit_optimizer.backtest.score import Score
from mimir_limit_optimizer.backtest.strategies import default_strategies
from mimir_limit_optimizer.backtest.suite import SuiteResult, run_suite, suite_document
from mimir_limit_optimizer.catalogue import Catalogue, SignalKind
from mimir_limit_optimizer.catalogue.units import DurationError, format_number, parse_duration
from mimir_limit_optimizer.cli import output
from mimir_limit_optimizer.cli.app import app
from mimir_limit_optimizer.cli.common import (
    CommonOptions,
    ConfigOpt,
    OutputOpt,
    PromUrlOpt,
    SourceOpt,
    SourceOption,
    emit,
    fail,
    load,
    wide_console,
)
from mimir_limit_optimizer.config.errors import ConfigError
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.sources.base import SourceError
from mimir_limit_optimizer.sources.prometheus import PrometheusSource

# The repository's suite: bench/scenarios, found from the working directory or the checkout.
SUITE_DIR = Path("bench") / "scenarios"
DEFAULT_LIMITS = ("ingestion_rate", "max_global_series_per_user")


class BacktestFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def _duration(text: str, flag: str) -> float:
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        fail(f"{flag}: {exc}")
    if seconds <= 0:
        fail(f"{flag}: must be longer than 0s")
    return seconds


def repository_suite() -> Path | None:
    """bench/scenarios under the working directory, else under the source checkout."""
    checkout = Path(__file__).resolve().parents[3] / SUITE_DIR
    for candidate in (Path.cwd() / SUITE_DIR, checkout):
        if candidate.is_dir():
            return candidate
    return None


@app.command()
def backtest(
    scenarios: Annotated[
        list[Path] | None,
        typer.Option(
            "--scenarios",
            help="Scenario file or directory (repeatable; default: the repository's "
            "bench/scenarios).",
        ),
    ] = None,
    config: ConfigOpt = None,
    source: SourceOpt = None,
    prometheus_url: PromUrlOpt = None,
    history: Annotated[
        str, typer.Option("--history", help="Prometheus: history window before the evaluation.")
    ] = "7d",
    evaluation: Annotated[
        str, typer.Option("--evaluation", help="Prometheus: evaluation window (the truth).")
    ] = "1d",
    cycle: Annotated[
        str, typer.Option("--cycle", help="Prometheus: time between recommendation cycles.")
    ] = "30m",
    end: Annotated[
        float | None,
        typer.Option("--end", help="Prometheus: end of the evaluation (unix seconds; now)."),
    ] = None,
    limits: Annotated[
        str,
        typer.Option("--limits", help="Prometheus: comma-separated usage-driven limits."),
    ] = ",".join(DEFAULT_LIMITS),
    fmt: Annotated[
        BacktestFormat, typer.Option("--format", "-f", help="table or json.")
    ] = BacktestFormat.TABLE,
    output_file: OutputOpt = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG of throttling vs headroom.")
    ] = None,
) -> None:
    """Backtest our recommendations against p95 × 1.2 over 48 h (the original Go optimizer's
    formula), a KRR-like strategy, Mimir's defaults and "keep current": throttled minutes,
    dropped samples, rejected series, headroom and churn per scenario and in total."""
    loaded, catalogue = load(
        CommonOptions(config=config, source=source, prometheus_url=prometheus_url)
    )
    cfg = loaded.config
    err = Console(stderr=True, soft_wrap=True)
    if source is SourceOption.PROMETHEUS or prometheus_url is not None:
        cases = [
            _recorded_case(
                cfg,
                catalogue,
                history=_duration(history, "--history"),
                evaluation=_duration(evaluation, "--evaluation"),
                cycle=_duration(cycle, "--cycle"),
                end=end,
                limits=[n.strip() for n in limits.split(",") if n.strip()],
            )
        ]
    else:
        cases = _scenario_cases(scenarios, catalogue)
    for case in cases:
        for note in case.notes:
            err.print(f"[yellow]{case.name}:[/] {note}", highlight=False)

    strategies = default_strategies(cfg, catalogue)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("backtest", total=len(cases) * len(strategies))

        def report(done: int, total: int, label: str) -> None:
            progress.update(task, completed=done, total=total, description=label[:60])

        result = run_suite(cases, strategies, progress=report)

    if fmt is BacktestFormat.JSON:
        emit(output.to_json(suite_document(result)), output_file)
    elif output_file is None:
        render_tables(result, wide_console())
    else:
        recorder = Console(record=True, width=200, file=io.StringIO())
        render_tables(result, recorder)
        emit(recorder.export_text(), output_file)
    if plot is not None:
        try:
            plot.write_bytes(plot_png(result))
        except OSError as exc:
            fail(f"cannot write the plot {plot}: {exc.strerror}")
        err.print(f"plot written to {plot}", highlight=False)


def _scenario_cases(paths: Sequence[Path] | None, catalogue: Catalogue) -> list[Case]:
    if not paths:
        suite = repository_suite()
        if suite is None:
            fail(
                "no scenario file given and the repository's suite (bench/scenarios) is not "
                "here: pass --scenarios FILE, or run from the repository"
            )
        paths = [suite]
    missing = [p for p in paths if not p.exists()]
    if missing:
        fail(f"scenario file {missing[0]} does not exist (--scenarios)")
    try:
        return [build_case(s, catalogue) for s in load_scenarios(list(paths), catalogue)]
    except ConfigError as exc:
        fail(str(exc))


def _recorded_case(
    config: Config,
    catalogue: Catalogue,
    *,
    history: float,
    evaluation: float,
    cycle: float,
    end: float | None,
    limits: list[str],
) -> Case:
    """Collect the history window and the evaluation window that followed it, separately,
    with the same PrometheusSource the optimizer uses (see backtest/recorded.py)."""
    usage_driven = [n for n, s in catalogue.limits.items() if s.signal is SignalKind.USAGE]
    unknown = [n for n in limits if n not in usage_driven]
    if unknown or not limits:
        fail(f"--limits: {unknown or 'none given'}: use usage-driven limits ({usage_driven})")
    prom = config.source.prometheus
    step = prom.step
    last = math.floor((time.time() if end is None else end) / step) * step
    split = last - math.floor(evaluation / step) * step
    start = split - history
    specs = [catalogue.limits[n] for n in limits]
    source = PrometheusSource(
        prom, replication_factor=config.mimir.replication_factor, env=dict(os.environ)
    )
    try:
        past = source.collect(specs, start=start, end=split)
        truth = source.collect(specs, start=split + step, end=last)
        return case_from_observations(
            past,
            truth,
            specs,
            cycle=cycle,
            name="prometheus",
            description=f"{source.describe()}: history {history / 3600:g}h, "
            f"evaluation {evaluation / 3600:g}h ending {last:.0f}",
        )
    except SourceError as exc:
        fail(f"could not collect usage: {exc}", code=1)
    except ValueError as exc:  # RecordedDataError, or windows the grid cannot hold
        fail(f"cannot backtest on this data: {exc}", code=1)


def _number(value: float) -> str:
    return "0" if value == 0 else format_number(value)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _row(table: Table, first: str, score: Score) -> None:
    table.add_row(
        first,
        score.strategy,
        f"{score.throttled_minutes:,.0f}",
        _number(score.dropped_samples),
        _number(score.rejected_series),
        _ratio(score.headroom_median),
        _ratio(score.headroom_p90),
        str(score.churn),
    )


def _table(title: str, first: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(first)
    table.add_column("strategy")
    for name in ("throttled min", "dropped samples", "rejected series"):
        table.add_column(name, justify="right")
    table.add_column("headroom p50", justify="right")
    table.add_column("headroom p90", justify="right")
    table.add_column("churn", justify="right")
    return table


def render_tables(result: SuiteResult, console: Console) -> None:
    """Per scenario, then totals, then the Pareto verdicts."""
    per_case = _table("Backtest per scenario", "scenario")
    for info in result.cases:
        scores = [s for s in result.scores if s.scenario == info.name]
        for k, score in enumerate(scores):
            _row(per_case, info.name if k == 0 else "", score)
        per_case.add_section()
    console.print(per_case)
    totals = _table(f"Totals over {len(result.cases)} scenario(s)", "")
    for score in result.totals:
        _row(totals, "", score)
    console.print(totals)
    for other, ok in result.dominance().items():
        verdict = "[green]yes[/]" if ok else "[red]no[/]"
        console.print(
            f"ours Pareto-dominates {other} (fewer throttled minutes at no more median "
            f"headroom): {verdict}"
        )
    descriptions = "; ".join(f"{name}: {text}" for name, text in result.strategies)
    console.print(f"[dim]{descriptions}[/]", highlight=False)
