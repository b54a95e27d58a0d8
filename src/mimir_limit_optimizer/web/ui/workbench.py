"""Pages to look closer and try things: configuration (view, validate, save or download),
metrics (charts and the PromQL box), test tools (validate an overrides file, what-if)."""

from __future__ import annotations

from fastapi import APIRouter, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from mimir_limit_optimizer.web.ui.common import (
    UiContext,
    opt_int,
    opt_str,
    range_seconds,
    render,
    require_login,
)
from mimir_limit_optimizer.web.ui.model import Tools, UiError

MAX_TEXT = 1024 * 1024  # bytes of YAML accepted from the editor or an upload
MAX_CELLS = 5_000  # form fields of the limit table (catalogue limits x (fields + tiers))
MAX_CELL = 100  # characters of one cell
TABLE_FIELDS = ("o:", "en:", "t:", "tb:")  # prefixes of the limit table's cells


async def _limit_edits(request: Request) -> tuple[dict[str, str], str]:
    """The limit table's cells and the fingerprint of the file it was made from."""
    form = await request.form()
    edits: dict[str, str] = {}
    for key, value in form.multi_items():
        if not key.startswith(TABLE_FIELDS):
            continue
        if not isinstance(value, str) or len(value) > MAX_CELL:
            raise UiError(f"{key[:60]}: at most {MAX_CELL} characters of text")
        edits[key] = value
        if len(edits) > MAX_CELLS:
            raise UiError(f"the table has more than {MAX_CELLS} cells")
    base = form.get("base")
    if not isinstance(base, str) or not base:
        raise UiError("the form lacks the file's fingerprint: reload the page")
    return edits, base


async def _text(request: Request, field: str = "text", upload: str = "file") -> str:
    form = await request.form()
    file = form.get(upload)
    if isinstance(file, UploadFile) and file.filename:
        data = await file.read(MAX_TEXT + 1)
    else:
        raw = form.get(field)
        data = (raw if isinstance(raw, str) else "").encode("utf-8")
    if len(data) > MAX_TEXT:
        raise UiError("the file is over 1 MiB: send a smaller one", status=413)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UiError(f"the file is not UTF-8 text (byte {exc.start})") from exc


def build_workbench(ctx: UiContext) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def config_page(request: Request) -> HTMLResponse:
        return render(ctx, request, "config.html", c=ctx.read.config(), lt=ctx.read.limit_table())

    async def limits_diff(request: Request) -> HTMLResponse:
        preview = ctx.read.preview_limit_edits(*await _limit_edits(request))
        status = 200 if preview.ok else 422
        return render(ctx, request, "_limit_diff.html", status, p=preview, saved=None)

    async def limits_save(request: Request) -> HTMLResponse:
        user = require_login(request, "save the configuration")
        edits, base = await _limit_edits(request)
        result = ctx.actions.save_limit_edits(edits, base, actor=user)
        table = ctx.read.limit_table()
        return render(ctx, request, "_limit_diff.html", p=None, saved=result, base=table.base)

    async def limits_download(request: Request) -> Response:
        preview = ctx.read.preview_limit_edits(*await _limit_edits(request))
        if not preview.ok:
            problems = [*preview.errors.values(), *(p.message for p in preview.problems)]
            raise UiError(f"not valid: {problems[0]}", status=422)
        return Response(
            preview.text,
            media_type="application/yaml",
            headers={"content-disposition": 'attachment; filename="config.yaml"'},
        )

    async def config_validate(request: Request) -> HTMLResponse:
        problems = ctx.read.validate_config(await _text(request))
        return render(ctx, request, "_problems.html", problems=problems, what="configuration")

    async def config_save(request: Request) -> HTMLResponse:
        user = require_login(request, "save the configuration")
        result = ctx.actions.save_config(await _text(request), actor=user)
        return render(ctx, request, "_flash.html", ok=result.ok, message=result.message)

    async def config_download(request: Request) -> Response:
        text = await _text(request)
        return Response(
            text,
            media_type="application/yaml",
            headers={"content-disposition": 'attachment; filename="config.yaml"'},
        )

    def charts(request: Request) -> HTMLResponse:
        name, _seconds = range_seconds(request.query_params, "24h")
        return render(ctx, request, "charts.html", range=name)

    def tools(request: Request) -> HTMLResponse:
        scenarios = list(ctx.tools.scenarios()) if ctx.tools is not None else []
        return render(ctx, request, "tools.html", scenarios=scenarios, tools=ctx.tools)

    async def validate_overrides(request: Request) -> HTMLResponse:
        problems = ctx.read.validate_overrides(await _text(request))
        status = 422 if problems else 200
        return render(
            ctx, request, "_problems.html", status, problems=problems, what="overrides file"
        )

    async def what_if(request: Request) -> HTMLResponse:
        if ctx.tools is None:
            raise UiError("test tools are not available in this service", status=404)
        form = await request.form()
        params = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        tenant = opt_str(params, "tenant")
        if tenant is None:
            raise UiError("name a tenant")
        buffer = None
        if params.get("buffer", "").strip():
            try:
                buffer = float(params["buffer"])
            except ValueError:
                raise UiError("buffer must be a number of percent, e.g. 30") from None
            if not 0 <= buffer <= 1000:
                raise UiError("buffer must be between 0 and 1000 percent")
        strategy = opt_str(params, "strategy")
        if strategy is not None and strategy not in ("percentile", "histogram"):
            raise UiError("strategy must be percentile or histogram")
        result = ctx.tools.what_if(tenant, buffer, strategy)
        return render(ctx, request, "_what_if.html", r=result)

    def tools_or_404() -> Tools:
        if ctx.tools is None:
            raise UiError("test tools are not available in this service", status=404)
        return ctx.tools

    async def backtest(request: Request) -> HTMLResponse:
        require_login(request, "run a backtest")  # CPU-heavy: only for people who may act
        tools = tools_or_404()
        form = await request.form()
        upload = form.get("file")
        if isinstance(upload, UploadFile) and upload.filename:
            started = tools.backtest(None, await _text(request, field="", upload="file"))
        else:
            scenario = str(form.get("scenario") or "").strip() or None
            started = tools.backtest(scenario, None)
        return render(ctx, request, "_backtest.html", job=tools.backtest_status(started["job"]))

    def backtest_status(request: Request, job: str) -> HTMLResponse:
        return render(ctx, request, "_backtest.html", job=tools_or_404().backtest_status(job))

    async def synthetic(request: Request) -> HTMLResponse:
        form = await request.form()
        params = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        tenants = opt_int(params, "tenants", 24, 1, 500)
        return render(ctx, request, "_synthetic.html", s=tools_or_404().synthetic_preview(tenants))

    router.add_api_route("/tools/backtest", backtest, methods=["POST"])
    router.add_api_route("/tools/backtest/{job}", backtest_status, methods=["GET"])
    router.add_api_route("/tools/synthetic", synthetic, methods=["POST"])
    router.add_api_route("/config", config_page, methods=["GET"])
    router.add_api_route("/config/validate", config_validate, methods=["POST"])
    router.add_api_route("/config/save", config_save, methods=["POST"])
    router.add_api_route("/config/download", config_download, methods=["POST"])
    router.add_api_route("/config/limits/diff", limits_diff, methods=["POST"])
    router.add_api_route("/config/limits/save", limits_save, methods=["POST"])
    router.add_api_route("/config/limits/download", limits_download, methods=["POST"])
    router.add_api_route("/charts", charts, methods=["GET"])
    router.add_api_route("/tools", tools, methods=["GET"])
    router.add_api_route("/tools/validate-overrides", validate_overrides, methods=["POST"])
    router.add_api_route("/tools/what-if", what_if, methods=["POST"])
    return router
