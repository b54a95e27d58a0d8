"""Field types shared by the configuration models."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from mimir_limit_optimizer.catalogue.units import DurationError, format_duration, parse_duration


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
