"""Field types shared by the configuration models."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

from mimir_limit_optimizer.catalogue.units import DurationError, format_duration, parse_duration
from mimir_limit_optimizer.config.secrets import hide_secrets


def _to_seconds(value: Any) -> Any:
    """Durations accept Prometheus strings (`5m`, `48h`) or plain numbers of seconds."""
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise ValueError(str(exc)) from exc
    return value


# Seconds (float) inside; `5m`-style strings in files and in `config show`.
Duration = Annotated[
    float,
    BeforeValidator(_to_seconds),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


def _hide_secrets(value: dict[str, Any]) -> dict[str, Any]:
    hidden: dict[str, Any] = hide_secrets(value)
    return hidden


# A seed-documented section this version accepts but does not act on: kept as a plain mapping,
# with every secret-looking value (webhook URLs, keys, tokens, passwords) held as SecretStr.
OpaqueSection = Annotated[dict[str, Any], AfterValidator(_hide_secrets)]


def _hour_range(key: str) -> str:
    start, sep, end = key.partition("-")
    if not sep or not start.isdigit() or not end.isdigit():
        raise ValueError(f"{key!r}: use 'startHour-endHour', e.g. '9-17'")
    if not (0 <= int(start) <= 23 and 0 <= int(end) <= 23):
        raise ValueError(f"{key!r}: hours are 0-23")
    return key


# "startHour-endHour" in UTC, both inclusive, 0-23 (validated per key, so errors have a line).
HourRange = Annotated[str, AfterValidator(_hour_range)]
