"""`mlo` / `mimir-limit-optimizer`: recommend, plan, validate, limits, config show.

Exit codes: 0 ok; 1 nothing could be computed, or `validate` found problems; 2 bad
configuration or usage.
"""

from __future__ import annotations

import os
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from mimir_limit_optimizer.catalogue import Catalogue, load_catalogue
from mimir_limit_optimizer.cli import output
from mimir_limit_optimizer.config.loader import (
    ConfigError,
    LoadedConfig,
    load_config,
    render_config,
)
from mimir_limit_optimizer.controller.oneshot import Cycle, build_source, run_cycle
from mimir_limit_optimizer.engine.overrides import (
    OverridesParseError,
    format_problems,
    validate_overrides,
)
from mimir_limit_optimizer.engine.plan import render_plan
from mimir_limit_optimizer.engine.results import UNDEFINED
from mimir_limit_optimizer.sources.base import SourceError

app = typer.Typer(
    help="Recommend, plan and validate per-tenant Grafana Mimir limits from real usage.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"
    CSV = "csv"


class ModeOption(StrEnum):
    DRY_RUN = "dry-run"
    PROD = "prod"


class SourceOption(StrEnum):
    SYNTHETIC = "synthetic"
    PROMETHEUS = "prometheus"


ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Config file (YAML).", envvar="MLO_CONFIG")
]
ModeOpt = Annotated[ModeOption | None, typer.Option("--mode", help="dry-run (default) or prod.")]
SourceOpt = Annotated[
    SourceOption | None, typer.Option("--source", help="synthetic (default) or prometheus.")
]
PromUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--prometheus-url", help="Prometheus (or Mimir query) URL; implies --source prometheus."
    ),
]
OverridesOpt = Annotated[
    Path | None,
    typer.Option("--overrides-file", help="Runtime overrides file holding the current limits."),
]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")]
TenantsOpt = Annotated[
    list[str] | None,
    typer.Option("--tenants", help="Only tenants matching this glob (repeatable)."),
]
LimitsOpt = Annotated[
    str | None, typer.Option("--limits", help="Comma-separated limits (default: enabledLimits).")
]


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True).print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _load(
    config: Path | None,
    *,
    mode: ModeOption | None = None,
    source: SourceOption | None = None,
    prometheus_url: str | None = None,
    overrides_file: Path | None = None,
    limits: str | None = None,
    tenants: list[str] | None = None,
) -> tuple[LoadedConfig, Catalogue]:
    catalogue = load_catalogue()
    cli: dict[str, Any] = {}
    if mode is not None:
        cli["mode"] = mode.value
    if prometheus_url is not None:
        cli["source.prometheus.url"] = prometheus_url
        cli["source.kind"] = "prometheus"
    if source is not None:
        cli["source.kind"] = source.value
    if overrides_file is not None:
        cli["target.path"] = str(overrides_file)
    if limits:
        cli["dynamicLimits.enabledLimits"] = [n.strip() for n in limits.split(",") if n.strip()]
    if tenants:
        cli["tenantScoping.includeList"] = list(tenants)
    try:
        loaded = load_config(config, env=dict(os.environ), cli=cli, catalogue=catalogue)
    except ConfigError as exc:
        _fail(str(exc))
    err = Console(stderr=True)
    for warning in loaded.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    return loaded, catalogue


def _cycle(loaded: LoadedConfig, catalogue: Catalogue, *, quiet: bool) -> tuple[Cycle, str]:
    config = loaded.config
    now = time.time()
    source = build_source(config, now=now, env=dict(os.environ))
    description = source.describe()
    err = Console(stderr=True)
    try:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            console=err,
            transient=True,
            disable=quiet,
        ) as progress:
            task = progress.add_task(f"querying {description}", total=None)

            def report(done: int, total: int, label: str) -> None:
                progress.update(task, completed=done, total=total, description=label[:60])

            cycle = run_cycle(config, catalogue, source, now=now, progress=report)
    except SourceError as exc:
        _fail(f"could not collect usage: {exc}", code=1)
    except OverridesParseError as exc:
        _fail(f"{exc}\nThe overrides file was not changed.", code=2)
    for tenant, reason in cycle.skipped_tenants.items():
        err.print(f"[yellow]skipped tenant[/] {tenant!r}: {reason}", highlight=False)
    for name, reason in cycle.observation.unavailable.items():
        err.print(f"[yellow]{name} undefined:[/] {reason}", highlight=False)
    return cycle, description


def _wide_console() -> Console:
    """The terminal's width; 200 columns when piped (a log, `make run`), where Rich would
    otherwise squeeze the reasons column into 80."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _emit(text: str, output_file: Path | None) -> None:
    if output_file is None:
        sys.stdout.write(text)
    else:
        output_file.write_text(text, encoding="utf-8")


def _nothing_computed(cycle: Cycle) -> bool:
    results = cycle.recommendations.results.values()
    return bool(cycle.recommendations.tenants) is False or all(
        bool((r.status == UNDEFINED).all()) for r in results
    )


@app.command()
def recommend(
    config: ConfigOpt = None,
    mode: ModeOpt = None,
    source: SourceOpt = None,
    prometheus_url: PromUrlOpt = None,
    overrides_file: OverridesOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
    output_file: OutputOpt = None,
    tenants: TenantsOpt = None,
    limits: LimitsOpt = None,
) -> None:
    """Recommend limits per tenant: current, usage, demand, recommended value and why."""
    loaded, catalogue = _load(
        config,
        mode=mode,
        source=source,
        prometheus_url=prometheus_url,
        overrides_file=overrides_file,
        limits=limits,
        tenants=tenants,
    )
    cycle, description = _cycle(loaded, catalogue, quiet=fmt is not OutputFormat.TABLE)
    recs = cycle.recommendations
    if fmt is OutputFormat.TABLE and output_file is None:
        output.recommendations_table(recs, _wide_console())
    elif fmt is OutputFormat.CSV:
        _emit(output.recommendations_csv(recs), output_file)
    else:
        document = output.recommendations_document(
            recs, source=description, skipped=cycle.skipped_tenants
        )
        text = output.to_yaml(document) if fmt is OutputFormat.YAML else output.to_json(document)
        _emit(text, output_file)
    if _nothing_computed(cycle):
        _fail("no recommendation could be computed (see the reasons above)", code=1)


@app.command()
def plan(
    config: ConfigOpt = None,
    mode: ModeOpt = None,
    source: SourceOpt = None,
    prometheus_url: PromUrlOpt = None,
    overrides_file: OverridesOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
    output_file: OutputOpt = None,
    tenants: TenantsOpt = None,
    limits: LimitsOpt = None,
) -> None:
    """Show the changes the recommendations ask for, as a readable diff (nothing is written)."""
    loaded, catalogue = _load(
        config,
        mode=mode,
        source=source,
        prometheus_url=prometheus_url,
        overrides_file=overrides_file,
        limits=limits,
        tenants=tenants,
    )
    cycle, _ = _cycle(loaded, catalogue, quiet=fmt is not OutputFormat.TABLE)
    if fmt is OutputFormat.TABLE:
        _emit(render_plan(cycle.plan, catalogue), output_file)
    elif fmt is OutputFormat.CSV:
        _emit(output.plan_csv(cycle.plan), output_file)
    else:
        document = output.plan_document(cycle.plan)
        text = output.to_yaml(document) if fmt is OutputFormat.YAML else output.to_json(document)
        _emit(text, output_file)
    if _nothing_computed(cycle):
        _fail("no recommendation could be computed (see the reasons above)", code=1)


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Runtime overrides file to check.")],
) -> None:
    """Check a runtime overrides file against the limit catalogue (exit 1 on problems)."""
    catalogue = load_catalogue()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
    problems = validate_overrides(text, catalogue, source_name=str(file))
    if problems:
        sys.stdout.write(format_problems(problems, str(file)).rstrip("\n") + "\n")
        Console(stderr=True).print(
            f"[red]{len(problems)} problem(s):[/] Mimir would reject this file.", highlight=False
        )
        raise typer.Exit(1)
    Console(stderr=True).print(f"[green]ok:[/] {file} is a valid {catalogue.flavour} runtime file")


@app.command("limits")
def list_limits(fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """List the limit catalogue: every managed limit, its type, default and signal."""
    catalogue = load_catalogue()
    if fmt is OutputFormat.TABLE:
        output.limits_table(catalogue, _wide_console())
        return
    rows = [
        {
            "name": s.name,
            "type": s.type.value,
            "default": s.default,
            "unit": s.unit,
            "signal": s.signal.value,
            "category": s.category,
            "discard_reasons": list(s.discard_reasons),
            "checked_against": s.checked_against,
        }
        for s in catalogue.limits.values()
    ]
    if fmt is OutputFormat.CSV:
        lines = ["name,type,default,unit,signal,category,checked_against"]
        lines += [
            f"{r['name']},{r['type']},{r['default']},{r['unit']},{r['signal']},"
            f"{r['category']},{r['checked_against']}"
            for r in rows
        ]
        sys.stdout.write("\n".join(lines) + "\n")
        return
    doc = {"flavour": catalogue.flavour, "limits": rows}
    sys.stdout.write(output.to_yaml(doc) if fmt is OutputFormat.YAML else output.to_json(doc))


@config_app.command("show")
def config_show(
    config: ConfigOpt = None,
    mode: ModeOpt = None,
    source: SourceOpt = None,
    prometheus_url: PromUrlOpt = None,
    overrides_file: OverridesOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="yaml or json.")] = "yaml",
) -> None:
    """Print the effective configuration (defaults < file < environment < flags), secrets
    redacted."""
    if fmt not in ("yaml", "json"):
        _fail("--format must be yaml or json")
    loaded, _ = _load(
        config,
        mode=mode,
        source=source,
        prometheus_url=prometheus_url,
        overrides_file=overrides_file,
    )
    sys.stdout.write(render_config(loaded.config, fmt))  # type: ignore[arg-type]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
