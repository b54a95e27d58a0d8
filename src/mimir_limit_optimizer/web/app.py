"""FastAPI apps for /metrics and the health probes, built from injected state.

Handlers are plain functions, so Starlette runs them in its thread pool: rendering a large
registry or waiting on the health lock never blocks the server's event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from mimir_limit_optimizer.observability.health import HealthState


def build_app(
    *,
    registry: CollectorRegistry | None = None,
    health: HealthState | None = None,
    clock: Callable[[], float],
    alerting_status: Callable[[], Mapping[str, Any]] | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """An app serving GET /metrics when `registry` is given and GET /healthz, /readyz when
    `health` is given (200 when ok, 503 otherwise, JSON body either way). `/health` and
    `/ready` are aliases, the paths the Go optimizer's README also names. GET /debug/alerting/status
    when `alerting_status` is given: its JSON (channels, breakers, queues; no secrets)."""
    app = FastAPI(title="Mimir Limit Optimizer", docs_url=None, redoc_url=None, openapi_url=None)
    if registry is not None:
        _add_metrics(app, registry)
    if health is not None:
        _add_health(app, health, clock)
    if alerting_status is not None:
        provider = alerting_status

        def alerting() -> JSONResponse:
            return JSONResponse(dict(provider()))

        app.add_api_route("/debug/alerting/status", alerting, methods=["GET"])
    for router in routers:  # the REST API (e.g. /api/v1/circuit-breaker/*)
        app.include_router(router)
    return app


def _add_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"])


def _add_health(app: FastAPI, health: HealthState, clock: Callable[[], float]) -> None:
    def healthz() -> JSONResponse:
        ok, body = health.healthz(clock())
        return JSONResponse(body, status_code=200 if ok else 503)

    def readyz() -> JSONResponse:
        ok, body = health.readyz(clock())
        return JSONResponse(body, status_code=200 if ok else 503)

    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/readyz", readyz, methods=["GET"])
    app.add_api_route("/health", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ready", readyz, methods=["GET"], include_in_schema=False)
