"""Every PromQL expression the deployment ships returns data from a real Prometheus scraping a
real `mlo run` (synthetic source, prod mode, a few cycles, 1 s scrapes) and the fake Mimir it
writes to: each dashboard target and variable, and each alert expression as a value (`bool`,
or the argument of `absent`). Every expression is parsed by promtool first. In this healthy
run the alerts about failures evaluate to 0 (not firing)."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mimir_limit_optimizer.catalogue import load_catalogue
from tests.conftest import require_binary
from tests.deploy.chart import ALERTS, DASHBOARD
from tests.deploy.promql import as_value, dashboard_exprs, rule_exprs, substitute
from tests.fake_mimir import FakeMimir
from tests.promserver import PromServer, _free_port, _wait_ready

pytestmark = pytest.mark.prometheus

INSTALL = "apt-get install -y prometheus"
CYCLES = 3  # successful cycles before the queries run
SCRAPES_SETTLE = 25.0  # seconds of scraping before the queries run (> 20s rate window)
DEADLINE = 120.0  # seconds for the whole run to reach that point
# Healthy run: these alerts must not fire (value 0 for every series).
QUIET = {
    "MimirLimitOptimizerDown",
    "MimirLimitOptimizerNotLeading",
    "MimirLimitOptimizerSeveralLeaders",
    "MimirLimitOptimizerCyclesFailing",
    "MimirLimitOptimizerNoSuccessfulCycle",
    "MimirLimitOptimizerSourceUnreachable",
    "MimirLimitOptimizerRolledBack",
    "MimirLimitOptimizerUnverifiedWrite",
    "MimirLimitOptimizerConfigReloadFailed",
    "MimirLimitOptimizerAlertQueueFilling",
}


class _Sink(http.server.BaseHTTPRequestHandler):
    """An alert webhook that accepts everything."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _config(tmp: Path, *, overrides: Path, mimir_url: str, sink: str) -> dict[str, Any]:
    return {
        "mode": "prod",
        "updateInterval": "3s",
        "dataDir": str(tmp / "data"),
        "source": {"kind": "synthetic"},
        "synthetic": {"tenantCount": 12, "history": "2d"},
        "target": {"kind": "file", "path": str(overrides)},
        "verify": {"mimirUrl": mimir_url, "timeout": "10s", "pollInterval": "200ms"},
        "server": {
            "host": "127.0.0.1",
            "metricsPort": _free_port(),
            "healthPort": _free_port(),
            "uiPort": _free_port(),
        },
        "circuitBreaker": {"fastLoop": {"interval": "1s"}},
        # Every tenant with a budget: per-tenant cost series are exported for budgeted tenants
        # whatever the per-tenant export default is.
        "costControl": {
            "enabled": True,
            "globalBudget": {"monthly": 1000, "currency": "EUR"},
            "perTenantBudgets": {"monthly": 100},
        },
        "alerting": {
            "webhooks": {"sink": {"url": sink}},
            "routing": [{"channels": ["all"], "escalation": "immediate"}],
        },
    }


def _start_prometheus(tmp: Path, targets: dict[str, str]) -> PromServer:
    prometheus = require_binary("prometheus", INSTALL)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = _free_port()
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = PromServer(f"http://127.0.0.1:{port}", process, log)
    if not _wait_ready(server, time.monotonic() + 60):
        raise RuntimeError(f"prometheus exited:\n{server.log()[-3000:]}")
    return server


def _successful_cycles(metrics_url: str) -> float:
    try:
        text = httpx.get(metrics_url, timeout=2).text
    except httpx.TransportError:
        return 0.0
    for line in text.splitlines():
        if line.startswith('mimir_limit_optimizer_reconcile_total{result="success"}'):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture(scope="module")
def prometheus_on_mlo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromServer]:
    require_binary("promtool", INSTALL)
    tmp = tmp_path_factory.mktemp("promql")
    overrides = tmp / "runtime.yaml"
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    mimir = FakeMimir([overrides], load_catalogue())
    config = _config(
        tmp,
        overrides=overrides,
        mimir_url=mimir.url,
        sink=f"http://127.0.0.1:{sink.server_address[1]}/alerts",
    )
    (tmp / "mlo.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    metrics = f"http://127.0.0.1:{config['server']['metricsPort']}"
    log = (tmp / "mlo.log").open("wb")
    mlo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mimir_limit_optimizer.cli",
            "run",
            "--config",
            str(tmp / "mlo.yaml"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    prom = None
    try:
        prom = _start_prometheus(
            tmp,
            {"mimir-limit-optimizer": metrics.removeprefix("http://"),
             "mimir": mimir.url.removeprefix("http://")},
        )  # fmt: skip
        deadline = time.monotonic() + DEADLINE
        started = time.monotonic()
        while time.monotonic() < deadline and mlo.poll() is None:
            settled = time.monotonic() - started >= SCRAPES_SETTLE
            if settled and _successful_cycles(f"{metrics}/metrics") >= CYCLES:
                break
            time.sleep(0.5)
        else:
            log.flush()
            pytest.fail(
                f"mlo run did not finish {CYCLES} cycles in {DEADLINE:g}s:\n"
                + (tmp / "mlo.log").read_text(errors="replace")[-4000:]
            )
        yield prom
    finally:
        mlo.terminate()
        try:
            mlo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            mlo.kill()
            mlo.wait(timeout=10)
        log.close()
        if prom is not None:
            prom.stop()
        mimir.stop()
        sink.shutdown()


def _query(prom: PromServer, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prom.url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", f"{expr}: {answer}"
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


EXPRESSIONS = [
    *(("dashboard: " + name, substitute(expr)) for name, expr in dashboard_exprs(DASHBOARD)),
    *(("alert: " + name, as_value(expr)) for name, expr in rule_exprs(ALERTS)),
]


def test_promtool_parses_every_expression(tmp_path: Path) -> None:
    promtool = require_binary("promtool", INSTALL)
    rules = [
        {"record": f"check:expression_{i}", "expr": expr} for i, (_, expr) in enumerate(EXPRESSIONS)
    ]
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "all", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
    # And promtool does reject a broken one (the check can fail).
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "x", "expr": "sum(("}]}]}),
        encoding="utf-8",
    )
    bad = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, check=False)
    assert bad.returncode != 0


@pytest.mark.parametrize(("name", "expr"), EXPRESSIONS, ids=[n for n, _ in EXPRESSIONS])
def test_expression_returns_data(prometheus_on_mlo: PromServer, name: str, expr: str) -> None:
    result = _query(prometheus_on_mlo, expr)
    assert result, f"{name}: no data for {expr}"
    alert = name.removeprefix("alert: ")
    if alert in QUIET:
        firing = [r for r in result if float(r["value"][1]) != 0]
        assert not firing, f"{alert} fires in a healthy run: {firing}"


def test_as_value_rewrites_the_condition_not_a_label_matcher() -> None:
    assert as_value('max(up{job="a"}) == 0') == 'max(up{job="a"}) == bool 0'
    assert (
        as_value('sum(x{a=~"b|c", d!="e"}) / y > 0.8') == 'sum(x{a=~"b|c", d!="e"}) / y > bool 0.8'
    )
    assert as_value('absent(up{job="a"})') == 'up{job="a"}'
    assert as_value("time() - max(t) > 3600") == "time() - max(t) > bool 3600"
