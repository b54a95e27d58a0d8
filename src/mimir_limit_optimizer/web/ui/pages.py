"""Server-rendered pages: dashboard, tenants, audit log, diff viewer (reading through the
read model only). Handlers are plain functions: Starlette runs them in its thread pool."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import asdict
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from mimir_limit_optimizer.web.ui.common import (
    UiContext,
    is_htmx,
    iso,
    opt_int,
    opt_str,
    opt_time,
    range_seconds,
    render,
)
from mimir_limit_optimizer.web.ui.model import (
    TENANT_SORTS,
    TENANT_STATUSES,
    AuditQuery,
    AuditRow,
    TenantQuery,
    UiError,
)

AUDIT_COLUMNS = ("id", "time", "level", "category", "component", "action", "tenant", "details")


def tenant_query(params: dict[str, str]) -> TenantQuery:
    status = opt_str(params, "status")
    if status is not None and status not in TENANT_STATUSES:
        raise UiError(f"status must be one of: {', '.join(TENANT_STATUSES)}")
    sort = params.get("sort", "tenant") or "tenant"
    if sort not in TENANT_SORTS:
        raise UiError(f"sort must be one of: {', '.join(TENANT_SORTS)}")
    order = params.get("dir", "asc") or "asc"
    if order not in ("asc", "desc"):
        raise UiError("dir must be asc or desc")
    return TenantQuery(
        pattern=opt_str(params, "q") or "*",
        status=status,  # checked against TENANT_STATUSES above
        sort=sort,
        descending=order == "desc",
        page=opt_int(params, "page", 1, 1, 1_000_000),
        per_page=opt_int(params, "perPage", 50, 1, 500),
    )


def audit_query(params: dict[str, str]) -> AuditQuery:
    return AuditQuery(
        tenant=opt_str(params, "tenant"),
        action=opt_str(params, "action"),
        category=opt_str(params, "category"),
        component=opt_str(params, "component"),
        since=opt_time(params, "since"),
        until=opt_time(params, "until"),
        page=opt_int(params, "page", 1, 1, 1_000_000),
        per_page=opt_int(params, "perPage", 50, 1, 500),
    )


def _link(params: dict[str, str], **changes: object) -> str:
    merged = {**params, **{k: str(v) for k, v in changes.items()}}
    return "?" + urlencode({k: v for k, v in merged.items() if v not in ("", None)})


def build_pages(ctx: UiContext) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def dashboard(request: Request) -> HTMLResponse:
        name = "_dashboard.html" if is_htmx(request) else "dashboard.html"
        return render(ctx, request, name, o=ctx.read.overview(), version=ctx.read.cycle_version())

    def tenants(request: Request) -> HTMLResponse:
        params = dict(request.query_params)
        page = ctx.read.tenants(tenant_query(params))
        name = "_tenant_rows.html" if is_htmx(request) else "tenants.html"
        return render(
            ctx, request, name, page=page, params=params, link=lambda **c: _link(params, **c),
            statuses=TENANT_STATUSES, sorts=TENANT_SORTS,
        )  # fmt: skip

    def tenant(request: Request, name: str) -> HTMLResponse:
        detail = ctx.read.tenant(name)
        chosen, _seconds = range_seconds(request.query_params)
        return render(
            ctx, request, "tenant.html", t=detail, ranges=("24h", "7d", "30d"), range=chosen
        )

    def audit(request: Request) -> HTMLResponse:
        params = dict(request.query_params)
        page = ctx.read.audit(audit_query(params))
        export = {k: v for k, v in params.items() if k not in ("page", "perPage")}
        name = "_audit_rows.html" if is_htmx(request) else "audit.html"
        return render(
            ctx, request, name, page=page, params=params, facets=ctx.read.audit_facets(),
            link=lambda **c: _link(params, **c), export_query=urlencode(export),
        )  # fmt: skip

    def export(request: Request, fmt: str) -> StreamingResponse:
        query = audit_query(dict(request.query_params))
        rows = ctx.read.audit_stream(query)
        if fmt == "csv":
            body: Iterator[str] = _csv(rows)
            kind = "text/csv; charset=utf-8"
        elif fmt == "json":
            body = _json_lines(rows)
            kind = "application/json"
        else:
            raise UiError("export format must be csv or json", status=404)
        return StreamingResponse(
            body,
            media_type=kind,
            headers={"content-disposition": f'attachment; filename="audit.{fmt}"'},
        )

    def diff(request: Request) -> HTMLResponse:
        params = dict(request.query_params)
        revisions = ctx.read.revisions()
        left = _revision_param(params, "left")
        right = _revision_param(params, "right")
        result = None
        if params.get("right"):
            result = ctx.read.diff(left, right, opt_int(params, "page", 1, 1, 1_000_000))
        return render(
            ctx, request, "diff.html", revisions=revisions, diff=result, params=params,
            left=left, right=right, link=lambda **c: _link(params, **c),
        )  # fmt: skip

    router.add_api_route("/", dashboard, methods=["GET"])
    router.add_api_route("/tenants", tenants, methods=["GET"])
    router.add_api_route("/tenants/{name:path}", tenant, methods=["GET"])
    router.add_api_route("/audit", audit, methods=["GET"])
    router.add_api_route("/audit/export.{fmt}", export, methods=["GET"])
    router.add_api_route("/diff", diff, methods=["GET"])
    return router


def _revision_param(params: dict[str, str], name: str) -> int | None:
    """A revision id; "pending" (or empty) means the pending plan / the current content."""
    raw = params.get(name, "").strip()
    if raw in ("", "pending", "current"):
        return None
    if not raw.isdigit():
        raise UiError(f"{name} must be a revision id, 'current' or 'pending'; got {raw[:40]!r}")
    return int(raw)


def _csv(rows: Iterator[AuditRow]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(AUDIT_COLUMNS)
    for count, row in enumerate(rows, start=1):
        writer.writerow(
            [
                row.id, iso(row.timestamp), row.level, row.category, row.component, row.action,
                row.tenant or "", json.dumps(row.details, sort_keys=True, default=str),
            ]
        )  # fmt: skip
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _json_lines(rows: Iterator[AuditRow]) -> Iterator[str]:
    """A JSON array, written row by row."""
    yield "["
    for count, row in enumerate(rows):
        yield ("," if count else "") + "\n" + json.dumps(asdict(row), default=str)
    yield "\n]\n"
