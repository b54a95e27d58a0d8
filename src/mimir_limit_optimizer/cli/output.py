"""Rendering recommendations and plans as table, JSON, YAML or CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import textwrap
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from ruamel.yaml import YAML

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.engine.planning import (
    PLAN_SCHEMA_VERSION,
    CyclePlan,
    PlanItem,
    bounds,
    item_rows,
)
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


def _steps(plan: CyclePlan | None) -> dict[tuple[str, str], PlanItem]:
    return {} if plan is None else {(i.tenant, i.limit): i for i in plan.items}


def recommendation_rows(
    recs: Recommendations, plan: CyclePlan | None = None
) -> list[dict[str, Any]]:
    """One row per tenant x limit (docs/output.md, schema version PLAN_SCHEMA_VERSION):
    `target` is the engine's answer, `recommended` the next safe step towards it (what the
    next cycle writes), `held` why that step is not written now, `bounds` the range the
    target comes from."""
    steps = _steps(plan)
    rows: list[dict[str, Any]] = []
    for tenant, result, i in recs.rows():
        spec = result.spec
        item = steps.get((tenant, spec.name))
        step = item.step if item is not None else float(result.recommended[i])
        lower, upper = bounds(result, i)
        reasons = result.reasons(i)
        if item is not None:
            reasons += [r for r in item.reasons if r not in reasons]
            if item.held:
                reasons.append(item.held if item.held.startswith("held") else f"held: {item.held}")
        rows.append(
            {
                "tenant": tenant,
                "limit": spec.name,
                "unit": spec.unit,
                "current": _num(float(result.current[i])),
                "current_origin": result.current_origin(i),
                "target": _num(result.target_of(i)),
                "recommended": _num(step),
                "held": item.held if item is not None else None,
                "bounds": {"lower": _num(lower), "upper": _num(upper)},
                "status": result.status_of(i).value,
                "reasons": reasons,
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
    recs: Recommendations,
    *,
    source: str,
    skipped: dict[str, str],
    plan: CyclePlan | None = None,
) -> dict[str, Any]:
    return {
        "schema_version": PLAN_SCHEMA_VERSION,
        "generated_at": iso(recs.generated_at),
        "source": source,
        "window": {"start": iso(recs.window[0]), "end": iso(recs.window[1])},
        "skipped_tenants": [{"tenant": t, "reason": r} for t, r in skipped.items()],
        "recommendations": recommendation_rows(recs, plan),
    }


def plan_document(plan: CyclePlan) -> dict[str, Any]:
    """The plan: every change the engine asks for, with its target, the step the next write
    sets, and, when held back, why (docs/output.md)."""
    writes = plan.writes
    return {
        "schema_version": PLAN_SCHEMA_VERSION,
        "generated_at": iso(plan.recommendations.generated_at),
        "summary": {
            "changes": len(plan.items),
            "writes": len(writes),
            "held": len(plan.items) - len(writes),
            "tenants": len(writes.tenants()),
        },
        "changes": item_rows(plan),
    }


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def to_yaml(document: dict[str, Any]) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


RECOMMENDATION_COLUMNS = (
    "tenant", "limit", "unit", "current", "current_origin", "target", "recommended", "held",
    "lower_bound",
    "upper_bound", "status", "p50", "p95", "p99", "max", "demand", "confidence", "reasons",
)  # fmt: skip


def recommendations_csv(recs: Recommendations, plan: CyclePlan | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RECOMMENDATION_COLUMNS)
    for row in recommendation_rows(recs, plan):
        usage, bound = row["usage"], row["bounds"]
        writer.writerow(
            [
                row["tenant"], row["limit"], row["unit"], row["current"], row["current_origin"],
                row["target"],
                row["recommended"], row["held"] or "", bound["lower"], bound["upper"],
                row["status"], usage["p50"], usage["p95"], usage["p99"], usage["max"],
                row["demand"], row["confidence"], "; ".join(row["reasons"]),
            ]
        )  # fmt: skip
    return buffer.getvalue()


def plan_csv(plan: CyclePlan) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["tenant", "limit", "current", "target", "recommended", "held", "reasons"])
    for row in item_rows(plan):
        writer.writerow(
            [
                row["tenant"], row["limit"], row["current"], row["target"], row["recommended"],
                row["held"] or "", "; ".join(row["reasons"]),
            ]
        )  # fmt: skip
    return buffer.getvalue()


# Narrower than this, the table moves each row's reasons to wrapped lines under the row: a
# "why" column squeezed beside nine others is cut or dropped, and the reasons are the point.
WIDE_TABLE = 160


def recommendations_table(
    recs: Recommendations, console: Console, plan: CyclePlan | None = None
) -> None:
    rows = recommendation_rows(recs, plan)
    if console.width < WIDE_TABLE:
        _recommendations_lines(recs, rows, console)
        return
    table = Table(title="Recommended limits", show_lines=False, expand=False)
    for column in ("tenant", "limit", "unit"):
        table.add_column(column, no_wrap=True)
    for column in ("current", "p95 usage", "demand", "target", "next step"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("conf.", justify="right", no_wrap=True)
    table.add_column("why", overflow="fold", ratio=1, min_width=40)
    for (tenant, result, i), row in zip(recs.rows(), rows, strict=True):
        spec = result.spec
        status = result.status_of(i)

        def cell(value: float | None, blank: bool = True) -> str:
            if value is None:
                return "" if blank else "?"
            return render_value(float(value), spec, unit=False)  # noqa: B023 (called right here)

        table.add_row(
            tenant,
            spec.name,
            "" if spec.type.value in ("bytes", "duration", "bool") else spec.unit,
            cell(row["current"]),
            cell(_num(float(result.p95[i]))),
            cell(row["demand"]),
            cell(row["target"], blank=False),
            cell(row["recommended"], blank=False) + (" (held)" if row["held"] else ""),
            f"[{STATUS_STYLE[status]}]{status.value}[/]",
            f"{result.confidence[i]:.2f}",
            "; ".join(_origin(row) + row["reasons"]),
        )
    console.print(table)


def _origin(row: dict[str, Any]) -> list[str]:
    """Where the current value comes from, as the first "why" (tenant override, cluster
    default, flag default)."""
    origin = row.get("current_origin")
    return [f"current value from: {origin}"] if origin else []


def _recommendations_lines(
    recs: Recommendations, rows: list[dict[str, Any]], console: Console
) -> None:
    """Each tenant x limit on one line, its reasons wrapped on the lines below it."""
    console.print("[bold]Recommended limits[/] (current -> target; next step)", highlight=False)
    width = max(console.width, 40)
    for (tenant, result, i), row in zip(recs.rows(), rows, strict=True):
        spec = result.spec
        status = result.status_of(i)

        def value(v: float | None) -> str:
            return "?" if v is None else render_value(float(v), spec)  # noqa: B023 (used here)

        step = value(row["recommended"])
        if row["target"] != row["recommended"]:
            step = f"{value(row['target'])}; next {step}" + (" (held)" if row["held"] else "")
        head = Text.assemble(
            (f"{tenant} ", "bold"),
            f"{spec.name}: {value(row['current'])} -> {step} ",
            (status.value, STATUS_STYLE[status]),
            f" conf {result.confidence[i]:.2f}",
        )
        console.print(head, overflow="fold", highlight=False)
        if row.get("current_origin"):
            origin = f"current value from: {row['current_origin']}"
            for line in textwrap.wrap(
                origin, width=width, initial_indent="    ", subsequent_indent="      "
            ):
                console.print(line, highlight=False, markup=False, overflow="fold")
        for reason in row["reasons"]:
            for line in textwrap.wrap(
                reason, width=width, initial_indent="    - ", subsequent_indent="      "
            ):
                console.print(line, highlight=False, markup=False, overflow="fold")


def plan_text(plan: CyclePlan, catalogue: Catalogue, *, with_reasons: bool = True) -> str:
    """A readable diff, grouped by tenant; the target shows where a step is heading:

    tenant-a
      - ingestion_rate: 10K samples/s -> 9K samples/s (-10%), target 2.4K samples/s
          demand 2K samples/s (p95 over the window)
      = max_global_series_per_user: 150K (held: pinned: listed in safety.pinnedTenants)
    """
    if not plan.items:
        return "No changes: every managed limit is where it should be.\n"
    lines: list[str] = []
    tenant = None
    for item in plan.items:
        if item.tenant != tenant:
            tenant = item.tenant
            lines.append(tenant)
        spec = catalogue.limits[item.limit]
        old, new = render_value(item.current, spec), render_value(item.step, spec)
        rel = None if item.current == 0 else (item.step - item.current) / item.current
        delta = f" ({rel:+.0%})" if rel is not None else " (from 0)"
        goal = ""
        if math.isfinite(item.target) and item.target != item.step:
            goal = f", target {render_value(item.target, spec)}"
        sign = "=" if item.held else "+" if item.step > item.current else "-"
        held = f" [held: {item.held}]" if item.held else ""
        lines.append(f"  {sign} {item.limit}: {old} -> {new}{delta}{goal}{held}")
        if with_reasons:
            lines.extend(f"      {reason}" for reason in item.reasons)
    writes = plan.writes
    raised = sum(1 for c in writes.changes if c.new > c.old)
    lines.append(
        f"{len(writes)} change(s) to write for {len(writes.tenants())} tenant(s): "
        f"{raised} raised, {len(writes) - raised} lowered; "
        f"{len(plan.items) - len(writes)} held back"
    )
    return "\n".join(lines) + "\n"


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
