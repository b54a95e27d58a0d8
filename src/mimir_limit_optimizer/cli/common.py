"""Shared CLI plumbing: option types, config loading, errors and output helpers."""

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
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from mimir_limit_optimizer.catalogue import Catalogue, load_catalogue
from mimir_limit_optimizer.config.loader import ConfigError, LoadedConfig, load_config


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


def fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


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
    if opts.overrides_file is not None:
        put("target.path", str(opts.overrides_file), "--overrides-file")
    if opts.limits:
        names = [n.strip() for n in opts.limits.split(",") if n.strip()]
        put("dynamicLimits.enabledLimits", names, "--limits")
    if opts.tenants:
        # --tenants takes globs; with tenantScoping.useRegex the include list holds regexes.
        tenants = opts.tenants
        patterns = [fnmatch.translate(t) for t in tenants] if use_regex else list(tenants)
        put("tenantScoping.includeList", patterns, "--tenants")
    return cli, flags


def load(opts: CommonOptions) -> tuple[LoadedConfig, Catalogue]:
    """The effective config (defaults < file < environment < flags); exit 2 with the loader's
    message (file, line, key, fix) when it is invalid. Warnings go to stderr."""
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
    err = Console(stderr=True, soft_wrap=True)
    for warning in loaded.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    return loaded, catalogue


def wide_console() -> Console:
    """The terminal's width; when piped (a log, `make run`) $COLUMNS if set, else 200 columns,
    where Rich would otherwise squeeze the reasons column into 80."""
    console = Console()
    if console.is_terminal:
        return console
    columns = os.environ.get("COLUMNS", "")
    return Console(width=int(columns) if columns.isdigit() and int(columns) >= 40 else 200)


def emit(text: str, output_file: Path | None) -> None:
    if output_file is None:
        sys.stdout.write(text)
    else:
        output_file.write_text(text, encoding="utf-8")
