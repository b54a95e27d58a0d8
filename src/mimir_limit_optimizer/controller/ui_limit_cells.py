"""The limit table's cells read as config values: a limit in its unit (a plain number; a
duration like `30d` for duration limits; never negative; whole for counts and bytes) or a
buffer in percent. Each mistake says what is wrong and what to write instead."""

from __future__ import annotations

import math

from mimir_limit_optimizer.catalogue import LimitSpec
from mimir_limit_optimizer.catalogue.model import LimitType
from mimir_limit_optimizer.catalogue.units import DurationError, parse_duration

MAX_PERCENT = 1000.0  # the config models' bound on buffers


class CellError(ValueError):
    """What is wrong with one cell, said to the user next to it."""


def limit_value(raw: str, spec: LimitSpec) -> int | float | str:
    text = raw.strip().replace("_", "")
    if spec.type is LimitType.DURATION:
        try:
            number = float(text)
        except ValueError:
            try:
                parse_duration(text)
            except DurationError as exc:
                raise CellError(f"{raw.strip()!r} is not a duration: {exc}") from None
            return text
        if number < 0:
            raise CellError("must be 0 or more: Mimir has no negative limits")
        return int(number) if number.is_integer() else number
    if spec.type is LimitType.BOOL and text.lower() in ("true", "false"):
        return 1 if text.lower() == "true" else 0
    try:
        number = float(text)
    except ValueError:
        raise CellError(
            f"{raw.strip()!r} is not a number of {spec.unit}: write a plain number, e.g. "
            f"{_number_example(spec)}"
        ) from None
    if not math.isfinite(number):
        raise CellError("must be a finite number")
    if number < 0:
        raise CellError("must be 0 or more: Mimir has no negative limits")
    if spec.type in (LimitType.COUNT, LimitType.BYTES) and not number.is_integer():
        raise CellError(f"must be a whole number of {spec.unit}")
    return int(number) if number.is_integer() else number


def _number_example(spec: LimitSpec) -> str:
    value = spec.default if spec.default > 0 else 1000
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def percent(raw: str) -> int | float:
    text = raw.strip().rstrip("%").strip()
    try:
        number = float(text)
    except ValueError:
        raise CellError(f"{raw.strip()!r} is not a number of percent, e.g. 20") from None
    if not 0 <= number <= MAX_PERCENT:
        raise CellError(f"must be between 0 and {MAX_PERCENT:g} percent")
    return int(number) if number.is_integer() else number
