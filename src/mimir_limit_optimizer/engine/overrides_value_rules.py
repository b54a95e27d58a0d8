"""Values as Mimir's decoder sees them: what gopkg.in/yaml.v2 (strict) accepts for each
value kind of the catalogue (`value_problem`), and its YAML 1.1 booleans.
"""

from __future__ import annotations

import math
from typing import Any

from mimir_limit_optimizer.catalogue.model import ValueKind
from mimir_limit_optimizer.catalogue.units import DurationError, parse_duration

# yaml.v2 turns these into booleans when the target is a bool (YAML 1.1); ruamel reads them as
# strings (YAML 1.2). Mimir accepts them for bool limits, quoted or not.
YAML11_TRUE = frozenset({"y", "Y", "yes", "Yes", "YES", "on", "On", "ON"})
YAML11_FALSE = frozenset({"n", "N", "no", "No", "NO", "off", "Off", "OFF"})


def is_yaml_bool(raw: Any) -> bool:
    """True for values yaml.v2 decodes into a Go bool."""
    return isinstance(raw, bool) or (isinstance(raw, str) and raw in YAML11_TRUE | YAML11_FALSE)


def yaml_bool(raw: Any) -> bool:
    return raw if isinstance(raw, bool) else raw in YAML11_TRUE


def _describe(raw: Any) -> str:
    if isinstance(raw, bool):
        return f"the boolean {str(raw).lower()}"
    if isinstance(raw, int):
        return f"the integer {raw}"
    if isinstance(raw, float):
        return f"the number {raw!r}"
    if isinstance(raw, str):
        return f"the string {str(raw)!r}"
    if isinstance(raw, dict):
        return "a mapping"
    if isinstance(raw, list):
        return "a list"
    return f"{raw!r}"


def _number_fix(raw: Any, integer: bool) -> str:
    example = "150000" if integer else "50000 or 2.5"
    if isinstance(raw, str):
        try:
            float(raw.replace("_", ""))
        except ValueError:
            return f"write a plain number, e.g. {example} (no units or suffixes like 1M)"
        return "remove the quotes: a quoted number is a string to Mimir"
    return f"write a plain number, e.g. {example}"


def value_problem(raw: Any, kind: ValueKind) -> tuple[str, str] | None:
    """(message, fix) when Mimir would reject `raw` for a key of `kind`, else None.

    `raw` is a ruamel round-trip value; null is handled by the caller (yaml.v2 turns it into
    the Go zero value without complaint)."""
    if kind is ValueKind.ANY:
        return None
    if kind is ValueKind.INT:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return f"expected an integer, got {_describe(raw)}", _number_fix(raw, True)
        if isinstance(raw, float):
            if not math.isfinite(raw):
                return f"expected an integer, got {raw!r}", "write a finite integer"
            if not raw.is_integer():
                return (
                    f"{raw!r} is not an integer: Mimir silently truncates it to {math.trunc(raw)}",
                    f"write an integer, e.g. {math.ceil(raw)}",
                )
        return None
    if kind is ValueKind.FLOAT:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return f"expected a number, got {_describe(raw)}", _number_fix(raw, False)
        return None
    if kind is ValueKind.BOOL:
        if not is_yaml_bool(raw):
            return f"expected true or false, got {_describe(raw)}", "write true or false"
        return None
    if kind is ValueKind.DURATION:
        if isinstance(raw, dict | list):
            return (
                f"expected a duration, got {_describe(raw)}",
                "write a duration like 30d or 1h30m",
            )
        text = str(raw).lower() if isinstance(raw, bool) else str(raw)
        try:
            parse_duration(text)
        except DurationError:
            fix = "write a duration with units ms, s, m, h, d, w, y, largest first (30s, 1h30m)"
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                fix = f"add a unit, e.g. {raw}s; only 0 may be written without one"
            return f"{text!r} is not a duration", fix
        return None
    if kind is ValueKind.STRING:
        if isinstance(raw, dict | list):
            return f"expected a string, got {_describe(raw)}", "write a single value"
        return None
    if kind is ValueKind.LIST:
        if not isinstance(raw, list):
            return f"expected a list, got {_describe(raw)}", "write a YAML list (`- item` lines)"
        return None
    if kind is ValueKind.MAP:
        if not isinstance(raw, dict):
            return f"expected a mapping, got {_describe(raw)}", "write `key: value` lines"
        return None
    return None  # pragma: no cover - every ValueKind is handled above
