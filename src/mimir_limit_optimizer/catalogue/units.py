"""Units of Mimir limit values: Prometheus-style durations and readable numbers.

Durations are handled in seconds (float) inside the optimizer and rendered in the form Mimir
parses (`model.ParseDuration`: units ms s m h d w y, largest first, e.g. `1h30m`, `30d`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType

# Seconds per unit, as Prometheus' model.ParseDuration defines them (y = 365d, w = 7d).
_UNIT_SECONDS: Mapping[str, float] = MappingProxyType(
    {
        "y": 365 * 86400.0,
        "w": 7 * 86400.0,
        "d": 86400.0,
        "h": 3600.0,
        "m": 60.0,
        "s": 1.0,
        "ms": 0.001,
    }
)

_ORDER = ["y", "w", "d", "h", "m", "s", "ms"]
_DURATION_RE = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)


class DurationError(ValueError):
    """A string that is not a Prometheus duration."""


def parse_duration(text: str) -> float:
    """Parse `1h30m`, `30d`, `0s` or `0` into seconds; raise DurationError otherwise."""
    text = text.strip()
    if text == "0":
        return 0.0
    match = _DURATION_RE.match(text)
    if not text or match is None or not any(match.groups()):
        raise DurationError(
            f"{text!r} is not a duration: use a number with units ms, s, m, h, d, w, y, "
            "largest first (for example 30s, 5m, 1h30m, 30d)"
        )
    return math.fsum(
        int(group) * _UNIT_SECONDS[unit]
        for group, unit in zip(match.groups(), _ORDER, strict=True)
        if group
    )


def format_duration(seconds: float) -> str:
    """Render seconds as Mimir writes durations (`30d`, `1h30m`, `0s`); weeks/years are not
    used so that `30d` stays `30d` rather than `4w2d`."""
    if seconds <= 0:
        return "0s"
    millis = round(seconds * 1000)
    parts: list[str] = []
    for unit in ("d", "h", "m", "s"):
        size = round(_UNIT_SECONDS[unit] * 1000)
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)


def format_number(value: float, unit: str = "") -> str:
    """Human rendering for tables: 1.5M samples/s, 150K series, 64 MiB."""
    if not math.isfinite(value):
        return str(value)
    if unit == "bytes":
        size = float(value)
        for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(size) < 1024 or suffix == "TiB":
                text = f"{size:.0f}" if size == int(size) else f"{size:.1f}"
                return f"{text} {suffix}"
            size /= 1024
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            scaled = value / threshold
            text = f"{scaled:.3g}{suffix}"
            return f"{text} {unit}".strip()
    text = f"{value:.0f}" if value == int(value) else f"{value:.3g}"
    return f"{text} {unit}".strip()
