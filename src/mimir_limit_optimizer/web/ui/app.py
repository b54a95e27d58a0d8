"""Install the UI onto the FastAPI app of the UI port (server.uiPort): middleware, pages,
JSON API, static files, error pages."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from mimir_limit_optimizer.config.ui import UiSettings
from mimir_limit_optimizer.web.ui.actions import build_actions
from mimir_limit_optimizer.web.ui.api import PREFIX, build_api
from mimir_limit_optimizer.web.ui.auth import Authenticator, SessionStore
from mimir_limit_optimizer.web.ui.common import HERE, UiContext, is_htmx, make_templates, render
from mimir_limit_optimizer.web.ui.model import Actions, ReadModel, Tools, UiError
from mimir_limit_optimizer.web.ui.pages import build_pages
from mimir_limit_optimizer.web.ui.security import SecurityMiddleware
from mimir_limit_optimizer.web.ui.workbench import build_workbench

log = logging.getLogger("mimir_limit_optimizer.ui")


@dataclass
class UiParts:
    read: ReadModel
    actions: Actions
    settings: Callable[[], UiSettings]
    host: str
    clock: Callable[[], float]
    tools: Tools | None = None
    fallback_token: Callable[[], str | None] = lambda: None
    sessions: SessionStore | None = None  # None: sessions live in memory only


def install_ui(app: FastAPI, parts: UiParts) -> Authenticator:
    auth = Authenticator(
        parts.settings, clock=parts.clock, host=parts.host, fallback_token=parts.fallback_token,
        sessions=parts.sessions,
    )  # fmt: skip
    ctx = UiContext(parts.read, parts.actions, parts.tools, auth, make_templates())
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(build_api(ctx))
    app.include_router(build_pages(ctx))
    app.include_router(build_actions(ctx))
    app.include_router(build_workbench(ctx))

    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    app.add_api_route(f"{PREFIX}/openapi.json", openapi, methods=["GET"], include_in_schema=False)
    _add_error_pages(app, ctx)
    app.add_middleware(SecurityMiddleware, auth=auth)
    return auth


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _add_error_pages(app: FastAPI, ctx: UiContext) -> None:
    def show(request: Request, status: int, message: str) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=status)
        name = "_flash.html" if is_htmx(request) else "error.html"
        return render(ctx, request, name, status, ok=False, message=message, code=status)

    async def ui_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UiError)
        return show(request, exc.status, str(exc))

    async def bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        where = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()[:5]
        )
        return show(request, 400, f"malformed request: {where}")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = "no such page" if exc.status_code == 404 else str(exc.detail)
        return show(request, exc.status_code, message)

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("UI request %s failed", request.url.path)
        return show(request, 500, "internal error; the service log has the details")

    app.add_exception_handler(UiError, ui_error)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, crashed)
