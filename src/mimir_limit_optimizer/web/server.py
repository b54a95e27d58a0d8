"""Serve the metrics and health apps with uvicorn in daemon threads.

The listening sockets are bound here, before any thread starts: a port in use fails
`start_servers` at once with a message naming the setting, port 0 yields its real port
without a race, and connections are queued by the kernel from the moment it returns.
uvicorn runs with `log_config=None` (the service's logging setup stays untouched) and,
outside the main thread, installs no signal handlers: the controller owns SIGTERM.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from mimir_limit_optimizer.config.service import ServerSettings
from mimir_limit_optimizer.observability.health import HealthState
from mimir_limit_optimizer.web.app import build_app

# Seconds. A start or a stop that takes longer than this is a bug or a stuck handler.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
# In-flight requests get this long to finish once a stop is requested.
GRACEFUL_SHUTDOWN = 2


class ServerStartError(RuntimeError):
    """An HTTP server could not start; the message names the setting to change."""


@dataclass
class _Running:
    name: str
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket


class Servers:
    """The running HTTP servers. `host` is the bound address; `metrics_port` and
    `health_port` are the real ports (equal when one server serves all paths)."""

    def __init__(
        self,
        *,
        host: str,
        metrics_port: int,
        health_port: int,
        running: list[_Running],
        api_port: int | None = None,
    ) -> None:
        self.host = host
        self.metrics_port = metrics_port
        self.health_port = health_port
        self.api_port = api_port  # the REST API's server (server.uiPort), when routers were given
        self._running = running
        self._lock = threading.Lock()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop every server and close its socket, waiting at most about `timeout` seconds.
        Idempotent."""
        with self._lock:
            running, self._running = self._running, []
        _stop_all(running, timeout)

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_servers(
    settings: ServerSettings,
    *,
    registry: CollectorRegistry,
    health: HealthState,
    clock: Callable[[], float] = time.time,
    start_timeout: float = START_TIMEOUT,
    alerting_status: Callable[[], Mapping[str, Any]] | None = None,
    routers: Sequence[APIRouter] = (),
    extend_api: Callable[[FastAPI], None] | None = None,
) -> Servers:
    """Serve GET /metrics on `settings.host:metrics_port` and GET /healthz, /readyz on
    `settings.host:health_port`; one server for all paths when the two ports are equal and
    not 0 (port 0 picks a free port, a different one for each server). Returns once both
    accept connections. Whether to serve at all (`settings.enabled`) is the caller's call.
    `extend_api` installs more onto the UI port's app (the web UI: web/ui/app.py).
    """
    combined = settings.metrics_port == settings.health_port != 0
    plans: list[tuple[str, int, str, Callable[[], FastAPI]]]
    if combined:
        plans = [
            (
                "metrics+health",
                settings.metrics_port,
                "server.metricsPort and server.healthPort",
                lambda: build_app(
                    registry=registry, health=health, clock=clock, alerting_status=alerting_status
                ),
            )
        ]
    else:
        plans = [
            (
                "metrics",
                settings.metrics_port,
                "server.metricsPort",
                lambda: build_app(registry=registry, clock=clock),
            ),
            (
                "health",
                settings.health_port,
                "server.healthPort",
                lambda: build_app(health=health, clock=clock, alerting_status=alerting_status),
            ),
        ]
    if routers or extend_api is not None:
        # The REST API (mutating endpoints included) gets its own server on the UI port:
        # /metrics and the probes often have to be reachable beyond loopback, the API need not.
        plans.append(
            (
                "api",
                settings.ui_port,
                "server.uiPort",
                lambda: _api_app(clock, routers, extend_api),
            )
        )
    running: list[_Running] = []
    try:
        for name, port, setting, make_app in plans:
            sock = _bind(settings.host, port, setting)
            running.append(_launch(name, make_app(), sock))
        deadline = time.monotonic() + start_timeout
        for item in running:
            _wait_started(item, deadline, start_timeout)
    except BaseException:
        _stop_all(running, STOP_TIMEOUT)
        raise
    ports = {item.name: item.sock.getsockname()[1] for item in running}
    return Servers(
        host=running[0].sock.getsockname()[0],
        metrics_port=ports.get("metrics", ports.get("metrics+health", 0)),
        health_port=ports.get("health", ports.get("metrics+health", 0)),
        api_port=ports.get("api"),
        running=running,
    )


def _api_app(
    clock: Callable[[], float],
    routers: Sequence[APIRouter],
    extend: Callable[[FastAPI], None] | None,
) -> FastAPI:
    app = build_app(clock=clock, routers=routers)
    if extend is not None:
        extend(app)
    return app


def _bind(host: str, port: int, setting: str) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServerStartError(
            f"cannot resolve server.host {host!r}: {exc}; set server.host to an address "
            "of this machine (127.0.0.1 by default, 0.0.0.0 for all interfaces)"
        ) from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ServerStartError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
            f"free the port or set {setting} to another port (0 picks a free one)"
        ) from exc
    return sock


def _launch(name: str, app: FastAPI, sock: socket.socket) -> _Running:
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"mlo-http-{name}",
        daemon=True,
    )
    thread.start()
    return _Running(name=name, server=server, thread=thread, sock=sock)


def _wait_started(item: _Running, deadline: float, timeout: float) -> None:
    while not item.server.started:
        if not item.thread.is_alive():
            raise ServerStartError(
                f"the {item.name} HTTP server stopped during startup (see the log above)"
            )
        if time.monotonic() > deadline:
            raise ServerStartError(f"the {item.name} HTTP server did not start within {timeout:g}s")
        time.sleep(0.005)


def _stop_all(running: list[_Running], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for item in running:
        item.server.should_exit = True
    for item in running:
        item.thread.join(max(0.0, deadline - time.monotonic()))
        if item.thread.is_alive():
            # Graceful shutdown overran: drop open connections (the thread is a daemon).
            item.server.force_exit = True
            item.thread.join(1.0)
        item.sock.close()
