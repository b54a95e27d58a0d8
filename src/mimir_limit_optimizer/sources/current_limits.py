"""What the engine needs besides usage to know the limits in force (engine/current.py):

- the operator's runtime files listed before the optimizer's in Mimir's `-runtime-config.file`
  (`target.baseFiles`), parsed read-only;
- the cluster's own `limits:` defaults, from Mimir's `/config` endpoint (`mimir.configUrl`, or
  `verify.mimirUrl`) and from a copy of Mimir's config file (`mimir.configFile`).

A base file that cannot be read is an error (the current values would be wrong). Cluster
defaults are best effort: when `/config` cannot be read the cycle goes on, the reason is
logged, and the recommendations say the cluster default is unknown.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
from pydantic import SecretStr
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from mimir_limit_optimizer.catalogue.model import Catalogue, LimitSpec, LimitType
from mimir_limit_optimizer.catalogue.units import DurationError, parse_duration
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.current import ClusterDefaults
from mimir_limit_optimizer.engine.overrides import (
    OverridesDocument,
    OverridesParseError,
    parse_overrides,
)
from mimir_limit_optimizer.sources.base import PermanentSourceError
from mimir_limit_optimizer.sources.body_summary import summarise_body

__all__ = [
    "CurrentLimitsError",
    "cluster_defaults",
    "declared_defaults",
    "defaults_from_config_text",
    "read_base_documents",
    "read_runtime_file",
]

# Seconds one `/config` request may take: the cycle must not wait long for an extra.
CONFIG_TIMEOUT = 10.0
_TRUE = frozenset({"true", "yes", "on", "y"})
_FALSE = frozenset({"false", "no", "off", "n"})
# Go's time.Duration rendering (`720h0m0s`, `1.5s`), as Mimir's /config may show some fields.
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_GO_UNITS = MappingProxyType(
    {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
)


class CurrentLimitsError(PermanentSourceError):
    """A runtime file the current limits depend on cannot be read or parsed."""


def read_runtime_file(path: str) -> OverridesDocument | None:
    """One runtime file, parsed (None when it does not exist). Raises CurrentLimitsError
    naming the file for unreadable, non-UTF-8 or unparsable content."""
    file = Path(path)
    if not file.exists():
        return None
    if file.is_dir():
        raise CurrentLimitsError(f"runtime file {path} is a directory, not a file")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CurrentLimitsError(
            f"runtime file {path} is not UTF-8 text (byte {exc.start}): Mimir reads YAML as "
            "UTF-8; re-save it as UTF-8"
        ) from exc
    except OSError as exc:
        raise CurrentLimitsError(f"cannot read runtime file {path}: {exc.strerror}") from exc
    try:
        return parse_overrides(text, source_name=path)
    except OverridesParseError as exc:
        raise CurrentLimitsError(str(exc)) from exc


def read_base_documents(paths: Sequence[str]) -> list[OverridesDocument]:
    """The operator's runtime files, in `-runtime-config.file` order. A missing base file is
    an error: it was named because Mimir reads it."""
    documents: list[OverridesDocument] = []
    for path in paths:
        document = read_runtime_file(path)
        if document is None:
            raise CurrentLimitsError(
                f"runtime file {path} (target.baseFiles / --overrides-file) does not exist"
            )
        documents.append(document)
    return documents


def _duration(text: str) -> float | None:
    text = text.strip()
    try:
        return parse_duration(text)
    except DurationError:
        pass
    parts = _GO_PART.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return sum(float(n) * _GO_UNITS[u] for n, u in parts)
    return None


def _base_units(raw: Any, spec: LimitSpec) -> float | None:
    """A value of Mimir's config in the limit's base units; None when unreadable."""
    if raw is None:
        return None
    if spec.type is LimitType.BOOL:
        if isinstance(raw, bool):
            return 1.0 if raw else 0.0
        text = str(raw).strip().lower()
        return 1.0 if text in _TRUE else 0.0 if text in _FALSE else None
    if spec.type is LimitType.DURATION:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw) / 1e9  # a bare number in Go's Duration YAML is nanoseconds
        return _duration(str(raw))
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    try:
        return float(str(raw))
    except ValueError:
        return None


def defaults_from_config_text(text: str, catalogue: Catalogue, *, where: str) -> ClusterDefaults:
    """The `limits:` block of a Mimir configuration (the `/config` answer or the config file)
    for every catalogue limit it sets. Raises ValueError when the text is not a YAML mapping."""
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ValueError(f"{where} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{where} is not a YAML mapping (is it Mimir's configuration?)")
    limits = data.get("limits")
    if not isinstance(limits, dict):
        raise ValueError(f"{where} has no `limits:` block")
    values: dict[str, float] = {}
    for name, spec in catalogue.limits.items():
        if name in limits:
            number = _base_units(limits[name], spec)
            if number is not None:
                values[name] = number
    return ClusterDefaults(values, where)


def _headers(config: Config) -> dict[str, str]:
    return {
        k: v.get_secret_value() if isinstance(v, SecretStr) else v
        for k, v in config.verify.headers.items()
    }


def _fetch_config(
    base: str, config: Config, catalogue: Catalogue, transport: httpx.BaseTransport | None
) -> ClusterDefaults:
    url = base.rstrip("/") + "/config"
    with httpx.Client(transport=transport, timeout=CONFIG_TIMEOUT, headers=_headers(config)) as c:
        response = c.get(url)
    if response.status_code != 200:
        body = summarise_body(response.text, response.headers.get("content-type", ""))
        raise ValueError(f"GET {url} answered HTTP {response.status_code}: {body}")
    return defaults_from_config_text(response.text, catalogue, where="Mimir /config")


def cluster_defaults(
    config: Config,
    catalogue: Catalogue,
    *,
    logger: logging.Logger,
    transport: httpx.BaseTransport | None = None,
) -> list[ClusterDefaults]:
    """The cluster's `limits:` defaults from every configured place, most trusted first
    (the live `/config`, then the config file). Failures are logged, never raised."""
    out: list[ClusterDefaults] = []
    base = config.mimir.config_url or config.verify.mimir_url
    if base:
        try:
            out.append(_fetch_config(base, config, catalogue, transport))
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("cluster defaults from %s/config unknown: %s", base.rstrip("/"), exc)
    if config.mimir.config_file:
        path = config.mimir.config_file
        try:
            text = Path(path).read_text(encoding="utf-8")
            out.append(defaults_from_config_text(text, catalogue, where=f"Mimir config {path}"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            logger.warning("cluster defaults from %s unknown: %s", path, exc)
    return out


def declared_defaults(config: Config) -> Mapping[str, float]:
    """limitOverrides.defaultValue: the cluster defaults the operator declares."""
    return {
        name: override.default_value
        for name, override in config.dynamic_limits.limit_overrides.items()
        if override.default_value is not None
    }
