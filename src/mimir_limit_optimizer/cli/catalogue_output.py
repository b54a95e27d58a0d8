"""`mlo limits`: the limit catalogue as a table, JSON, YAML or CSV.

Kept apart from cli/output.py (recommendations and plans) so that listing the catalogue needs
neither numpy nor the engine: `mlo limits` starts as fast as `mlo --help`."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import TYPE_CHECKING, Any

from mimir_limit_optimizer.catalogue import Catalogue, LimitSpec, LimitType
from mimir_limit_optimizer.catalogue.units import format_duration, format_number

if TYPE_CHECKING:
    from rich.console import Console


def _num(value: float) -> float | int | None:
    if not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)


def shown_default(spec: LimitSpec) -> str:
    """Mimir's default of `spec` for people: 10K samples/s, 1 KiB, 10m, false."""
    value = spec.default
    if spec.type is LimitType.DURATION:
        return format_duration(value)
    if spec.type is LimitType.BOOL:
        return "true" if value else "false"
    if spec.type is LimitType.BYTES:
        return format_number(value, "bytes")
    text = format_number(value, spec.unit)
    return f"{text} (unlimited)" if value == 0 and spec.zero_means_unlimited else text


def limits_table(catalogue: Catalogue, console: Console) -> None:
    from rich.table import Table

    table = Table(
        title=f"Limit catalogue ({catalogue.flavour}, checked against {catalogue.checked_against})"
    )
    for column in ("limit", "type", "default", "signal", "discard reasons", "checked"):
        table.add_column(column, overflow="fold")
    for spec in catalogue.limits.values():
        table.add_row(
            spec.name,
            spec.type.value,
            shown_default(spec),
            spec.signal.value,
            ", ".join(spec.discard_reasons),
            spec.checked_against,
        )
    console.print(table)


def limit_rows(catalogue: Catalogue) -> list[dict[str, Any]]:
    """The catalogue as rows: everything a reviewer needs to check an entry."""
    return [
        {
            "name": s.name,
            "type": s.type.value,
            "default": _num(s.default),
            "unit": s.unit,
            "signal": s.signal.value,
            "category": s.category,
            "zero_means_unlimited": s.zero_means_unlimited,
            "usage_query": s.usage_query,
            "discard_query": s.discard_query,
            "discard_reasons": list(s.discard_reasons),
            "derived_from": s.derived_from,
            "derive_factor": s.derive_factor,
            "buffer_percent": s.buffer_percent,
            "min": _num(s.min_value),
            "max": _num(s.max_value),
            "may_lower": s.may_lower,
            "checked_against": s.checked_against,
        }
        for s in catalogue.limits.values()
    ]


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def to_yaml(document: dict[str, Any]) -> str:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


def rows_csv(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV (lists as JSON in their cell)."""
    buffer = io.StringIO()
    columns = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [
                json.dumps(v) if isinstance(v, list | dict) else v
                for v in (row.get(c) for c in columns)
            ]
        )
    return buffer.getvalue()
