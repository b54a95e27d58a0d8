"""A real Prometheus for tests, loaded with backfilled OpenMetrics data.

`start_prometheus` turns OpenMetrics text into TSDB blocks with `promtool tsdb
create-blocks-from openmetrics`, starts `prometheus` on those blocks (no scrape targets,
loopback only, a free port) and waits until it is ready. Blocks present at startup are
queryable at once. Prometheus deletes blocks older than its retention, and queries are
usually relative to now: backfill data that ends a minute or so before now.

Register the fixture by importing it in tests/conftest.py:
    from tests.promserver import prometheus_factory  # noqa: F401
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

INSTALL_HINT = "apt-get install -y prometheus"
READY_TIMEOUT = 60.0  # seconds; loading blocks and WAL replay are quick for test data
_CONFIG = "global:\n  scrape_interval: 1m\nscrape_configs: []\n"
_REQUESTS = re.compile(r"^prometheus_http_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class PrometheusStartError(RuntimeError):
    """Prometheus or promtool failed; the message carries their output."""


@dataclass
class PromServer:
    """A running Prometheus; `url` has no trailing slash."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = field(default=None)

    def stop(self) -> None:
        """Terminate Prometheus (idempotent); kill it if it does not exit in 10 s."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def requests_total(self, handler: str) -> float:
        """`prometheus_http_requests_total{handler=<handler>}` summed over status codes, from
        Prometheus' own /metrics (e.g. handler="/api/v1/query_range")."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            match = _REQUESTS.match(line)
            if match and dict(_LABEL.findall(match["labels"])).get("handler") == handler:
                total += float(match["value"])
        return total

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _backfill(
    promtool: str,
    data_file: Path,
    data_dir: Path,
    timeout: float,
    max_block_duration: str | None = None,
) -> None:
    # promtool parses the whole input once per output block (2 h by default): a week of data
    # is 84 passes. `--max-block-duration` (hidden in 2.42, but supported) makes blocks of up
    # to that length, e.g. "54h", the largest a Prometheus with 30 d retention makes itself.
    blocks = [f"--max-block-duration={max_block_duration}"] if max_block_duration else []
    result = subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "-q",
            *blocks,
            str(data_file),
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise PrometheusStartError(
            f"promtool could not backfill {data_file}: {result.stdout}{result.stderr}"
        )


def _wait_ready(server: PromServer, deadline: float) -> bool:
    """True once /-/ready answers 200; False if the process exited first."""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise PrometheusStartError(
        f"prometheus at {server.url} not ready after {READY_TIMEOUT:g}s:\n{server.log()[-3000:]}"
    )


def start_prometheus(
    openmetrics_text: str, workdir: Path, *, backfill_timeout: float = 300.0
) -> PromServer:
    """Backfill `openmetrics_text` into a fresh TSDB under `workdir` and serve it
    (`backfill_timeout` seconds for promtool: benchmarks backfill gigabytes)."""
    # Imported here: conftest imports this module to register the fixture.
    from tests.conftest import require_binary

    promtool = require_binary("promtool", INSTALL_HINT)
    workdir.mkdir(parents=True, exist_ok=True)
    data_file = workdir / "data.om"
    data_file.write_text(openmetrics_text, encoding="utf-8")
    data_dir = workdir / "tsdb"
    _backfill(promtool, data_file, data_dir, backfill_timeout, max_block_duration="54h")
    return serve_tsdb(data_dir, workdir)


def backfill_openmetrics(
    data_file: Path, data_dir: Path, *, timeout: float, max_block_duration: str | None = None
) -> None:
    """TSDB blocks from an OpenMetrics file (benchmarks: the file can be gigabytes)."""
    from tests.conftest import require_binary

    promtool = require_binary("promtool", INSTALL_HINT)
    _backfill(promtool, data_file, data_dir, timeout, max_block_duration)


def serve_tsdb(
    data_dir: Path, workdir: Path, *, env: Mapping[str, str] | None = None
) -> PromServer:
    """Serve an existing TSDB directory (blocks from `promtool`); `env` for the process,
    e.g. GOMAXPROCS to bound the cores Prometheus uses."""
    from tests.conftest import require_binary

    prometheus = require_binary("prometheus", INSTALL_HINT)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(_CONFIG, encoding="utf-8")
    for attempt in range(3):  # the free port may be taken between probing and binding
        port = _free_port()
        log_path = workdir / f"prometheus-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data_dir}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    # Blocks present at startup are loaded and queryable at once; no extra
                    # flag is needed (overlapping blocks are allowed by default since 2.39).
                    "--storage.tsdb.retention.time=30d",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=None if env is None else {**os.environ, **env},
            )
        server = PromServer(f"http://127.0.0.1:{port}", process, log_path)
        try:
            if _wait_ready(server, time.monotonic() + READY_TIMEOUT):
                return server
        except BaseException:
            server.stop()
            raise
        if "address already in use" not in server.log():
            break
    raise PrometheusStartError(f"prometheus exited at startup:\n{server.log()[-3000:]}")


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[[str], PromServer]]:
    """`start(openmetrics_text) -> PromServer`; every server started is stopped at teardown."""
    started: list[PromServer] = []

    def start(openmetrics_text: str) -> PromServer:
        server = start_prometheus(openmetrics_text, tmp_path / f"prometheus-{len(started)}")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
