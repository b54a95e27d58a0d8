"""`mlo` / `mimir-limit-optimizer`: recommend, plan, validate, limits, config show.

Exit codes: 0 ok; 1 nothing could be computed, or `validate` found problems; 2 bad
configuration or usage.

Only Typer and the option types are imported at module level: `mlo --help` and `mlo limits`
must start fast (bench/cli_startup.py). Everything else is imported by the command that uses
it, and the service, cost, alert and backtest commands live in modules loaded on first use
(cli/lazy.py).
"""

from __future__ import annotations

import difflib
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mimir_limit_optimizer import __version__
from mimir_limit_optimizer.cli.common import (
    CommonOptions,
    FormatOpt,
    OutputFormat,
    OutputOpt,
    check_output,
    emit,
    fail,
    load,
    stderr_console,
    wide_console,
    with_common_options,
)
from mimir_limit_optimizer.cli.lazy import LazyGroup

if TYPE_CHECKING:
    from mimir_limit_optimizer.catalogue import Catalogue
    from mimir_limit_optimizer.config.loader import LoadedConfig
    from mimir_limit_optimizer.config.models import Config
    from mimir_limit_optimizer.controller.oneshot import Cycle
    from mimir_limit_optimizer.targets.base import Target

app = typer.Typer(
    cls=LazyGroup,
    help="Recommend, plan and validate per-tenant Grafana Mimir limits from real usage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"mlo (mimir-limit-optimizer) {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            help="Print the version and exit.",
            callback=_show_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Recommend, plan and validate per-tenant Grafana Mimir limits from real usage."""


class PlanFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"
    CSV = "csv"
    PATCH = "patch"
    FILE = "file"


def _cycle(loaded: LoadedConfig, catalogue: Catalogue) -> tuple[Cycle, str]:
    """Collect and plan, with a progress bar on stderr (shown on terminals only). Current
    limits come from the configured target (file or ConfigMap); the guards (cooldowns,
    protection and budget caps) and the long-term peak memory from the service's store when
    there is one, so the plan is what `mlo run --mode prod` would write now."""
    import os

    from mimir_limit_optimizer.cli.progress import collection_progress
    from mimir_limit_optimizer.controller.oneshot import build_source, run_cycle
    from mimir_limit_optimizer.controller.plan_inputs import guards_from_store, memory_from_store
    from mimir_limit_optimizer.engine.overrides import OverridesParseError, OverridesValueError
    from mimir_limit_optimizer.engine.planning import GuardInputs
    from mimir_limit_optimizer.sources.base import SourceError
    from mimir_limit_optimizer.sources.current_limits import CurrentLimitsError
    from mimir_limit_optimizer.store import StoreError
    from mimir_limit_optimizer.targets.base import TargetError

    config = loaded.config
    path = config.target.path
    if config.target.kind == "file" and path and not Path(path).is_file():
        what = "is not a file" if Path(path).exists() else "does not exist"
        fail(f"overrides file {path} {what} (--overrides-file / target.path)")
    now = time.time()
    target = _target(config)
    try:
        source = build_source(config, now=now, env=dict(os.environ))
    except SourceError as exc:
        fail(f"cannot use the source: {exc}")
    description = source.describe()
    err = stderr_console()
    from rich.markup import escape

    try:
        guards = (
            GuardInputs() if target is None else guards_from_store(config, catalogue, target, now)
        )
        try:
            memory = memory_from_store(config)
        except StoreError as exc:  # an optional input: say so, and plan without it
            err.print(
                f"[yellow]long-term peak memory not read[/] ({escape(str(exc))}): planning "
                "without it; the service plans with it, so its limits may differ for tenants "
                "quiet for longer than the analysis window",
                highlight=False,
            )
            memory = None
        # Nothing for a short collection; after 2 s a bar with the known total on a
        # terminal, log lines otherwise (cli/progress.py).
        with collection_progress(err, f"querying {description}") as report:
            cycle = run_cycle(
                config,
                catalogue,
                source,
                now=now,
                progress=report,
                target=target,
                guards=guards,
                memory=memory,
            )
    except CurrentLimitsError as exc:
        fail(f"cannot read the current limits: {exc}")
    except SourceError as exc:
        fail(f"could not collect usage: {exc}", code=1)
    except (OverridesParseError, OverridesValueError) as exc:
        fail(f"{exc}\nThe overrides file was not changed.", code=2)
    except TargetError as exc:
        fail(f"cannot read the current limits: {exc}", code=2)
    except StoreError as exc:
        fail(f"cannot read the optimizer's store: {exc}", code=2)
    except OSError as exc:
        fail(f"cannot read the overrides file {path}: {exc.strerror}", code=2)
    for tenant, reason in cycle.skipped_tenants.items():
        err.print(f"[yellow]skipped tenant[/] {escape(repr(tenant))}: {escape(reason)}")
    for name, reason in cycle.observation.unavailable.items():
        err.print(f"[yellow]{name} undefined:[/] {escape(reason)}", highlight=False)
    return cycle, description


def _target(config: Config) -> Target | None:
    """The configured target (file or ConfigMap) to read current limits from; None when no
    file is configured (every current value then comes from the source)."""
    from mimir_limit_optimizer.controller.wiring import WiringError, build_target
    from mimir_limit_optimizer.targets.base import TargetError

    if config.target.kind == "configmap":
        from mimir_limit_optimizer.k8s.errors import KubeError  # the Kubernetes client: lazily

        try:
            return build_target(config)
        except (KubeError, TargetError) as exc:
            fail(str(exc))
    try:
        return build_target(config)
    except WiringError:
        return None
    except TargetError as exc:
        fail(str(exc))


def _nothing_computed(cycle: Cycle, description: str) -> str | None:
    """Why no recommendation at all could be computed (exit 1), or None."""
    if not cycle.observation.tenants:
        return (
            f"{description} returned no tenant (no series with a `user` label): check the URL, "
            "pathPrefix, tenant (X-Scope-OrgID) and selectors, and that Mimir is scraped"
        )
    if not cycle.recommendations.tenants:
        return (
            "no tenant matches --tenants / tenantScoping (globs are case-sensitive, as tenant "
            "ids are; separate several with commas)"
        )
    from mimir_limit_optimizer.engine.results import UNDEFINED

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
    import io

    from rich.console import Console

    from mimir_limit_optimizer.cli import output

    check_output(output_file)
    loaded, catalogue = load(opts)
    cycle, description = _cycle(loaded, catalogue)
    recs, planned = cycle.recommendations, cycle.plan
    if fmt is OutputFormat.TABLE and output_file is None:
        output.recommendations_table(recs, wide_console(), planned)
    elif fmt is OutputFormat.TABLE:
        recorder = Console(record=True, width=200, file=io.StringIO())
        output.recommendations_table(recs, recorder, planned)
        emit(recorder.export_text(), output_file)
    elif fmt is OutputFormat.CSV:
        emit(output.recommendations_csv(recs, planned), output_file)
    else:
        document = output.recommendations_document(
            recs, source=description, skipped=cycle.skipped_tenants, plan=planned
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
    """Show what `mlo run --mode prod` would write now: each change with the engine's target,
    the next step and, when held back (pins, freeze, cooldown, caps), why. Nothing is
    written to any target."""
    from mimir_limit_optimizer.cli import output

    check_output(output_file)
    loaded, catalogue = load(opts)
    cycle, description = _cycle(loaded, catalogue)
    if fmt in (PlanFormat.PATCH, PlanFormat.FILE):
        emit(_rendered_plan(cycle, loaded, catalogue, patch=fmt is PlanFormat.PATCH), output_file)
    elif fmt is PlanFormat.TABLE:
        emit(output.plan_text(cycle.plan, catalogue), output_file)
    elif fmt is PlanFormat.CSV:
        emit(output.plan_csv(cycle.plan), output_file)
    else:
        document = output.plan_document(cycle.plan)
        text = output.to_yaml(document) if fmt is PlanFormat.YAML else output.to_json(document)
        emit(text, output_file)
    if (why := _nothing_computed(cycle, description)) is not None:
        fail(f"no recommendation could be computed: {why}", code=1)


def _rendered_plan(cycle: Cycle, loaded: LoadedConfig, catalogue: Catalogue, *, patch: bool) -> str:
    """The overrides with this cycle's writes applied (or the unified diff to them), for teams
    that apply by pull request: exactly what `run` would write. Comments, order and unmanaged
    keys are kept."""
    from mimir_limit_optimizer.engine.overrides import (
        format_problems,
        parse_overrides,
        validate_overrides,
    )
    from mimir_limit_optimizer.engine.plan import apply_plan

    config = loaded.config
    if config.target.kind == "configmap":
        cm = config.target.config_map
        path = f"{cm.namespace}/{cm.name}/{cm.key}"
    else:
        path = config.target.path or str(Path(config.data_dir) / "overrides.yaml")
    before = cycle.content
    document = parse_overrides(before, source_name=path)
    apply_plan(document, cycle.plan.writes, catalogue)
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
    from mimir_limit_optimizer.catalogue import load_catalogue
    from mimir_limit_optimizer.engine.overrides import format_problems, validate_overrides

    catalogue = load_catalogue()
    if file.is_dir():
        fail(f"{file} is a directory: give the runtime overrides file")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        fail(
            f"{file} is not UTF-8 text (byte {exc.start}): Mimir reads the runtime file as "
            "UTF-8 YAML and would reject it; re-save it as UTF-8"
        )
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    problems = validate_overrides(text, catalogue, source_name=str(file))
    if problems:
        sys.stdout.write(format_problems(problems, str(file)).rstrip("\n") + "\n")
        stderr_console().print(
            f"[red]{len(problems)} problem(s):[/] Mimir would reject this file.", highlight=False
        )
        raise typer.Exit(1)
    sys.stdout.write(f"ok: {file} is a valid {catalogue.flavour} runtime file\n")


@app.command("limits")
def list_limits(fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """List the limit catalogue: every managed limit, its type, default and signal."""
    from mimir_limit_optimizer.catalogue import load_catalogue
    from mimir_limit_optimizer.cli import catalogue_output

    catalogue = load_catalogue()
    if fmt is OutputFormat.TABLE:
        catalogue_output.limits_table(catalogue, wide_console())
        return
    rows = catalogue_output.limit_rows(catalogue)
    if fmt is OutputFormat.CSV:
        sys.stdout.write(catalogue_output.rows_csv(rows))
        return
    doc = {"flavour": catalogue.flavour, "limits": rows}
    sys.stdout.write(
        catalogue_output.to_yaml(doc) if fmt is OutputFormat.YAML else catalogue_output.to_json(doc)
    )


@config_app.command("show")
@with_common_options
def config_show(
    opts: CommonOptions,
    fmt: Annotated[str, typer.Option("--format", "-f", help="yaml or json.")] = "yaml",
) -> None:
    """Print the effective configuration (defaults < file < environment < flags), secrets
    redacted."""
    from mimir_limit_optimizer.config.loader import render_config

    if fmt not in ("yaml", "json"):
        fail("--format must be yaml or json")
    loaded, _ = load(opts)
    sys.stdout.write(render_config(loaded.config, fmt))  # type: ignore[arg-type]
