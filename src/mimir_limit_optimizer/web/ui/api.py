"""The UI's JSON API under /api/v1 (OpenAPI schema at /api/v1/openapi.json): the same read
model as the pages, as plain JSON. Charts on the pages fetch their data here."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mimir_limit_optimizer.web.ui.common import UiContext, opt_int, range_seconds, require_login
from mimir_limit_optimizer.web.ui.model import UiError
from mimir_limit_optimizer.web.ui.pages import audit_query, tenant_query

PREFIX = "/api/v1"


def _json(value: Any) -> JSONResponse:
    return JSONResponse(value)


def build_api(ctx: UiContext) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["read model"])
    read = ctx.read

    def overview() -> JSONResponse:
        """Mode, counts of the last 24 h, the last cycle, health, and the per-cycle history."""
        return _json(asdict(read.overview()))

    def tenants(request: Request) -> JSONResponse:
        """Query: q (glob), status, sort, dir (asc|desc), page, perPage (<= 500)."""
        page = read.tenants(tenant_query(dict(request.query_params)))
        return _json({**asdict(page), "pages": page.pages})

    def tenant(name: str) -> JSONResponse:
        return _json(asdict(read.tenant(name)))

    def series(request: Request, name: str) -> JSONResponse:
        """Usage, demand (accepted + discarded) and the limit of one tenant's usage-driven
        limit over `range` (24h, 7d, 30d); `marks.recommendation` is the next step."""
        limit = request.query_params.get("limit", "")
        _range, seconds = range_seconds(request.query_params)
        return _json(asdict(read.tenant_series(name, limit, seconds)))

    def audit(request: Request) -> JSONResponse:
        page = read.audit(audit_query(dict(request.query_params)))
        return _json({**asdict(page), "pages": page.pages})

    def revisions() -> JSONResponse:
        return _json([asdict(r) for r in read.revisions()])

    def diff(request: Request) -> JSONResponse:
        params = request.query_params
        left, right = params.get("left", ""), params.get("right", "")
        for name, raw in (("left", left), ("right", right)):
            if raw not in ("", "pending", "current") and not raw.isdigit():
                raise UiError(f"{name} must be a revision id, 'current' or 'pending'")
        result = read.diff(
            int(left) if left.isdigit() else None,
            int(right) if right.isdigit() else None,
            opt_int(params, "page", 1, 1, 1_000_000),
        )
        return _json({**asdict(result), "ups": result.ups, "downs": result.downs})

    def metrics(request: Request) -> JSONResponse:
        _range, seconds = range_seconds(request.query_params)
        return _json({name: asdict(s) for name, s in read.metrics(seconds).items()})

    def query(request: Request) -> JSONResponse:
        """A read-only PromQL range query through the configured source (login required)."""
        require_login(request, "run PromQL queries")
        _range, seconds = range_seconds(request.query_params, "1h")
        return _json(asdict(read.query(request.query_params.get("q", ""), seconds)))

    def config() -> JSONResponse:
        view = read.config()
        return _json({"path": view.path, "entries": [asdict(e) for e in view.entries]})

    async def validate(request: Request) -> JSONResponse:
        """POST the YAML as the body; 200 with the problems (an empty list: valid)."""
        body = await request.body()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise UiError("the body is not UTF-8 text") from None
        return _json({"problems": [asdict(p) for p in read.validate_config(text)]})

    def synthetic(request: Request) -> JSONResponse:
        """The synthetic cluster's total ingestion rate over the last day (Test tools)."""
        if ctx.tools is None:
            raise UiError("test tools are not available in this service", status=404)
        tenants = opt_int(request.query_params, "tenants", 24, 1, 500)
        preview = ctx.tools.synthetic_preview(tenants)
        return _json(
            {
                "x": preview["x"],
                "series": {"total": preview["total"]},
                "unit": "samples/s",
                "marks": {},
            }
        )

    router.add_api_route("/overview", overview, methods=["GET"])
    router.add_api_route("/tools/synthetic", synthetic, methods=["GET"])
    router.add_api_route("/tenants", tenants, methods=["GET"])
    router.add_api_route("/tenants/{name}/series", series, methods=["GET"])
    router.add_api_route("/tenants/{name}", tenant, methods=["GET"])
    router.add_api_route("/audit", audit, methods=["GET"])
    router.add_api_route("/revisions", revisions, methods=["GET"])
    router.add_api_route("/diff", diff, methods=["GET"])
    router.add_api_route("/metrics", metrics, methods=["GET"])
    router.add_api_route("/query", query, methods=["GET"])
    router.add_api_route("/config", config, methods=["GET"])
    router.add_api_route("/config/validate", validate, methods=["POST"])
    return router
