"""ASGI middleware in front of the UI's server: security headers on every response, the
session and anonymous cookies, CSRF on every state-changing request, the login wall for
read-only pages when configured, and a cap on request bodies.

CSRF: a POST/PUT/PATCH/DELETE must carry the session's token in `X-CSRF-Token` (htmx sends it
from the page) or, for an urlencoded form, in the `csrf_token` field. A request with an
`Authorization` header is exempt: it authenticates itself (the REST API's bearer token), and
browsers never attach that header across sites.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mimir_limit_optimizer.web.ui.auth import ANON_COOKIE, SESSION_COOKIE, Authenticator

MAX_BODY = 1024 * 1024 + 64 * 1024  # 1 MiB of upload plus the form's other fields
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MAX_FORM_FIELDS = 10_000  # the limit table posts ~300 cells (the body is capped anyway)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
# Paths anyone may read even when reading needs a login.
PUBLIC = ("/login", "/static/", "/favicon.ico", "/api/v1/circuit-breaker/")


@dataclass
class UiRequest:
    """What handlers learn about the visitor (scope["state"]["ui"])."""

    user: str | None
    session_id: str | None
    identity: str  # session id, or the anonymous id
    csrf: str
    secure: bool


def ui_state(scope_state: Any) -> UiRequest:
    state: UiRequest = scope_state.ui
    return state


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cookies = cookie_parser(headers.get("cookie", ""))
        session = self.auth.session(cookies.get(SESSION_COOKIE))
        anon = cookies.get(ANON_COOKIE, "")
        new_anon = None
        if session is None and not (20 <= len(anon) <= 64 and anon.isascii()):
            anon = new_anon = secrets.token_urlsafe(24)
        identity = session.id if session is not None else anon
        secure = self._secure(scope, headers)
        state = UiRequest(
            user=session.user if session else None,
            session_id=session.id if session else None,
            identity=identity,
            csrf=self.auth.csrf_token(identity),
            secure=secure,
        )
        scope.setdefault("state", {})["ui"] = state
        extra: list[tuple[bytes, bytes]] = []
        if new_anon is not None:
            extra.append((b"set-cookie", cookie_header(ANON_COOKIE, new_anon, secure=secure)))
        send = _with_headers(send, extra)
        path: str = scope["path"]
        wants_json = path.startswith("/api/") or "application/json" in headers.get("accept", "")

        if scope["method"] not in SAFE_METHODS:
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > MAX_BODY:
                await _refuse(
                    send, 413, "the request is over 1 MiB: send a smaller file", wants_json
                )
                return
            body = await _read_body(receive)
            if body is None:
                await _refuse(
                    send, 413, "the request is over 1 MiB: send a smaller file", wants_json
                )
                return
            if "authorization" not in headers:
                presented = headers.get("x-csrf-token") or _form_token(headers, body)
                if not self.auth.csrf_ok(identity, presented):
                    await _refuse(
                        send,
                        403,
                        "the form is stale or came from another site (CSRF check failed): "
                        "reload the page and try again",
                        wants_json,
                    )
                    return
            receive = _replay(body)
        elif (
            session is None
            and self.auth.login_required_for_reading()
            and not path.startswith(PUBLIC)
        ):
            if wants_json:
                await _refuse(send, 401, "log in first (POST /login)", True)
                return
            target = path + (
                ("?" + scope["query_string"].decode()) if scope["query_string"] else ""
            )
            await _redirect(send, "/login?next=" + quote(target, safe=""))
            return
        if scope["method"] == "HEAD":
            # FastAPI routes answer GET only (405 to HEAD): run the GET, send its headers
            # without the body (h11 knows the request was HEAD and sends none either).
            scope = {**scope, "method": "GET"}
            send = _headers_only(send)
        await self.app(scope, receive, send)

    def _secure(self, scope: Scope, headers: Headers) -> bool:
        mode = self.auth.settings().auth.secure_cookie
        if mode != "auto":
            return mode == "always"
        forwarded = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return scope.get("scheme") == "https" or forwarded == "https"


def cookie_header(name: str, value: str, *, secure: bool, max_age: int | None = None) -> bytes:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode()


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            headers = list(message.get("headers", []))
            headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            headers += extra
            message = {**message, "headers": headers}
        await send(message)

    return sending


def _headers_only(send: Send) -> Send:
    """The response's start, then one empty final body: a stream (the SSE endpoint) ends at
    once, since the server reports a disconnect when the response is complete."""
    done = False

    async def sending(message: Message) -> None:
        nonlocal done
        if message["type"] == "http.response.body":
            if done:
                return
            done = True
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return sending


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _form_token(headers: Headers, body: bytes) -> str | None:
    if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None
    values = fields.get("csrf_token")
    return values[0] if values else None


async def _refuse(send: Send, status: int, message: str, wants_json: bool) -> None:
    if wants_json:
        body = json.dumps({"detail": message}).encode()
        kind = b"application/json"
    else:
        from html import escape

        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Refused</title>'
            '<link rel="stylesheet" href="/static/app.css"></head><body><main>'
            f'<p class="error" role="alert">{escape(message)}</p>'
            '<p><a href="/">Back to the dashboard</a></p></main></body></html>'
        ).encode()
        kind = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})
