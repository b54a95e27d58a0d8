"""REST API of runtime protection control, as a FastAPI router to mount on an app:

- GET  /api/v1/circuit-breaker/status   what protection sees and does (no token needed: it
  shows what /metrics shows; the servers listen on loopback unless configured otherwise)
- POST /api/v1/circuit-breaker/enable   let protection write again (prod)
- POST /api/v1/circuit-breaker/disable  stop protective writes (prod: restores what it wrote)

The POST endpoints need `Authorization: Bearer <circuitBreaker.apiToken>` (401 without or with
a wrong token, compared in constant time; 403 while no token is configured). The token is
never logged or echoed. Handlers are plain functions: Starlette runs them in its thread pool.
"""

from __future__ import annotations

import hmac
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

PATH = "/api/v1/circuit-breaker"


class ProtectionControl(Protocol):
    """What the router needs (controller.protection.Protection provides it)."""

    def status(self) -> dict[str, Any]: ...

    def enable(self, *, actor: str) -> dict[str, Any]: ...

    def disable(self, *, actor: str) -> dict[str, Any]: ...

    def api_token(self) -> SecretStr | None: ...


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _unauthorized(detail: str) -> JSONResponse:
    return JSONResponse(
        {"detail": detail}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="mlo"'}
    )


def build_protection_router(control: ProtectionControl) -> APIRouter:
    router = APIRouter(prefix=PATH)

    def authorize(request: Request) -> JSONResponse | None:
        expected = control.api_token()
        if expected is None:
            return JSONResponse(
                {
                    "detail": "runtime control over the API is off: set circuitBreaker.apiToken "
                    "(or apiTokenFile) to enable it"
                },
                status_code=403,
            )
        given = _presented(request)
        if given is None:
            return _unauthorized("missing bearer token")
        if not hmac.compare_digest(
            given.encode("utf-8"), expected.get_secret_value().encode("utf-8")
        ):
            return _unauthorized("invalid bearer token")
        return None

    def status() -> JSONResponse:
        return JSONResponse(control.status())

    def enable(request: Request) -> JSONResponse:
        refused = authorize(request)
        if refused is not None:
            return refused
        return JSONResponse(control.enable(actor=_actor(request)))

    def disable(request: Request) -> JSONResponse:
        refused = authorize(request)
        if refused is not None:
            return refused
        return JSONResponse(control.disable(actor=_actor(request)))

    router.add_api_route("/status", status, methods=["GET"])
    router.add_api_route("/enable", enable, methods=["POST"])
    router.add_api_route("/disable", disable, methods=["POST"])
    return router


def _actor(request: Request) -> str:
    client = request.client
    return f"api ({client.host})" if client is not None else "api"
