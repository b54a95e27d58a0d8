"""`mlo` / `mimir-limit-optimizer`: recommend, plan, validate, limits, config show.

Exit codes: 0 ok; 1 nothing could be computed, or `validate` found problems; 2 bad
configuration or usage.
"""

from __future__ import annotations

import difflib
import io
import os
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mimir_limit_optimizer.catalogue import Catalogue, load_catalogue
from mimir_limit_optimizer.cli import output
from mimir_limit_optimizer.cli.common import (
    CommonOptions,
    FormatOpt,
    OutputFormat,
    OutputOpt,
    emit,
    fail,
    load,
    wide_console,
    with_common_options,
)
from mimir_limit_optimizer.cli.progress import collection_progress
from mimir_limit_optimizer.config.loader import LoadedConfig, render_config
from mimir_limit_optimizer.controller.oneshot import Cycle, build_source, run_cycle
from mimir_limit_optimizer.engine.overrides import (
    OverridesParseError,
    OverridesValueError,
    format_problems,
    parse_overrides,
    validate_overrides,
)
from mimir_limit_optimizer.engine.plan import apply_plan, render_plan
from mimir_limit_optimizer.engine.results import UNDEFINED
from mimir_limit_optimizer.sources.base import SourceError

app = typer.Typer(
    help="Recommend, plan and validate per-tenant Grafana Mimir limits from real usage.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


class PlanFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"
    CSV = "csv"
    PATCH = "patch"
    FILE = "file"


def _cycle(loaded: LoadedConfig, catalogue: Catalogue) -> tuple[Cycle, str]:
    """Collect and recommend, with a progress bar on stderr (shown on terminals only)."""
    config = loaded.config
    path = config.target.path
    if path and not Path(path).is_file():
        what = "is not a file" if Path(path).exists() else "does not exist"
        fail(f"overrides file {path} {what} (--overrides-file / target.path)")
    now = time.time()
    source = build_source(config, now=now, env=dict(os.environ))
    description = source.describe()
    err = Console(stderr=True, soft_wrap=True)
    try:
        with collection_progress(err, f"querying {description}") as report:
            cycle = run_cycle(config, catalogue, source, now=now, progress=report)
    except SourceError as exc:
        fail(f"could not collect usage: {exc}", code=1)
    except (OverridesParseError, OverridesValueError) as exc:
        fail(f"{exc}\nThe overrides file was not changed.", code=2)
    except OSError as exc:
        fail(f"cannot read the overrides file {path}: {exc.strerror}", code=2)
    for tenant, reason in cycle.skipped_tenants.items():
        err.print(f"[yellow]skipped tenant[/] {tenant!r}: {reason}", highlight=False)
    for name, reason in cycle.observation.unavailable.items():
        err.print(f"[yellow]{name} undefined:[/] {reason}", highlight=False)
    return cycle, description


def _nothing_computed(cycle: Cycle, description: str) -> str | None:
    """Why no recommendation at all could be computed (exit 1), or None."""
    if not cycle.observation.tenants:
        return (
            f"{description} returned no tenant (no series with a `user` label): check the URL, "
            "pathPrefix, tenant (X-Scope-OrgID) and selectors, and that Mimir is scraped"
        )
    if not cycle.recommendations.tenants:
        return "no tenant matches --tenants / tenantScoping"
    results = cycle.recommendations.results.values()
    if all(bool((r.status == UNDEFINED).all()) for r in results):
        return "every recommendation is undefined (see the reasons above)"
    return None


@app.command()
@with_common_options
def recommend(
    opts: CommonOptions,
    fmt: FormatOpt = OutputFormat.TABLE,
    output_file: OutputOpt = None,
) -> None:
    """Recommend limits per tenant: current, usage, demand, recommended value and why."""
    loaded, catalogue = load(opts)
    cycle, description = _cycle(loaded, catalogue)
    recs = cycle.recommendations
    if fmt is OutputFormat.TABLE and output_file is None:
        output.recommendations_table(recs, wide_console())
    elif fmt is OutputFormat.TABLE:
        recorder = Console(record=True, width=200, file=io.StringIO())
        output.recommendations_table(recs, recorder)
        emit(recorder.export_text(), output_file)
    elif fmt is OutputFormat.CSV:
        emit(output.recommendations_csv(recs), output_file)
    else:
        document = output.recommendations_document(
            recs, source=description, skipped=cycle.skipped_tenants
        )
        text = output.to_yaml(document) if fmt is OutputFormat.YAML else output.to_json(document)
        emit(text, output_file)
    if (why := _nothing_computed(cycle, description)) is not None:
        fail(f"no recommendation could be computed: {why}", code=1)


@app.command()
@with_common_options
def plan(
    opts: CommonOptions,
    fmt: Annotated[
        PlanFormat,
        typer.Option(
            "--format",
            "-f",
            help="table (readable diff), json, yaml, csv; patch (unified diff of the overrides "
            "file) or file (the full rendered file) for GitOps.",
        ),
    ] = PlanFormat.TABLE,
    output_file: OutputOpt = None,
) -> None:
    """Show the changes the recommendations ask for (nothing is written to any target)."""
    loaded, catalogue = load(opts)
    cycle, description = _cycle(loaded, catalogue)
    if fmt in (PlanFormat.PATCH, PlanFormat.FILE):
        emit(_rendered_plan(cycle, loaded, catalogue, patch=fmt is PlanFormat.PATCH), output_file)
    elif fmt is PlanFormat.TABLE:
        emit(render_plan(cycle.plan, catalogue), output_file)
    elif fmt is PlanFormat.CSV:
        emit(output.plan_csv(cycle.plan), output_file)
    else:
        document = output.plan_document(cycle.plan)
        text = output.to_yaml(document) if fmt is PlanFormat.YAML else output.to_json(document)
        emit(text, output_file)
    if (why := _nothing_computed(cycle, description)) is not None:
        fail(f"no recommendation could be computed: {why}", code=1)


def _rendered_plan(cycle: Cycle, loaded: LoadedConfig, catalogue: Catalogue, *, patch: bool) -> str:
    """The overrides file with the plan applied (or the unified diff to it), for teams that
    apply by pull request. Comments, order and unmanaged keys are kept."""
    path = loaded.config.target.path or "overrides.yaml"
    before = ""
    if Path(path).exists():
        before = Path(path).read_text(encoding="utf-8")
    document = parse_overrides(before, source_name=path)
    apply_plan(document, cycle.plan, catalogue)
    after = document.render()
    problems = validate_overrides(after, catalogue, source_name=path)
    if problems:
        fail("the rendered file would be rejected by Mimir:\n" + format_problems(problems, path))
    if not patch:
        return after
    name = path.lstrip("/")
    diff = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{name}",
        tofile=f"b/{name}",
    )
    return "".join(diff)


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Runtime overrides file to check.")],
) -> None:
    """Check a runtime overrides file against the limit catalogue (exit 1 on problems)."""
    catalogue = load_catalogue()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    problems = validate_overrides(text, catalogue, source_name=str(file))
    if problems:
        sys.stdout.write(format_problems(problems, str(file)).rstrip("\n") + "\n")
        Console(stderr=True, soft_wrap=True).print(
            f"[red]{len(problems)} problem(s):[/] Mimir would reject this file.", highlight=False
        )
        raise typer.Exit(1)
    Console(stderr=True, soft_wrap=True).print(
        f"[green]ok:[/] {file} is a valid {catalogue.flavour} runtime file"
    )


@app.command("limits")
def list_limits(fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """List the limit catalogue: every managed limit, its type, default and signal."""
    catalogue = load_catalogue()
    if fmt is OutputFormat.TABLE:
        output.limits_table(catalogue, wide_console())
        return
    rows = output.limit_rows(catalogue)
    if fmt is OutputFormat.CSV:
        output.emit_rows(rows, "csv")
        return
    doc = {"flavour": catalogue.flavour, "limits": rows}
    sys.stdout.write(output.to_yaml(doc) if fmt is OutputFormat.YAML else output.to_json(doc))


@config_app.command("show")
@with_common_options
def config_show(
    opts: CommonOptions,
    fmt: Annotated[str, typer.Option("--format", "-f", help="yaml or json.")] = "yaml",
) -> None:
    """Print the effective configuration (defaults < file < environment < flags), secrets
    redacted."""
    if fmt not in ("yaml", "json"):
        fail("--format must be yaml or json")
    loaded, _ = load(opts)
    sys.stdout.write(render_config(loaded.config, fmt))  # type: ignore[arg-type]
