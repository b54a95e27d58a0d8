"""Shared CLI plumbing: option types, config loading, errors and output helpers.

Imports stay light at module level (`mlo --help` starts in well under 0.3 s): pydantic, the
catalogue and Rich are imported where they are used."""

from __future__ import annotations

import fnmatch
import functools
import inspect
import os
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from mimir_limit_optimizer.catalogue import Catalogue
    from mimir_limit_optimizer.config.loader import LoadedConfig


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
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (YAML).",
        envvar="MLO_CONFIG",
        metavar="FILE",
    ),
]
ModeOpt = Annotated[
    ModeOption | None, typer.Option("--mode", help="dry-run (default: writes nothing) or prod.")
]
SourceOpt = Annotated[
    SourceOption | None, typer.Option("--source", help="synthetic (default) or prometheus.")
]
PromUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--prometheus-url",
        help="Prometheus (or Mimir query) URL, e.g. http://127.0.0.1:9090; implies --source "
        "prometheus.",
        metavar="URL",
    ),
]
OverridesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--overrides-file",
        help="Runtime overrides file holding the current limits (the optimizer's own, written "
        "in prod). Repeat it (or separate with commas) in Mimir's -runtime-config.file order: "
        "the last is the optimizer's, the earlier ones are read only (target.baseFiles).",
        metavar="FILE",
    ),
]
FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format: table, json, yaml or csv.")
]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write to this file instead of stdout.", metavar="FILE"),
]
TenantsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tenants",
        help="Only these tenants: comma-separated globs, repeatable (e.g. 'team-*,prod'). "
        "Globs are case-sensitive, as tenant ids are.",
        metavar="GLOBS",
    ),
]
LimitsOpt = Annotated[
    str | None,
    typer.Option(
        "--limits",
        help="Comma-separated limits (default: dynamicLimits.enabledLimits); see `mlo limits`.",
        metavar="NAMES",
    ),
]


@dataclass(frozen=True)
class CommonOptions:
    """The flags every config-driven command takes, declared once (see `with_common_options`)."""

    config: ConfigOpt = None
    mode: ModeOpt = None
    source: SourceOpt = None
    prometheus_url: PromUrlOpt = None
    overrides_file: OverridesOpt = None
    tenants: TenantsOpt = None
    limits: LimitsOpt = None


def with_common_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give `command` the common flags as one `opts: CommonOptions` argument.

    Typer builds options from a function's signature, so the wrapper presents the common
    flags' parameters plus the command's own (all keyword-only: Typer passes keywords) and
    folds the common ones into `opts` before calling the command."""
    common_hints = typing.get_type_hints(CommonOptions, include_extras=True)
    own_hints = typing.get_type_hints(command, include_extras=True)
    names = [f.name for f in fields(CommonOptions)]
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter(name, keyword, default=None, annotation=common_hints[name])
        for name in names
    ] + [
        p.replace(kind=keyword, annotation=own_hints[p.name])
        for p in inspect.signature(command).parameters.values()
        if p.name != "opts"
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        opts = CommonOptions(**{name: kwargs.pop(name, None) for name in names})
        command(opts=opts, **kwargs)

    wrapper.__signature__ = inspect.Signature(parameters, return_annotation=None)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return wrapper


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    from rich.markup import escape

    stderr_console().print(f"[red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def split_list(values: list[str] | None) -> list[str]:
    """Repeated flags and comma-separated values as one list (`--tenants a,b --tenants c`)."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def overrides_paths(opts_files: list[Path] | None) -> list[str]:
    """`--overrides-file` values in Mimir's -runtime-config.file order."""
    return split_list([str(p) for p in opts_files or []])


def cli_overrides(
    opts: CommonOptions, *, use_regex: bool = False
) -> tuple[dict[str, Any], dict[str, str]]:
    """Flags as dotted config keys (the loader's `cli`), and the flag behind each key (so
    errors name `--limits`, not `dynamicLimits.enabledLimits`)."""
    cli: dict[str, Any] = {}
    flags: dict[str, str] = {}

    def put(key: str, value: Any, flag: str) -> None:
        cli[key] = value
        flags[key] = flag

    if opts.mode is not None:
        put("mode", opts.mode.value, "--mode")
    if opts.prometheus_url is not None:
        put("source.prometheus.url", opts.prometheus_url, "--prometheus-url")
        put("source.kind", "prometheus", "--prometheus-url")
    if opts.source is not None:
        put("source.kind", opts.source.value, "--source")
    files = overrides_paths(opts.overrides_file)
    if files:
        put("target.path", files[-1], "--overrides-file")
        if len(files) > 1:
            put("target.baseFiles", files[:-1], "--overrides-file")
    if opts.limits:
        names = [n.strip() for n in opts.limits.split(",") if n.strip()]
        put("dynamicLimits.enabledLimits", names, "--limits")
    tenants = split_list(opts.tenants)
    if tenants:
        # --tenants takes globs; with tenantScoping.useRegex the include list holds regexes.
        patterns = [fnmatch.translate(t) for t in tenants] if use_regex else tenants
        put("tenantScoping.includeList", patterns, "--tenants")
    return cli, flags


def load(opts: CommonOptions) -> tuple[LoadedConfig, Catalogue]:
    """The effective config (defaults < file < environment < flags); exit 2 with the loader's
    message (file, line, key, fix) when it is invalid. Warnings go to stderr."""
    from mimir_limit_optimizer.catalogue import load_catalogue
    from mimir_limit_optimizer.config.loader import ConfigError, load_config

    catalogue = load_catalogue()

    def attempt(use_regex: bool) -> LoadedConfig:
        cli, flags = cli_overrides(opts, use_regex=use_regex)
        return load_config(
            opts.config, env=dict(os.environ), cli=cli, catalogue=catalogue, cli_flags=flags
        )

    try:
        loaded = attempt(use_regex=False)
        if opts.tenants and loaded.config.tenant_scoping.use_regex:
            loaded = attempt(use_regex=True)
    except ConfigError as exc:
        fail(str(exc))
    except OSError as exc:  # the config file is a directory, unreadable, ...
        fail(f"cannot read the config file {opts.config}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        fail(f"the config file {opts.config} is not UTF-8 text (byte {exc.start}): re-save it")
    from rich.markup import escape

    err = stderr_console()
    for warning in loaded.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    return loaded, catalogue


def wide_console() -> Console:
    """The terminal's width; when piped (a log, `make run`) $COLUMNS if set, else 200 columns,
    where Rich would otherwise squeeze the reasons column into 80."""
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        return console
    columns = os.environ.get("COLUMNS", "")
    return Console(width=int(columns) if columns.isdigit() and int(columns) >= 40 else 200)


def check_output(output_file: Path | None) -> None:
    """Fail before any work when `--output` cannot be written (so a long collection is not
    wasted on a typo): its directory must exist and it must not be a directory."""
    if output_file is None:
        return
    if output_file.is_dir():
        fail(f"--output {output_file} is a directory: give a file name, e.g. {output_file}/out")
    parent = output_file.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        fail(f"--output {output_file}: the directory {parent} {what}; create it first")


def emit(text: str, output_file: Path | None) -> None:
    if output_file is None:
        sys.stdout.write(text)
        return
    check_output(output_file)
    try:
        output_file.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write --output {output_file}: {exc.strerror or exc}")
