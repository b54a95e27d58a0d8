"""Rendering recommendations and plans as table, JSON, YAML or CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from rich.console import Console
from rich.table import Table
from ruamel.yaml import YAML

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.engine.plan import Plan
from mimir_limit_optimizer.engine.results import Recommendations, Status, render_value

STATUS_STYLE = MappingProxyType(
    {Status.CHANGE: "yellow", Status.UNCHANGED: "green", Status.UNDEFINED: "dim"}
)


def _num(value: float) -> float | int | None:
    if not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def recommendation_rows(recs: Recommendations) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for tenant, result, i in recs.rows():
        spec = result.spec
        rows.append(
            {
                "tenant": tenant,
                "limit": spec.name,
                "unit": spec.unit,
                "current": _num(float(result.current[i])),
                "current_origin": result.current_origin(i),
                "recommended": _num(float(result.recommended[i])),
                "status": result.status_of(i).value,
                "reasons": result.reasons(i),
                "usage": {
                    "p50": _num(float(result.p50[i])),
                    "p95": _num(float(result.p95[i])),
                    "p99": _num(float(result.p99[i])),
                    "max": _num(float(result.maximum[i])),
                },
                "demand": _num(float(result.demand[i])),
                "confidence": round(float(result.confidence[i]), 3),
            }
        )
    return rows


def recommendations_document(
    recs: Recommendations, *, source: str, skipped: dict[str, str]
) -> dict[str, Any]:
    return {
        "generated_at": iso(recs.generated_at),
        "source": source,
        "window": {"start": iso(recs.window[0]), "end": iso(recs.window[1])},
        "skipped_tenants": [{"tenant": t, "reason": r} for t, r in skipped.items()],
        "recommendations": recommendation_rows(recs),
    }


def plan_document(plan: Plan) -> dict[str, Any]:
    return {
        "changes": [
            {
                "tenant": c.tenant,
                "limit": c.limit,
                "old": _num(c.old),
                "new": _num(c.new),
                "reasons": list(c.reasons),
            }
            for c in plan.changes
        ]
    }


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def to_yaml(document: dict[str, Any]) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


def recommendations_csv(recs: Recommendations) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "tenant",
            "limit",
            "unit",
            "current",
            "current_origin",
            "recommended",
            "status",
            "p50",
            "p95",
            "p99",
            "max",
            "demand",
            "confidence",
            "reasons",
        ]
    )
    for row in recommendation_rows(recs):
        usage = row["usage"]
        writer.writerow(
            [
                row["tenant"],
                row["limit"],
                row["unit"],
                row["current"],
                row["current_origin"],
                row["recommended"],
                row["status"],
                usage["p50"],
                usage["p95"],
                usage["p99"],
                usage["max"],
                row["demand"],
                row["confidence"],
                "; ".join(row["reasons"]),
            ]
        )
    return buffer.getvalue()


def plan_csv(plan: Plan) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["tenant", "limit", "old", "new", "reasons"])
    for c in plan.changes:
        writer.writerow([c.tenant, c.limit, _num(c.old), _num(c.new), "; ".join(c.reasons)])
    return buffer.getvalue()


def recommendations_table(recs: Recommendations, console: Console) -> None:
    table = Table(title="Recommended limits", show_lines=False, expand=False)
    for column in ("tenant", "limit", "unit"):
        table.add_column(column, no_wrap=True)
    for column in ("current", "p95 usage", "demand", "recommended"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("conf.", justify="right", no_wrap=True)
    table.add_column("why", overflow="fold", ratio=1)
    for tenant, result, i in recs.rows():
        spec = result.spec
        status = result.status_of(i)

        def cell(value: float, blank_if_nan: bool = True) -> str:
            if blank_if_nan and not math.isfinite(value):
                return ""
            return render_value(value, spec, unit=False)  # noqa: B023 (called right here)

        table.add_row(
            tenant,
            spec.name,
            "" if spec.type.value in ("bytes", "duration", "bool") else spec.unit,
            cell(float(result.current[i])),
            cell(float(result.p95[i])),
            cell(float(result.demand[i])),
            cell(float(result.recommended[i]), blank_if_nan=False),
            f"[{STATUS_STYLE[status]}]{status.value}[/]",
            f"{result.confidence[i]:.2f}",
            "; ".join(result.reasons(i)),
        )
    console.print(table)


def limits_table(catalogue: Catalogue, console: Console) -> None:
    table = Table(
        title=f"Limit catalogue ({catalogue.flavour}, checked against {catalogue.checked_against})"
    )
    for column in ("limit", "type", "default", "signal", "discard reasons", "checked"):
        table.add_column(column)
    for spec in catalogue.limits.values():
        table.add_row(
            spec.name,
            spec.type.value,
            render_value(spec.default, spec),
            spec.signal.value,
            ", ".join(spec.discard_reasons),
            spec.checked_against,
        )
    console.print(table)


def compact(details: Any) -> str:
    """Audit details on one line for tables."""
    return json.dumps(details, separators=(",", ":"), default=str)


def emit_rows(rows: list[dict[str, Any]], fmt: str) -> None:
    """Rows as json, yaml or csv on stdout (nested values as JSON in csv cells)."""
    if fmt == "json":
        sys.stdout.write(to_json({"items": rows}))
    elif fmt == "yaml":
        sys.stdout.write(to_yaml({"items": rows}))
    else:
        buffer = io.StringIO()
        columns = list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                [
                    compact(row.get(c)) if isinstance(row.get(c), dict | list) else row.get(c)
                    for c in columns
                ]
            )
        sys.stdout.write(buffer.getvalue())


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
