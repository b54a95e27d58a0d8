"""Environment variables and command-line values laid over the file's data (file < env < CLI).

Values are set at their key path and remember their origin, so a bad value is reported as
"environment variable BUFFER_PERCENTAGE: bufferPercentage: ..." rather than as a file line."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from mimir_limit_optimizer.config.errors import ConfigError, Findings, KeyPath, Origin

# The Go optimizer's README's variables -> the key each one sets.
ENVIRONMENT_VARIABLES: Mapping[str, str] = MappingProxyType(
    {
        "MODE": "mode",
        "MIMIR_NAMESPACE": "mimir.namespace",
        "MIMIR_CONFIGMAP_NAME": "mimir.configMapName",
        "UPDATE_INTERVAL": "updateInterval",
        "BUFFER_PERCENTAGE": "bufferPercentage",
    }
)


def apply_environment(data: dict[str, Any], env: Mapping[str, str], findings: Findings) -> None:
    """Set the keys of ENVIRONMENT_VARIABLES that `env` defines. An empty or blank value
    counts as unset (Kubernetes manifests often carry `value: ""`)."""
    for variable, dotted in ENVIRONMENT_VARIABLES.items():
        value = env.get(variable)
        if value is None or not value.strip():
            continue
        origin = Origin(f"environment variable {variable}")
        _set(data, tuple(dotted.split(".")), value.strip(), origin, findings)


def apply_cli(
    data: dict[str, Any],
    cli: Mapping[str, Any],
    findings: Findings,
    flags: Mapping[str, str],
) -> None:
    """Set each dotted camelCase key of `cli` (values already typed; None means not given).
    `flags` names the option that carried each key, for messages (default: the key)."""
    for dotted, value in cli.items():
        if value is None:
            continue
        path = tuple(dotted.split("."))
        flag = flags.get(dotted)
        origin = Origin(f"command line option {flag}" if flag else "command line")
        if not all(path):
            raise ConfigError.at(
                origin, (), f"{dotted!r} is not a key path", "use dotted keys like source.kind"
            )
        # A multi-value option may arrive as a tuple; the name checks look for lists.
        typed = list(value) if isinstance(value, tuple) else copy.deepcopy(value)
        _set(data, path, typed, origin, findings)


def _set(data: dict[str, Any], path: KeyPath, value: Any, origin: Origin, f: Findings) -> None:
    container = data
    for part in path[:-1]:
        child = container.get(str(part))
        if not isinstance(child, dict):
            # The higher-precedence value replaces whatever was there (null or a wrong type).
            child = {}
            container[str(part)] = child
        container = child
    container[str(path[-1])] = value
    f.origins.set(path, origin)
