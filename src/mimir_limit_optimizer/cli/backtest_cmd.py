"""`mlo backtest`: replay scenario files (or recorded Prometheus history) against our engine
and the baselines, and score throttling, headroom and churn (docs/benchmarks.md)."""

from __future__ import annotations

import dataclasses
import difflib
import io
import math
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from mimir_limit_optimizer.backtest.case import Case
from mimir_limit_optimizer.backtest.generate import build_case
from mimir_limit_optimizer.backtest.plot import plot_png, plot_sweep_png
from mimir_limit_optimizer.backtest.recorded import case_from_observations
from mimir_limit_optimizer.backtest.scenario import load_scenarios
from mimir_limit_optimizer.backtest.strategies import default_strategies
from mimir_limit_optimizer.backtest.suite import run_suite, suite_document
from mimir_limit_optimizer.backtest.sweep import run_sweep, sweep_document, sweep_settings
from mimir_limit_optimizer.catalogue import Catalogue, SignalKind
from mimir_limit_optimizer.catalogue.units import DurationError, parse_duration
from mimir_limit_optimizer.cli import output
from mimir_limit_optimizer.cli.app import app
from mimir_limit_optimizer.cli.backtest_output import render_sweep, render_tables
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


def _moment(text: str | None, flag: str) -> float | None:
    """Unix seconds from an ISO 8601 time (`2026-12-01T00:00:00Z`, `2026-12-01`; no offset
    means UTC) or from unix seconds."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(
            f"{flag}: {text!r} is not a time: write 2026-12-01T00:00:00Z, 2026-12-01 or "
            "unix seconds"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


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
        str | None,
        typer.Option(
            "--end",
            help="Prometheus: end of the evaluation, as an ISO 8601 time "
            "(2026-12-01T00:00:00Z; no offset means UTC) or unix seconds (default: now).",
        ),
    ] = None,
    limits: Annotated[
        str | None,
        typer.Option(
            "--limits",
            help="Comma-separated usage-driven limits to backtest (Prometheus default: "
            f"{','.join(DEFAULT_LIMITS)}; scenario files: every limit they describe).",
        ),
    ] = None,
    fmt: Annotated[
        BacktestFormat, typer.Option("--format", "-f", help="table or json.")
    ] = BacktestFormat.TABLE,
    output_file: OutputOpt = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG of throttling vs headroom.")
    ] = None,
    sweep: Annotated[
        bool,
        typer.Option(
            "--sweep",
            help="Trade-off curves: replay each strategy with its headroom knob swept (ours: "
            "buffer 0-60%; p95 × 1.2 formula: multiplier 1.0-1.6; KRR-like: 1.0-1.5) and "
            "compare throttling and churn at equal median headroom.",
        ),
    ] = False,
) -> None:
    """Backtest our recommendations against p95 × 1.2 over 48 h (the original Go optimizer's
    formula), a KRR-like strategy, Mimir's defaults and "keep current": throttled minutes,
    dropped samples, rejected series, headroom and churn per scenario and in total."""
    loaded, catalogue = load(
        CommonOptions(config=config, source=source, prometheus_url=prometheus_url)
    )
    cfg = loaded.config
    err = Console(stderr=True, soft_wrap=True)
    chosen = None if limits is None else limit_names(limits, catalogue)
    if source is SourceOption.PROMETHEUS or prometheus_url is not None:
        cases = [
            _recorded_case(
                cfg,
                catalogue,
                history=_duration(history, "--history"),
                evaluation=_duration(evaluation, "--evaluation"),
                cycle=_duration(cycle, "--cycle"),
                end=_moment(end, "--end"),
                limits=list(chosen or DEFAULT_LIMITS),
            )
        ]
    else:
        cases = _scenario_cases(scenarios, catalogue)
        if chosen is not None:
            cases = only_limits(cases, chosen)
    for case in cases:
        for note in case.notes:
            err.print(f"[yellow]{case.name}:[/] {note}", highlight=False)

    strategies = default_strategies(cfg, catalogue)
    settings = sweep_settings(cfg, catalogue) if sweep else []
    runs = len(cases) * (len(settings) if sweep else len(strategies))
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("backtest", total=runs)

        def report(done: int, total: int, label: str) -> None:
            progress.update(task, completed=done, total=total, description=label[:60])

        if sweep:
            swept = run_sweep(cases, settings, progress=report)
        else:
            result = run_suite(cases, strategies, progress=report)

    if fmt is BacktestFormat.JSON:
        document = sweep_document(swept) if sweep else suite_document(result)
        emit(output.to_json(document), output_file)
    else:
        console = (
            wide_console()
            if output_file is None
            else Console(record=True, width=200, file=io.StringIO())
        )
        if sweep:
            render_sweep(swept, console)
        else:
            render_tables(result, console)
        if output_file is not None:
            emit(console.export_text(), output_file)
    if plot is not None:
        try:
            plot.write_bytes(plot_sweep_png(swept) if sweep else plot_png(result))
        except OSError as exc:
            fail(f"cannot write the plot {plot}: {exc.strerror}")
        err.print(f"plot written to {plot}", highlight=False)


def limit_names(text: str, catalogue: Catalogue) -> list[str]:
    """`--limits a,b`: usage-driven limits of the catalogue, else a clear error."""
    usage_driven = [n for n, s in catalogue.limits.items() if s.signal is SignalKind.USAGE]
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        fail(f"--limits: no limit given; use one or more of: {', '.join(usage_driven)}")
    for name in names:
        if name in usage_driven:
            continue
        if name in catalogue.limits:
            kind = catalogue.limits[name].signal.value
            fail(
                f"--limits: {name} is a {kind} limit; a backtest replays usage against "
                f"usage-driven limits only: {', '.join(usage_driven)}"
            )
        close = difflib.get_close_matches(name, list(catalogue.limits), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        fail(
            f"--limits: unknown limit {name!r}{hint}; usage-driven limits are: "
            f"{', '.join(usage_driven)}"
        )
    return names


def only_limits(cases: Sequence[Case], names: Sequence[str]) -> list[Case]:
    """The cases restricted to `names`; a case that describes none of them is left out."""
    kept: list[Case] = []
    for case in cases:
        specs = tuple(s for s in case.limits if s.name in names)
        if specs:
            kept.append(
                dataclasses.replace(
                    case,
                    limits=specs,
                    demand={s.name: case.demand[s.name] for s in specs},
                    current={s.name: case.current[s.name] for s in specs},
                )
            )
    if not kept:
        fail(f"--limits: no scenario describes {', '.join(names)}; drop --limits or add them")
    return kept


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
