"""`mlo cost`: spend per tenant, team and cluster (today, month, year), the month-end forecast,
budget usage, budget caps enforcement would set, and cost recommendations.

One-shot: it reads the cost signals from the month's start (or further back for the trend)
and the usage of the recommendation cycle; it keeps no state (the service's ledger does)."""

from __future__ import annotations

import csv
import io
import math
import os
import time
from types import MappingProxyType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.cli import output
from mimir_limit_optimizer.cli.app import _cycle, app
from mimir_limit_optimizer.cli.common import (
    CommonOptions,
    FormatOpt,
    OutputFormat,
    OutputOpt,
    emit,
    fail,
    load,
    wide_console,
    with_common_options,
)
from mimir_limit_optimizer.config.models import Config, Mode
from mimir_limit_optimizer.controller.cost import collect_into
from mimir_limit_optimizer.controller.oneshot import Cycle
from mimir_limit_optimizer.engine.cost import (
    PERIODS,
    CapOutcome,
    CostRecommendation,
    CostReport,
    Ledger,
    PriceModel,
    apply_caps,
    build_report,
    plan_caps,
    recommendations,
)
from mimir_limit_optimizer.engine.cost.periods import BUDGET_NAMES, backfill_start, day_iso
from mimir_limit_optimizer.engine.cost.usage import QUANTITY_UNITS
from mimir_limit_optimizer.engine.plan import build_plan
from mimir_limit_optimizer.sources.base import SourceError
from mimir_limit_optimizer.sources.cost_signals import build_cost_source

# Unit of each signal's quantity in a unit price (weights of the model included).
_UNIT = MappingProxyType(
    {"samples": "sample", "series": "series-hour", "queries": "query", "fetched_bytes": "byte"}
)


def _num(value: float) -> float | int | None:
    if not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)


def _money(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _when(value: float) -> str | None:
    return output.iso(value) if math.isfinite(value) else None


def _row(report: CostReport, row: int) -> dict[str, Any]:
    return {
        "today": _money(report.spent["day"][row]),
        "month": _money(report.spent["month"][row]),
        "year": _money(report.spent["year"][row]),
        "forecast": {p: _money(report.forecast.end[p][row]) for p in PERIODS},
        "budget": {BUDGET_NAMES[p]: _money(report.budgets[p][row]) for p in PERIODS},
        "usage": {BUDGET_NAMES[p]: _money(report.usage_ratio[p][row]) for p in PERIODS},
        "reaches_budget": {
            BUDGET_NAMES[p]: _when(report.forecast.crossing[p][row]) for p in PERIODS
        },
    }


def _cap_rows(outcomes: list[CapOutcome]) -> list[dict[str, Any]]:
    return [
        {
            "tenant": o.cap.tenant,
            "limit": o.cap.limit,
            "current": _num(o.old),
            "planned": None if o.planned is None else _num(o.planned),
            "cap": _num(o.cap.value),
            "floor": _num(o.cap.floor),
            "new": None if o.new is None else _num(o.new),
            "outcome": o.note,
            "budget_scope": o.cap.scope,
            "period": o.cap.period,
            "reason": o.cap.reason,
        }
        for o in outcomes
    ]


def _recommendation_rows(items: list[CostRecommendation]) -> list[dict[str, Any]]:
    return [
        {
            "kind": r.kind,
            "scope": r.scope,
            "text": r.text,
            "limit": r.limit,
            "current": r.current,
            "target": r.target,
            "unused_share": r.unused_share,
            "monthly_saving": None if r.monthly_saving is None else _money(r.monthly_saving),
            "period": r.period,
            "budget": r.budget,
            "forecast": None if r.forecast is None else _money(r.forecast),
            "reaches_at": None if r.crossing_at is None else _when(r.crossing_at),
        }
        for r in items
    ]


def cost_document(
    report: CostReport,
    *,
    source: str,
    caps: list[CapOutcome],
    advice: list[CostRecommendation],
    enforcing: bool,
) -> dict[str, Any]:
    scopes = report.scopes
    order = sorted(range(len(scopes.tenants)), key=lambda i: -report.spent["month"][i])
    tenants = []
    for i in order:
        row = {"tenant": scopes.tenants[i], "team": scopes.team_of[i], **_row(report, i)}
        row["mode"] = "enforce" if report.enforce[i] else "monitor"
        row["quantities_month"] = {
            f"{signal} ({QUANTITY_UNITS[signal]})": _money(values[i])
            for signal, values in report.quantities.items()
        }
        tenants.append(row)
    g = scopes.global_row
    return {
        "generated_at": output.iso(report.now),
        "source": source,
        "currency": report.currency,
        "method": report.method,
        "unit_prices": {
            f"per {_UNIT[s]}": p for s, p in report.price.unit_price.items() if s in _UNIT
        },
        "periods": dict(report.period_keys),
        "coverage": {p: round(report.coverage[p], 4) for p in PERIODS},
        "forecast_method": report.forecast.trend.method,
        "missing": dict(report.missing),
        "global": _row(report, g),
        "daily": [
            {
                "date": day_iso(int(d)),
                "cost": _money(report.month_daily[g, j]),
                "coverage": round(float(report.month_coverage[j]), 4),
            }
            for j, d in enumerate(report.month_days.tolist())
        ],
        "teams": [
            {"team": team, "tenants": int((scopes.team_index == k).sum()), **_row(report, row)}
            for k, team in enumerate(scopes.teams)
            for row in [scopes.team_row(team)]
        ],
        "tenants": tenants,
        "enforcement": "acting" if enforcing else "would cap (dry-run or enforcement off)",
        "caps": _cap_rows(caps),
        "recommendations": _recommendation_rows(advice),
    }


def cost_csv(report: CostReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    budgets = [BUDGET_NAMES[p] for p in PERIODS]
    writer.writerow(
        [
            "scope", "tenant", "team", "today", "month", "year",
            *(f"forecast_{p}" for p in PERIODS), *(f"budget_{b}" for b in budgets),
            *(f"usage_{b}" for b in budgets), "reaches_monthly_budget", "currency",
        ]
    )  # fmt: skip
    scopes = report.scopes
    for row in range(scopes.size):
        kind = scopes.kind(row)
        tenant = scopes.name(row) if kind == "tenant" else ""
        team = (scopes.team_of[row] or "") if kind == "tenant" else scopes.name(row)
        data = _row(report, row)
        writer.writerow(
            [
                kind, tenant, "" if kind == "global" else team,
                data["today"], data["month"], data["year"],
                *data["forecast"].values(), *data["budget"].values(), *data["usage"].values(),
                data["reaches_budget"]["monthly"] or "", report.currency,
            ]
        )  # fmt: skip
    return buffer.getvalue()


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}" if math.isfinite(value) else ""


def _pct(value: float) -> str:
    return f"{value:.0%}" if math.isfinite(value) else ""


def cost_tables(
    report: CostReport,
    console: Console,
    *,
    caps: list[CapOutcome],
    advice: list[CostRecommendation],
    top: int,
) -> None:
    cur = report.currency
    keys = report.period_keys
    console.print(
        f"[bold]Costs[/] ({report.method} model, {cur}): today {keys['day']}, month "
        f"{keys['month']} (data covers {report.coverage['month']:.0%} of the month so far); "
        f"forecast: {report.forecast.trend.method}",
        highlight=False,
    )
    for signal, why in report.missing.items():
        console.print(f"[yellow]{signal} cost missing or partial:[/] {why}", highlight=False)
    scopes = report.scopes
    summary = Table(title="Cluster and teams", expand=False)
    for column in ("scope", "tenants", "today", "month", "month forecast", "monthly budget",
                   "used", "forecast / budget", "reaches budget"):  # fmt: skip
        summary.add_column(column, justify="left" if column == "scope" else "right")
    rows = [(scopes.global_row, "global", len(scopes.tenants))] + [
        (scopes.team_row(t), f"team {t}", int((scopes.team_index == k).sum()))
        for k, t in enumerate(scopes.teams)
    ]
    month, end = report.spent["month"], report.forecast.end["month"]
    budget, crossing = report.budgets["month"], report.forecast.crossing["month"]
    for row, label, members in rows:
        summary.add_row(
            label,
            str(members),
            _fmt(report.spent["day"][row]),
            _fmt(month[row]),
            _fmt(end[row]),
            _fmt(budget[row]),
            _pct(report.usage_ratio["month"][row]),
            _pct(end[row] / budget[row]) if budget[row] > 0 else "",
            (_when(crossing[row]) or "")[:16].replace("T", " "),
        )
    console.print(summary)
    tenants = Table(title=f"Tenants (top {top} by month to date)", expand=False)
    for column in ("tenant", "team", "mode", "today", "month", "month forecast",
                   "monthly budget", "used", "reaches budget"):  # fmt: skip
        tenants.add_column(
            column, justify="left" if column in ("tenant", "team", "mode") else "right"
        )
    order = sorted(range(len(scopes.tenants)), key=lambda i: -month[i])[:top]
    for i in order:
        tenants.add_row(
            scopes.tenants[i],
            scopes.team_of[i] or "",
            "enforce" if report.enforce[i] else "monitor",
            _fmt(report.spent["day"][i]),
            _fmt(month[i]),
            _fmt(end[i]),
            _fmt(budget[i]),
            _pct(report.usage_ratio["month"][i]),
            (_when(crossing[i]) or "")[:16].replace("T", " "),
        )
    console.print(tenants)
    if caps:
        table = Table(title="Budget caps", expand=False)
        for column in ("tenant", "limit", "current", "cap", "floor", "outcome", "why"):
            table.add_column(column, overflow="fold")
        for cap in _cap_rows(caps):
            table.add_row(
                cap["tenant"], cap["limit"], str(cap["current"]), str(cap["cap"]),
                str(cap["floor"]), cap["outcome"], cap["reason"],
            )  # fmt: skip
        console.print(table)
    if advice:
        console.print(f"[bold]Recommendations[/] ({len(advice)}, first {top}):")
        for item in advice[:top]:
            console.print(f"  - {item.text}", highlight=False)


def compute(
    config: Config, cycle: Cycle, catalogue: Catalogue, *, now: float, env: dict[str, str]
) -> tuple[CostReport, list[CapOutcome], list[CostRecommendation], str]:
    """Collect the cost signals and build the report, the caps preview and the advice."""
    settings = config.cost_control
    price = PriceModel.from_settings(settings)
    source = build_cost_source(config, catalogue, now=now, env=env)
    start = backfill_start(now, settings.forecast_days) + 1.0
    ledger = Ledger()
    latest = None
    if price.priced:
        ledger, latest = collect_into(ledger, source, price.priced, start=start, end=now)
        ledger = ledger.prune(now)
    report = build_report(ledger, settings, now, latest=latest)
    caps: list[CapOutcome] = []
    if settings.auto_limit_reduction:
        decision = plan_caps(
            report, settings, sticky={}, digits=config.change_policy.rounding_digits
        )
        _, caps = apply_caps(
            build_plan(cycle.recommendations), cycle.recommendations, decision.caps
        )
    advice = recommendations(report, cycle.recommendations) if settings.cost_optimization else []
    return report, caps, advice, source.describe()


@app.command("cost")
@with_common_options
def cost(
    opts: CommonOptions,
    fmt: FormatOpt = OutputFormat.TABLE,
    output_file: OutputOpt = None,
    top: Annotated[
        int, typer.Option("--top", min=1, help="Tenants and recommendations shown (table).")
    ] = 20,
) -> None:
    """Spend per tenant and team (today, month, year), the month-end forecast, budget usage,
    budget caps and cost recommendations (see docs/cost.md)."""
    loaded, catalogue = load(opts)
    config = loaded.config
    if not config.cost_control.enabled:
        Console(stderr=True, soft_wrap=True).print(
            "[yellow]note:[/] costControl.enabled is false: the service does not track these "
            "costs (this command computes them anyway)",
            highlight=False,
        )
    cycle, _ = _cycle(loaded, catalogue)
    now = time.time()
    try:
        report, caps, advice, description = compute(
            config, cycle, catalogue, now=now, env=dict(os.environ)
        )
    except SourceError as exc:
        fail(f"could not collect the cost signals: {exc}", code=1)
    enforcing = config.mode is Mode.PROD and config.cost_control.auto_limit_reduction
    if fmt is OutputFormat.TABLE:
        if output_file is None:
            cost_tables(report, wide_console(), caps=caps, advice=advice, top=top)
        else:
            recorder = Console(record=True, width=200, file=io.StringIO())
            cost_tables(report, recorder, caps=caps, advice=advice, top=top)
            emit(recorder.export_text(), output_file)
    elif fmt is OutputFormat.CSV:
        emit(cost_csv(report), output_file)
    else:
        document = cost_document(
            report, source=description, caps=caps, advice=advice, enforcing=enforcing
        )
        text = output.to_yaml(document) if fmt is OutputFormat.YAML else output.to_json(document)
        emit(text, output_file)
