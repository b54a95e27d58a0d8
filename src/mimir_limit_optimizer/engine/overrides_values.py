"""Values of the runtime overrides file in base units and back (internal to `engine.overrides`,
which re-exports the public names)."""

from __future__ import annotations

import math
from typing import Any

from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from mimir_limit_optimizer.catalogue.model import LimitSpec, LimitType
from mimir_limit_optimizer.catalogue.units import format_duration, parse_duration
from mimir_limit_optimizer.engine.overrides_value_rules import value_problem, yaml_bool

_MAX_INT64 = 2**63 - 1


class OverridesValueError(ValueError):
    """A value in the file that Mimir would not accept for its limit, met while reading it."""

    def __init__(
        self, source_name: str, line: int | None, tenant: str, limit: str, message: str
    ) -> None:
        self.source_name = source_name
        self.line = line
        self.tenant = tenant
        self.limit = limit
        self.message = message
        where = source_name if line is None else f"{source_name}:{line}"
        super().__init__(f"{where}: overrides.{tenant}.{limit}: {message}")


class OverridesEditError(ValueError):
    """An edit this model refuses because it would change more than the asked-for value."""


def limit_yaml_value(value: float, spec: LimitSpec) -> int | float | str | bool:
    """`value` (base units) as the YAML value Mimir expects for `spec`'s limit.

    - rate: an int when integral (`50000`, not `50000.0`), else the shortest float that
      round-trips (`2.5`, `0.37`);
    - count, bytes: an int; a fractional value is rounded UP (a limit never ends below what
      was asked for), except float noise within 1e-9 relative of an integer, which is rounded;
    - duration: `format_duration` (`30d`, `1h30m`, `0s`; millisecond precision);
    - bool: true for any non-zero value.

    Raises ValueError for NaN, infinities and negative numbers: Mimir has no such limits.
    """
    if spec.type is LimitType.BOOL:
        return value != 0
    value = float(value)  # callers pass ints and numpy scalars too
    if not math.isfinite(value):
        raise ValueError(f"{spec.name}: cannot write {value!r}; limits must be finite")
    if value < 0:
        raise ValueError(f"{spec.name}: cannot write {value!r}; limits are never negative")
    if spec.type is LimitType.DURATION:
        return format_duration(value)
    if spec.type is LimitType.RATE:
        if value.is_integer() and value <= _MAX_INT64:
            return int(value)
        return float(value)
    nearest = round(value)
    integer = nearest if abs(value - nearest) <= 1e-9 * max(1.0, value) else math.ceil(value)
    if integer > _MAX_INT64:
        raise ValueError(f"{spec.name}: {integer} does not fit Mimir's 64-bit integers")
    return int(integer)


def number_of(raw: Any, spec: LimitSpec) -> float:
    """Base-unit value of a raw, non-null YAML value that passed `value_problem`."""
    if spec.type is LimitType.BOOL:
        return 1.0 if yaml_bool(raw) else 0.0
    if spec.type is LimitType.DURATION:
        return parse_duration(str(raw))
    if spec.type in (LimitType.COUNT, LimitType.BYTES):
        return float(math.trunc(raw))  # what yaml.v2 does to 1.5 for an int field
    return float(raw)


def replacement(old: Any, new: Any, spec: LimitSpec) -> Any | None:
    """What replaces the file's `old` value by `new` (from `limit_yaml_value`): None when
    `old` is already that number in a valid type (nothing to write); a quoted `old` keeps the
    file's quoting style."""
    same_type = old is not None and value_problem(old, spec.value_kind) is None
    if same_type and number_of(old, spec) == number_of(new, spec):
        return None
    if isinstance(old, DoubleQuotedScalarString | SingleQuotedScalarString) and isinstance(
        new, str
    ):
        return type(old)(new)
    return new
