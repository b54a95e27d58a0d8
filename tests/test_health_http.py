"""Health as state with injected time: the loop counts as stuck after `stall_after` seconds
without a heartbeat; readiness needs a reachable source and a first successful cycle, except
for a follower (read-only), which is ready once its source answers. Then the real HTTP
servers: started on free ports bound to 127.0.0.1 only, /metrics in Prometheus text format,
/healthz and /readyz answering 200 or 503 as that state changes, one server when both ports
are equal, a clear error for a port in use, and stop() freeing the ports."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from mimir_limit_optimizer.config.service import ServerSettings
from mimir_limit_optimizer.observability.health import HealthState
from mimir_limit_optimizer.observability.metrics import ControllerMetrics
from mimir_limit_optimizer.web.server import Servers, ServerStartError, start_servers

STALL = 30.0
T0 = 1_800_000_000.0


# --- HealthState -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("beats", "now", "alive"),
    [
        ([], T0, False),  # the loop never turned
        ([T0], T0, True),
        ([T0], T0 + STALL, True),  # exactly at the limit: still alive
        ([T0], T0 + STALL + 1, False),  # stuck
        ([T0, T0 + 100], T0 + 110, True),  # a later heartbeat revives
        ([T0 + 100, T0], T0 + 120, True),  # a late, older heartbeat does not move time back
    ],
)
def test_healthz_detects_a_stalled_loop(beats: list[float], now: float, alive: bool) -> None:
    health = HealthState(stall_after=STALL)
    for beat in beats:
        health.heartbeat(beat)
    ok, body = health.healthz(now)
    assert ok is alive
    assert body["status"] == ("ok" if alive else "unhealthy")


def test_started_at_is_a_grace_period_and_a_finished_cycle_is_a_heartbeat() -> None:
    health = HealthState(stall_after=STALL, started_at=T0)
    assert health.healthz(T0 + STALL)[0] is True
    assert health.healthz(T0 + STALL + 1)[0] is False
    health.cycle_finished(ok=False, now=T0 + 50, detail="source down")
    ok, body = health.healthz(T0 + 60)
    assert ok is True
    assert body["last_cycle"] == {"ok": False, "finished_at": T0 + 50, "detail": "source down"}


# source: None = never checked; cycles: results of finished cycles, in order.
@pytest.mark.parametrize(
    ("role", "source", "cycles", "ready"),
    [
        ("standalone", None, [], False),
        ("standalone", True, [], False),  # no cycle yet
        ("standalone", True, [False], False),  # only a failed cycle
        ("standalone", True, [True], True),
        ("standalone", True, [True, False], True),  # a later failure keeps it ready
        ("standalone", False, [True], False),  # source unreachable
        ("leader", True, [], False),
        ("leader", True, [True], True),
        ("follower", None, [], False),
        ("follower", False, [], False),
        ("follower", True, [], True),  # read-only: never reconciles, ready once the source is
    ],
)
def test_readyz_table(role: str, source: bool | None, cycles: list[bool], ready: bool) -> None:
    health = HealthState(stall_after=STALL)
    health.set_role(role, leader="pod-a" if role != "standalone" else None)
    if source is not None:
        health.set_source_reachable(source, "" if source else "connection refused")
    for i, ok in enumerate(cycles):
        health.cycle_finished(ok=ok, now=T0 + i)
    ok, body = health.readyz(T0 + 100)
    assert ok is ready
    assert body["role"] == role
    assert body["leader"] == ("pod-a" if role != "standalone" else None)
    assert body["read_only"] is (role == "follower")
    assert bool(body["reasons"]) is not ready


def test_readyz_body_says_why_not() -> None:
    health = HealthState(stall_after=STALL)
    health.set_source_reachable(False, "GET /api/v1/query: connection refused")
    ok, body = health.readyz(T0)
    assert not ok
    assert body["reasons"] == [
        "source unreachable: GET /api/v1/query: connection refused",
        "no successful reconcile cycle yet",
    ]


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="stall_after"):
        HealthState(stall_after=0)
    with pytest.raises(ValueError, match="follower"):
        HealthState(stall_after=STALL).set_role("candidate")


def test_concurrent_writers_and_probes_do_not_interfere() -> None:
    health = HealthState(stall_after=STALL)
    health.set_source_reachable(True)
    errors: list[BaseException] = []

    def write() -> None:
        for i in range(2000):
            health.heartbeat(T0 + i)
            health.set_role("leader" if i % 2 else "follower", leader="pod-a")

    def read() -> None:
        try:
            for _ in range(2000):
                _, body = health.readyz(T0)
                assert body["role"] in ("leader", "follower", "standalone")
        except BaseException as exc:  # surfaced below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert health.healthz(T0 + 1999)[0] is True


# --- HTTP --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    servers: Servers
    clock: FakeClock
    health: HealthState
    metrics: ControllerMetrics
    client: httpx.Client
    threads: set[threading.Thread]  # the server threads this fixture started

    def get(self, port: int, path: str) -> httpx.Response:
        return self.client.get(f"http://127.0.0.1:{port}{path}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def http_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("mlo-http-")}


@pytest.fixture
def served() -> Iterator[Served]:
    registry = CollectorRegistry()
    clock = FakeClock()
    health = HealthState(stall_after=STALL)
    metrics = ControllerMetrics(registry)
    before = http_threads()
    servers = start_servers(
        ServerSettings(metrics_port=0, health_port=0),
        registry=registry,
        health=health,
        clock=clock,
    )
    try:
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            yield Served(servers, clock, health, metrics, client, http_threads() - before)
    finally:
        servers.stop()


def test_metrics_endpoint_serves_prometheus_text(served: Served) -> None:
    served.metrics.limits_applied_total.inc(7)
    served.metrics.errors_total.labels(component="target", reason="conflict").inc()
    response = served.get(served.servers.metrics_port, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    parsed = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert parsed["mimir_limit_optimizer_limits_applied"].samples[0].value == 7
    errors = parsed["mimir_limit_optimizer_errors"].samples
    # The reasons the cycle counts are created at 0 (for the alert rules); only one counted.
    assert [(s.labels, s.value) for s in errors if s.name.endswith("_total") and s.value] == [
        ({"component": "target", "reason": "conflict"}, 1.0)
    ]


def test_healthz_turns_503_when_the_loop_stalls(served: Served) -> None:
    port = served.servers.health_port
    assert served.get(port, "/healthz").status_code == 503  # no heartbeat yet
    served.health.heartbeat(served.clock.now)
    response = served.get(port, "/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    served.clock.now += STALL + 1  # the loop stops heartbeating
    response = served.get(port, "/healthz")
    assert response.status_code == 503
    assert "no loop heartbeat for 31s" in response.json()["reason"]


def test_readyz_turns_200_after_the_first_successful_cycle(served: Served) -> None:
    port = served.servers.health_port
    served.health.set_role("leader", leader="pod-a")
    served.health.set_source_reachable(True)
    response = served.get(port, "/readyz")
    assert response.status_code == 503
    assert response.json()["reasons"] == ["no successful reconcile cycle yet"]
    served.health.cycle_finished(ok=True, now=served.clock.now)
    response = served.get(port, "/readyz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["role"], body["leader"]) == ("ok", "leader", "pod-a")


def test_each_server_serves_only_its_paths(served: Served) -> None:
    metrics_port, health_port = served.servers.metrics_port, served.servers.health_port
    assert metrics_port != health_port
    assert served.get(metrics_port, "/healthz").status_code == 404
    assert served.get(health_port, "/metrics").status_code == 404
    assert served.get(health_port, "/docs").status_code == 404  # no API docs on probes
    # The seed README's alternative probe paths.
    assert served.get(health_port, "/health").status_code == 503
    assert served.get(health_port, "/ready").status_code == 503


def test_servers_bind_to_loopback_only(served: Served) -> None:
    assert served.servers.host == "127.0.0.1"
    # 127.0.0.2 reaches this machine too, but not a socket bound to 127.0.0.1 alone.
    for port in (served.servers.metrics_port, served.servers.health_port):
        with pytest.raises(OSError), socket.create_connection(("127.0.0.2", port), timeout=2):
            pass


def test_one_server_when_both_ports_are_equal() -> None:
    port = free_port()
    before = http_threads()
    registry = CollectorRegistry()
    health = HealthState(stall_after=STALL, started_at=T0)
    ControllerMetrics(registry).health_status.set(1)
    servers = start_servers(
        ServerSettings(metrics_port=port, health_port=port),
        registry=registry,
        health=health,
        clock=lambda: T0,
    )
    try:
        assert (servers.metrics_port, servers.health_port) == (port, port)
        assert len(http_threads() - before) == 1
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            base = f"http://127.0.0.1:{port}"
            assert "mimir_limit_optimizer_health_status 1.0" in client.get(f"{base}/metrics").text
            assert client.get(f"{base}/healthz").status_code == 200
            assert client.get(f"{base}/readyz").status_code == 503
    finally:
        servers.stop()


def test_stop_frees_the_ports_quickly_and_is_idempotent(served: Served) -> None:
    ports = (served.servers.metrics_port, served.servers.health_port)
    assert len(served.threads) == 2
    assert all(served.get(p, "/healthz").status_code in (404, 503) for p in ports)
    started = time.monotonic()
    served.servers.stop()
    assert time.monotonic() - started < 3.0
    assert not any(thread.is_alive() for thread in served.threads)
    for port in ports:
        assert port_is_free(port)
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    served.servers.stop()  # a second stop is a no-op


def test_a_port_in_use_names_the_setting_and_leaves_nothing_running() -> None:
    before = http_threads()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(ServerStartError, match=r"server\.healthPort"):
            start_servers(
                ServerSettings(metrics_port=0, health_port=port),
                registry=CollectorRegistry(),
                health=HealthState(stall_after=STALL),
            )
    # The metrics server, started first, was stopped again.
    deadline = time.monotonic() + 3
    while http_threads() - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not http_threads() - before
