"""Load the configuration: defaults < file < environment < command line.

Everything is passed in (the environment mapping, the CLI values, the catalogue); nothing is
read from the process. Every mistake found in one pass is reported together, the first in
file order leading, each with its file and line (or variable or flag), key, problem and fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mimir_limit_optimizer.catalogue.model import Catalogue
from mimir_limit_optimizer.config.errors import ConfigError, Findings, Origins, combine
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.config.normalize import (
    apply_file_aliases,
    fill_default_enabled_limits,
    map_legacy_shorthand,
    normalize_limit_names,
    warn_unused,
)
from mimir_limit_optimizer.config.overlay import ENVIRONMENT_VARIABLES, apply_cli, apply_environment
from mimir_limit_optimizer.config.protection import move_blast_protection
from mimir_limit_optimizer.config.render import redacted_dump, render_config
from mimir_limit_optimizer.config.validate import check_config, drop_empty_sections, validate_config
from mimir_limit_optimizer.config.yaml_file import RawDocument, parse_yaml

# The loader is the one import callers need (the CLI imports all of this from here).
__all__ = [
    "ENVIRONMENT_VARIABLES",
    "ConfigError",
    "LoadedConfig",
    "load_config",
    "redacted_dump",
    "render_config",
]

_NO_FILE_FIX = (
    "check the path, or run without a configuration file to use the embedded default "
    "(synthetic source)"
)


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    # Deprecations, aliases and accepted-but-unused keys, each "where: key: message".
    warnings: tuple[str, ...]
    # The file as given (None: no file, defaults + environment + command line).
    path: str | None
    # Every mapping key path the file itself sets, as written (e.g. ("source", "kind")): a
    # hot reload compares them with the running config's (config_provider.py). Empty for no
    # file, an empty file or a file of only comments.
    file_keys: frozenset[tuple[str, ...]] = frozenset()


def load_config(
    path: str | Path | None,
    *,
    env: Mapping[str, str],
    cli: Mapping[str, Any],
    catalogue: Catalogue,
    cli_flags: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Read, merge and validate the configuration; raise ConfigError on any mistake.

    `cli` maps dotted camelCase keys (`source.prometheus.url`) to typed values; None values
    are ignored (an option that was not given). `cli_flags` optionally maps the same keys to
    the option names the user typed (`--prometheus-url`), for error messages.
    """
    file = None if path is None else str(path)
    raw = RawDocument({}, Origins()) if file is None else parse_yaml(_read(file), file)
    data = raw.data
    file_keys = frozenset(key_paths(data))
    findings = Findings(raw.origins)

    drop_empty_sections(data)
    apply_file_aliases(data, findings)
    move_blast_protection(data, findings)
    apply_environment(data, env, findings)
    apply_cli(data, cli, findings, cli_flags or {})
    normalize_limit_names(data, catalogue, findings)
    map_legacy_shorthand(data, catalogue, findings)
    fill_default_enabled_limits(data, catalogue)
    warn_unused(data, findings)

    config = validate_config(data, findings)
    if config is not None:
        check_config(config, findings)
    error = combine(findings.errors)
    if error is not None:
        raise error
    assert config is not None  # no errors recorded means validation succeeded
    return LoadedConfig(config=config, warnings=findings.warnings, path=file, file_keys=file_keys)


def key_paths(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path through nested mappings (list items are not descended into)."""
    paths: list[tuple[str, ...]] = []
    for key, value in data.items():
        path = (*prefix, str(key))
        paths.append(path)
        if isinstance(value, Mapping):
            paths.extend(key_paths(value, path))
    return paths


def _read(file: str) -> str:
    try:
        return Path(file).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("file not found", file=file, fix=_NO_FILE_FIX) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start})", file=file, fix="save the file as UTF-8"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=file, fix=_NO_FILE_FIX) from exc
