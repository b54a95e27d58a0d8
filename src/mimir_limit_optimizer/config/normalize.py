"""Rewrites of raw configuration data before model validation: the Go optimizer's aliases and legacy
shorthands (each with a deprecation warning), limit names checked against the catalogue, and
warnings for seed options this version accepts but does not act on.

Every function takes the raw data (plain dicts and lists) and a Findings collector; values
that move keep their origin, so later errors still point at the line the user wrote."""

from __future__ import annotations

import difflib
from typing import Any

from mimir_limit_optimizer.catalogue.model import Catalogue, LimitType
from mimir_limit_optimizer.catalogue.units import DurationError, parse_duration
from mimir_limit_optimizer.config.errors import Findings, KeyPath, format_key_path
from mimir_limit_optimizer.config.models import UNUSED_SEED_KEYS, UNUSED_SEED_SECTIONS
from mimir_limit_optimizer.config.recommendation import DEFAULT_ENABLED_LIMITS

_LIMITS_SECTION_KEYS = ("minLimits", "maxLimits", "tenantTiers")
_OVERRIDE_VALUE_KEYS = ("defaultValue", "minValue", "maxValue")
_NOT_USED = "accepted, not used by this version"


def apply_file_aliases(data: dict[str, Any], findings: Findings) -> None:
    """`controller.reconcileInterval` (seed Helm values) -> `updateInterval`.

    Runs on the file's data alone, so that UPDATE_INTERVAL or a flag still overrides it."""
    controller = data.get("controller")
    if not isinstance(controller, dict) or "reconcileInterval" not in controller:
        return
    old: KeyPath = ("controller", "reconcileInterval")
    value = controller.pop("reconcileInterval")
    if "updateInterval" in data:
        other = findings.origins.line_of(("updateInterval",))
        findings.error(
            old,
            "alias of updateInterval, which is also set" + (f" (line {other})" if other else ""),
            "remove one of them",
            (other,) if other else (),
        )
    else:
        data["updateInterval"] = value
        findings.origins.move(old, ("updateInterval",))
        findings.warn(("updateInterval",), "an alias of updateInterval; write updateInterval")
    if not controller:
        del data["controller"]


def normalize_limit_names(data: dict[str, Any], catalogue: Catalogue, findings: Findings) -> None:
    """Every limit name must be a managed limit of the catalogue; deprecated aliases are
    renamed (with a warning), names that are not limits are errors with the catalogue's fix."""
    limits = data.get("limits")
    if isinstance(limits, dict):
        for section in ("minLimits", "maxLimits"):
            if isinstance(limits.get(section), dict):
                limits[section] = _names_in_mapping(
                    limits[section], ("limits", section), catalogue, findings
                )
                _durations_in_mapping(limits[section], ("limits", section), catalogue, findings)
        tiers = limits.get("tenantTiers")
        if isinstance(tiers, dict):
            for tier, settings in tiers.items():
                if isinstance(settings, dict) and isinstance(settings.get("limits"), dict):
                    path: KeyPath = ("limits", "tenantTiers", tier, "limits")
                    settings["limits"] = _names_in_mapping(
                        settings["limits"], path, catalogue, findings
                    )
                    _durations_in_mapping(settings["limits"], path, catalogue, findings)
    dynamic = data.get("dynamicLimits")
    if isinstance(dynamic, dict):
        if isinstance(dynamic.get("enabledLimits"), list):
            dynamic["enabledLimits"] = _names_in_list(
                dynamic["enabledLimits"], ("dynamicLimits", "enabledLimits"), catalogue, findings
            )
        overrides = dynamic.get("limitOverrides")
        if isinstance(overrides, dict):
            path = ("dynamicLimits", "limitOverrides")
            overrides = _names_in_mapping(overrides, path, catalogue, findings)
            dynamic["limitOverrides"] = overrides
            for name, entry in overrides.items():
                if isinstance(entry, dict):
                    for key in _OVERRIDE_VALUE_KEYS:
                        if key in entry:
                            entry[key] = _duration_value(
                                name, entry[key], (*path, name, key), catalogue, findings
                            )


def map_legacy_shorthand(data: dict[str, Any], catalogue: Catalogue, findings: Findings) -> None:
    """The Go optimizer's `limits: {ingestion_rate: 25000}` -> `dynamicLimits.limitOverrides.
    ingestion_rate.defaultValue`. Afterwards `limits` holds only its own keys."""
    limits = data.get("limits")
    if not isinstance(limits, dict):
        return
    for key in [k for k in limits if k not in _LIMITS_SECTION_KEYS]:
        value = limits.pop(key)
        path: KeyPath = ("limits", key)
        if not isinstance(key, str) or isinstance(value, dict | list):
            _unknown_key(path, key, _LIMITS_SECTION_KEYS, findings)
            continue
        if not _is_limit_like(key, catalogue):
            close = difflib.get_close_matches(key, _LIMITS_SECTION_KEYS, n=1, cutoff=0.6)
            if close:
                _unknown_key(path, key, _LIMITS_SECTION_KEYS, findings)
            else:
                findings.error(
                    path,
                    f"{key!r} is neither a key of `limits` nor a known limit",
                    catalogue.suggest(key),
                )
            continue
        real = _resolve(key, path, catalogue, findings, quiet=True)
        if real is None:
            continue
        dynamic = data.setdefault("dynamicLimits", {})
        if not isinstance(dynamic, dict):
            continue  # the model reports the wrong type of dynamicLimits
        overrides = dynamic.setdefault("limitOverrides", {})
        if not isinstance(overrides, dict):
            continue
        entry = overrides.setdefault(real, {})
        if not isinstance(entry, dict):
            continue
        target: KeyPath = ("dynamicLimits", "limitOverrides", real, "defaultValue")
        if "defaultValue" in entry:
            other = findings.origins.find(target)[0].line
            findings.error(
                path,
                f"legacy shorthand for {format_key_path(target)}, which is also set"
                + (f" (line {other})" if other else ""),
                "remove the shorthand under `limits`",
                (other,) if other else (),
            )
            continue
        entry["defaultValue"] = _duration_value(real, value, path, catalogue, findings)
        findings.origins.move(path, target)
        renamed = "" if real == key else f" ({key!r} is a deprecated name of {real!r})"
        findings.warn(
            target,
            f"deprecated shorthand{renamed}: mapped to {format_key_path(target)}; move it there",
        )


def fill_default_enabled_limits(data: dict[str, Any], catalogue: Catalogue) -> None:
    """Unless set, enabledLimits is the built-in list restricted to what the catalogue manages,
    so that every name in a loaded Config is a managed limit."""
    dynamic = data.setdefault("dynamicLimits", {})
    if isinstance(dynamic, dict) and "enabledLimits" not in dynamic:
        dynamic["enabledLimits"] = [n for n in DEFAULT_ENABLED_LIMITS if n in catalogue.limits]


def warn_unused(data: dict[str, Any], findings: Findings) -> None:
    """One warning per seed section or key that is accepted but not acted on."""
    for section in UNUSED_SEED_SECTIONS:
        if data.get(section) is not None:
            findings.warn((section,), _NOT_USED)
    for dotted, why in UNUSED_SEED_KEYS:
        path = tuple(dotted.split("."))
        container: Any = data
        for part in path[:-1]:
            container = container.get(part) if isinstance(container, dict) else None
        if isinstance(container, dict) and path[-1] in container:
            findings.warn(path, f"{_NOT_USED} ({why})")


def _is_limit_like(name: str, catalogue: Catalogue) -> bool:
    return (
        name in catalogue.limits
        or name in catalogue.aliases
        or name in catalogue.not_limits
        or name in catalogue.known
    )


def _unknown_key(path: KeyPath, key: object, valid: tuple[str, ...], findings: Findings) -> None:
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    fix = f"did you mean {close[0]!r}?" if close else "valid keys: " + ", ".join(valid)
    findings.error(path, "unknown key", fix)


def _resolve(
    name: object, path: KeyPath, catalogue: Catalogue, findings: Findings, quiet: bool = False
) -> str | None:
    """The managed limit `name` stands for, or None after recording an error."""
    if not isinstance(name, str):
        return None  # the model reports the wrong type
    if name in catalogue.limits:
        return name
    if name in catalogue.aliases and catalogue.aliases[name] in catalogue.limits:
        real = catalogue.aliases[name]
        if not quiet:
            findings.warn(
                path, f"{name!r} is a deprecated name of {real!r}: mapped to it; write {real!r}"
            )
        return real
    if name in catalogue.known:
        findings.error(
            path,
            f"{name!r} is a Mimir limit this version does not manage",
            "remove it (Mimir keeps its own value); `mlo limits` lists the managed limits",
        )
    elif name in catalogue.not_limits:
        findings.error(path, f"{name!r} cannot be managed", catalogue.suggest(name))
    else:
        findings.error(path, f"{name!r} is not a known limit", catalogue.suggest(name))
    return None


def _names_in_mapping(
    mapping: dict[Any, Any], path: KeyPath, catalogue: Catalogue, findings: Findings
) -> dict[Any, Any]:
    """`mapping` with alias keys renamed. A limit named twice (directly and by its alias) is
    an error at the second one, naming the line of the first."""
    result: dict[Any, Any] = {}
    written_as: dict[str, Any] = {}
    for name, value in mapping.items():
        real = _resolve(name, (*path, name), catalogue, findings)
        if real is None:
            result[name] = value  # error recorded; keep it so the model reports nothing new
        elif real in written_as:
            first = written_as[real]
            line = findings.origins.line_of((*path, first))
            findings.error(
                (*path, name),
                f"names the same limit as {first!r}" + (f" (line {line})" if line else ""),
                f"keep only {real!r}",
                (line,) if line else (),
            )
        else:
            written_as[real] = name
            result[real] = value
    # Moved after the loop so that errors above still find each name at its own line.
    for real, name in written_as.items():
        if real != name:
            findings.origins.move((*path, name), (*path, real))
    return result


def _names_in_list(
    names: list[Any], path: KeyPath, catalogue: Catalogue, findings: Findings
) -> list[Any]:
    if not all(isinstance(name, str) for name in names):
        return names  # the model reports the wrong item types, at their indices
    result: list[Any] = []
    for index, name in enumerate(names):
        real = _resolve(name, (*path, index), catalogue, findings)
        if real is None:
            result.append(name)
        elif real in result:
            findings.warn((*path, index), f"{real!r} is listed twice; the repeat is ignored")
        else:
            result.append(real)
    # Items moved: errors found later point at the list, not at a shifted item.
    if len(result) != len(names):
        origin = findings.origins.find(path)[0]
        findings.origins.set(path, origin)
    return result


def _durations_in_mapping(
    mapping: dict[Any, Any], path: KeyPath, catalogue: Catalogue, findings: Findings
) -> None:
    for name, value in mapping.items():
        mapping[name] = _duration_value(name, value, (*path, name), catalogue, findings)


def _duration_value(
    name: object, value: Any, path: KeyPath, catalogue: Catalogue, findings: Findings
) -> Any:
    """Duration-typed limits accept `30d` style strings; everything is stored in seconds."""
    spec = catalogue.limits.get(name) if isinstance(name, str) else None
    if spec is None or spec.type is not LimitType.DURATION or not isinstance(value, str):
        return value
    try:
        return parse_duration(value)
    except DurationError as exc:
        findings.error(path, f"invalid duration {value!r}", str(exc))
        return None
