"""Login, logout and the mutating actions of the UI (every one needs a login and is audited
by the controller with the user); plus the live-update event stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from mimir_limit_optimizer.web.ui.auth import SESSION_COOKIE
from mimir_limit_optimizer.web.ui.common import (
    UiContext,
    is_htmx,
    render,
    require_login,
    visitor,
)
from mimir_limit_optimizer.web.ui.model import ActionResult, UiError
from mimir_limit_optimizer.web.ui.security import cookie_header

SSE_POLL = 1.0  # seconds between checks for a finished cycle
SSE_KEEPALIVE = 15.0
SSE_MAX = 3600.0  # a stream ends after an hour; EventSource reconnects by itself


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect to another host after a login."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    return target if not parts.netloc and not parts.scheme else "/"


def _flash(ctx: UiContext, request: Request, result: ActionResult) -> HTMLResponse:
    return render(ctx, request, "_flash.html", ok=result.ok, message=result.message)


def build_actions(ctx: UiContext) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def login_form(request: Request) -> HTMLResponse:
        target = _safe_next(request.query_params.get("next"))
        return render(ctx, request, "login.html", next=target, error=None)

    async def login(request: Request) -> Response:
        form = await request.form()
        username = str(form.get("username") or "")[:64]
        secret = str(form.get("password") or "")[:1024]
        target = _safe_next(str(form.get("next") or "/"))
        client = request.client.host if request.client else "unknown"
        if ctx.auth.throttled(client):
            return render(
                ctx, request, "login.html", 429, next=target,
                error="too many failed logins from this address: wait five minutes",
            )  # fmt: skip
        if not ctx.auth.can_log_in():
            return render(
                ctx, request, "login.html", 403, next=target,
                error="no login is configured: set ui.auth.token or ui.auth.users",
            )  # fmt: skip
        user = ctx.auth.check(client, username, secret)
        if user is None:
            return render(
                ctx, request, "login.html", 401, next=target,
                error="wrong user name, password or token",
            )  # fmt: skip
        session = ctx.auth.start(user)
        response = RedirectResponse(target, status_code=303)
        response.raw_headers.append(
            (
                b"set-cookie",
                cookie_header(SESSION_COOKIE, session.id, secure=visitor(request).secure),
            )
        )
        return response

    def logout(request: Request) -> Response:
        ctx.auth.end(visitor(request).session_id)
        response = RedirectResponse("/", status_code=303)
        response.raw_headers.append(
            (
                b"set-cookie",
                cookie_header(SESSION_COOKIE, "", secure=visitor(request).secure, max_age=0),
            )
        )
        return response

    async def breaker(request: Request) -> HTMLResponse:
        user = require_login(request, "switch protection")
        state = str((await request.form()).get("enabled") or "")
        if state not in ("on", "off"):
            raise UiError("enabled must be on or off")
        return _flash(ctx, request, ctx.actions.set_breaker(state == "on", actor=user))

    async def freeze(request: Request) -> HTMLResponse:
        user = require_login(request, "freeze or unfreeze applying")
        state = str((await request.form()).get("frozen") or "")
        if state not in ("on", "off"):
            raise UiError("frozen must be on or off")
        return _flash(ctx, request, ctx.actions.set_freeze(state == "on", actor=user))

    def cycle(request: Request) -> HTMLResponse:
        user = require_login(request, "run a cycle")
        return _flash(ctx, request, ctx.actions.run_cycle(actor=user))

    async def rollback(request: Request) -> HTMLResponse:
        user = require_login(request, "roll back")
        form = await request.form()
        raw = str(form.get("revision") or "")
        if not raw.isdigit():
            raise UiError("choose a revision to roll back to")
        if form.get("confirm") != raw:
            raise UiError(f"type the revision id ({raw}) into the confirmation box to roll back")
        return _flash(ctx, request, ctx.actions.rollback(int(raw), actor=user))

    async def events(request: Request) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            seen = ctx.read.cycle_version()
            yield f"retry: 3000\nevent: hello\ndata: {seen}\n\n"
            waited = idle = 0.0
            while waited < SSE_MAX:
                if await request.is_disconnected():
                    return
                await asyncio.sleep(SSE_POLL)
                waited += SSE_POLL
                idle += SSE_POLL
                version = ctx.read.cycle_version()
                if version != seen:
                    seen, idle = version, 0.0
                    yield f"event: cycle\ndata: {version}\n\n"
                elif idle >= SSE_KEEPALIVE:
                    idle = 0.0
                    yield ": keepalive\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    router.add_api_route("/login", login_form, methods=["GET"])
    router.add_api_route("/login", login, methods=["POST"])
    router.add_api_route("/logout", logout, methods=["POST"])
    router.add_api_route("/actions/breaker", breaker, methods=["POST"])
    router.add_api_route("/actions/freeze", freeze, methods=["POST"])
    router.add_api_route("/actions/cycle", cycle, methods=["POST"])
    router.add_api_route("/actions/rollback", rollback, methods=["POST"])
    router.add_api_route("/ui/events", events, methods=["GET"])
    _ = is_htmx
    return router
