"""Load a catalogue data file shipped inside the package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mimir_limit_optimizer.catalogue.model import (
    Catalogue,
    KnownKey,
    LimitSpec,
    LimitType,
    SignalKind,
    ValueKind,
)
from mimir_limit_optimizer.catalogue.units import parse_duration


class CatalogueError(ValueError):
    """The catalogue data file is inconsistent (a bug in the shipped data, caught by tests)."""


def _number(value: Any, limit_type: LimitType) -> float:
    if limit_type is LimitType.BOOL:
        return 1.0 if value else 0.0
    if limit_type is LimitType.DURATION and isinstance(value, str):
        return parse_duration(value)
    if value is None or value == "inf":
        return float("inf")
    return float(value)


def _limit(entry: dict[str, Any], default_version: str) -> LimitSpec:
    limit_type = LimitType(entry["type"])
    return LimitSpec(
        name=entry["name"],
        type=limit_type,
        default=_number(entry["default"], limit_type),
        unit=entry.get("unit", ""),
        signal=SignalKind(entry["signal"]),
        category=entry.get("category", "other"),
        description=entry.get("description", ""),
        checked_against=str(entry.get("checked_against", default_version)),
        zero_means_unlimited=bool(entry.get("zero_means_unlimited", False)),
        usage_query=entry.get("usage"),
        discard_query=entry.get("discards"),
        discard_reasons=tuple(entry.get("discard_reasons", ())),
        derived_from=entry.get("derived_from"),
        derive_factor=entry.get("derive_factor"),
        buffer_percent=float(entry.get("buffer", 20.0)),
        min_value=_number(entry.get("min", 0), limit_type),
        max_value=_number(entry.get("max"), limit_type),
        may_lower=bool(entry.get("may_lower", True)),
        notes=entry.get("notes", ""),
        estimate=" ".join(str(entry.get("estimate", "")).split()),
        usage_fallback_query=entry.get("usage_fallback"),
        usage_fallback_reason=" ".join(str(entry.get("usage_fallback_reason", "")).split()),
    )


def _load_yaml(text: str) -> Any:
    """The data file as plain Python data. libyaml's parser (PyYAML's CSafeLoader) when it is
    there: about 20x faster than ruamel's pure-Python safe loader, which decides how fast
    `mlo limits` and every command start. The data file keeps to YAML both read the same way
    (floats with a signed exponent, `1.0e+9`; no yes/no/on/off); tests/test_catalogue.py
    checks that the two parsers agree."""
    try:
        from yaml import CSafeLoader, load
    except ImportError:  # no libyaml build: the portable parser
        from ruamel.yaml import YAML

        return YAML(typ="safe").load(text)
    return load(text, Loader=CSafeLoader)


def parse_catalogue(text: str) -> Catalogue:
    data = _load_yaml(text)
    version = str(data["checked_against"])
    limits = {e["name"]: _limit(e, version) for e in data["limits"]}
    known = {
        name: KnownKey(name, ValueKind(kind)) for name, kind in (data.get("known") or {}).items()
    }
    catalogue = Catalogue(
        flavour=data["flavour"],
        checked_against=version,
        limits=limits,
        known=known,
        top_level_keys=frozenset(data.get("top_level_keys", ["overrides"])),
        not_limits=dict(data.get("not_limits") or {}),
        aliases=dict(data.get("aliases") or {}),
    )
    _check(catalogue)
    return catalogue


def _check(catalogue: Catalogue) -> None:
    for spec in catalogue.limits.values():
        if spec.signal is SignalKind.USAGE and not spec.usage_query:
            raise CatalogueError(f"{spec.name}: usage-driven limits need a usage query")
        if spec.signal is SignalKind.DISCARD and not spec.discard_query:
            raise CatalogueError(f"{spec.name}: discard-driven limits need a discard query")
        if spec.signal is SignalKind.DERIVED and (
            spec.derived_from not in catalogue.limits or not spec.derive_factor
        ):
            raise CatalogueError(f"{spec.name}: derived limits need derived_from and derive_factor")
        if spec.name in catalogue.known or spec.name in catalogue.not_limits:
            raise CatalogueError(f"{spec.name}: listed twice")


def load_catalogue(flavour: str = "mimir") -> Catalogue:
    """The shipped catalogue of `flavour` (only `mimir` today; `cortex` would be one more file)."""
    try:
        # Next to this module (package data): cheaper to find than through importlib.resources.
        text = (Path(__file__).parent / "data" / f"{flavour}.yaml").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CatalogueError(f"no catalogue for flavour {flavour!r}") from exc
    return parse_catalogue(text)
