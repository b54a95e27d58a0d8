"""Shared CLI plumbing: option types, config loading, errors and output helpers."""

from __future__ import annotations

import fnmatch
import os
import sys
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


def fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def cli_overrides(
    *,
    mode: ModeOption | None = None,
    source: SourceOption | None = None,
    prometheus_url: str | None = None,
    overrides_file: Path | None = None,
    limits: str | None = None,
    tenants: list[str] | None = None,
    use_regex: bool = False,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Flags as dotted config keys (the loader's `cli`), and the flag behind each key (so
    errors name `--limits`, not `dynamicLimits.enabledLimits`)."""
    cli: dict[str, Any] = {}
    flags: dict[str, str] = {}

    def put(key: str, value: Any, flag: str) -> None:
        cli[key] = value
        flags[key] = flag

    if mode is not None:
        put("mode", mode.value, "--mode")
    if prometheus_url is not None:
        put("source.prometheus.url", prometheus_url, "--prometheus-url")
        put("source.kind", "prometheus", "--prometheus-url")
    if source is not None:
        put("source.kind", source.value, "--source")
    if overrides_file is not None:
        put("target.path", str(overrides_file), "--overrides-file")
    if limits:
        names = [n.strip() for n in limits.split(",") if n.strip()]
        put("dynamicLimits.enabledLimits", names, "--limits")
    if tenants:
        # --tenants takes globs; with tenantScoping.useRegex the include list holds regexes.
        patterns = [fnmatch.translate(t) for t in tenants] if use_regex else list(tenants)
        put("tenantScoping.includeList", patterns, "--tenants")
    return cli, flags


def load(
    config: Path | None,
    *,
    mode: ModeOption | None = None,
    source: SourceOption | None = None,
    prometheus_url: str | None = None,
    overrides_file: Path | None = None,
    limits: str | None = None,
    tenants: list[str] | None = None,
) -> tuple[LoadedConfig, Catalogue]:
    """The effective config (defaults < file < environment < flags); exit 2 with the loader's
    message (file, line, key, fix) when it is invalid. Warnings go to stderr."""
    catalogue = load_catalogue()

    def attempt(use_regex: bool) -> LoadedConfig:
        cli, flags = cli_overrides(
            mode=mode, source=source, prometheus_url=prometheus_url,
            overrides_file=overrides_file, limits=limits, tenants=tenants, use_regex=use_regex,
        )  # fmt: skip
        return load_config(
            config, env=dict(os.environ), cli=cli, catalogue=catalogue, cli_flags=flags
        )

    try:
        loaded = attempt(use_regex=False)
        if tenants and loaded.config.tenant_scoping.use_regex:
            loaded = attempt(use_regex=True)
    except ConfigError as exc:
        fail(str(exc))
    err = Console(stderr=True, soft_wrap=True)
    for warning in loaded.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    return loaded, catalogue


def wide_console() -> Console:
    """The terminal's width; 200 columns when piped (a log, `make run`), where Rich would
    otherwise squeeze the reasons column into 80."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def emit(text: str, output_file: Path | None) -> None:
    if output_file is None:
        sys.stdout.write(text)
    else:
        output_file.write_text(text, encoding="utf-8")
