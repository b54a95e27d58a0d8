"""Config rewrites while the service runs (items 1 and 2): a reload that lost content, changes
a restart-only key or cannot build its parts is refused with an error log line, a metric, an
audit event and an alert; the last good config keeps running; putting the good file back
clears the metric and resolves the alert."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mimir_limit_optimizer.alerting import Alert
from mimir_limit_optimizer.alerting.model import AlertStatus
from mimir_limit_optimizer.config.models import Mode
from mimir_limit_optimizer.controller.config_provider import ConfigProvider
from mimir_limit_optimizer.controller.service import Service, ServiceOptions
from tests.reliability.fakeprom import FakePrometheus
from tests.reliability.harness import CATALOGUE, EXIT_USAGE, run_once, store_view, workdir

SETTINGS = """\
# the service's config
mode: prod
updateInterval: 1m
dataDir: {data}
source:
  kind: prometheus
  prometheus:
    url: URL
    retries: 0
    timeout: 2s
target:
  path: {target}
dynamicLimits:
  enabledLimits: [ingestion_rate]
trendAnalysis:
  analysisWindow: 6h
  minHistory: 1h
changePolicy:
  deadbandPercent: 5
server:
  enabled: false
"""
OVERRIDES = "overrides:\n  t-busy:\n    ingestion_rate: 20000\n"


@dataclass
class Running:
    service: Service
    config: Path
    good: str
    target: Path
    alerts: list[Alert]
    store_url: str

    def reload(self, text: str) -> None:
        self.config.write_text(text)
        self.service.cycle()

    def gauge(self) -> float | None:
        return self.service.registry.get_sample_value(
            "mimir_limit_optimizer_config_last_reload_successful"
        )

    def reload_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.type == "config_reload_failed"]


@pytest.fixture
def running(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Running]:
    prom = FakePrometheus({"t-busy": 50_000.0}, defaults={"ingestion_rate": 10_000.0})
    good = SETTINGS.replace("URL", prom.url)
    work = workdir(tmp_path, good, OVERRIDES)
    provider = ConfigProvider(work.config, env={}, cli={}, catalogue=CATALOGUE)
    service = Service(
        provider, CATALOGUE, logger=logging.getLogger("reload"), options=ServiceOptions()
    )
    alerts: list[Alert] = []
    emit = service.alerting.emit

    def spy(alert: Alert) -> None:
        alerts.append(alert)
        emit(alert)

    service.alerting.emit = spy  # type: ignore[method-assign]
    caplog.set_level(logging.INFO)
    service.cycle()  # the first cycle on the good config
    yield Running(service, work.config, good.format(data=work.data, target=work.target),
                  work.target, alerts, work.store_url)  # fmt: skip
    service.store.close()
    prom.stop()


def _refused(run: Running, caplog: pytest.LogCaptureFixture, text: str, why: str) -> None:
    before = run.service.provider.config
    run.reload(text)
    assert run.service.provider.config is before  # the last good config still runs
    assert run.gauge() == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("config reload failed" in m and why in m for m in errors), errors
    audit = store_view(run.store_url, run.target).audit
    assert any(e.action == "config_reload_failed" and why in e.details["error"] for e in audit)
    assert run.reload_alerts() and run.reload_alerts()[-1].status is AlertStatus.FIRING


@pytest.mark.parametrize(
    ("mangle", "why"),
    [
        (lambda good: "", "empty or holds only comments"),
        (lambda good: "# mode: prod\n# all commented out\n", "empty or holds only comments"),
        (
            lambda good: good[: good.index("target:")],
            "missing: changePolicy, dynamicLimits, server, target",
        ),
        (lambda good: good.replace("mode: prod\n", ""), "missing: mode"),
    ],
    ids=["empty", "comments-only", "truncated", "key-removed"],
)
def test_a_file_that_lost_content_is_refused(
    running: Running, caplog: pytest.LogCaptureFixture, mangle: object, why: str
) -> None:
    assert callable(mangle)
    _refused(running, caplog, mangle(running.good), why)
    assert running.service.provider.config.mode is Mode.PROD
    assert running.service.provider.config.source.kind == "prometheus"
    # The cycle went on with the good config: no synthetic tenant reached the real file.
    assert "tenant-0" not in running.target.read_text()


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (("kind: prometheus", "kind: synthetic"), "source.kind changed, which needs a restart"),
        (("retries: 0", "retries: 0\n    pathPrefix: /prometheus"), "source.prometheus.pathPrefix"),
        (("  path: ", "  lockTimeout: 5s\n  path: "), "target changed, which needs a restart"),
        (("dataDir: ", "dataDir: /elsewhere\n# was: "), "dataDir changed"),
    ],
    ids=["source-kind", "path-prefix", "target", "data-dir"],
)
def test_a_restart_only_change_is_refused(
    running: Running, caplog: pytest.LogCaptureFixture, edit: tuple[str, str], why: str
) -> None:
    old, new = edit
    _refused(running, caplog, running.good.replace(old, new, 1), why)


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (("url: http://", "url: ftp://"), "invalid URL: scheme 'ftp'"),
        (("url: http://", "url: "), "invalid URL: no scheme"),
        (("updateInterval: 1m", "updateInterval: 1ms"), "updateInterval"),
        (("retries: 0", "retries: 0\n    bearerTokenFile: /nonexistent/token"), "cannot read"),
    ],
    ids=["ftp", "no-scheme", "1ms", "token-file"],
)
def test_a_value_that_cannot_work_is_refused_then_recovery_clears_it(
    running: Running, caplog: pytest.LogCaptureFixture, edit: tuple[str, str], why: str
) -> None:
    old, new = edit
    _refused(running, caplog, running.good.replace(old, new, 1), why)
    running.reload(running.good)  # the good file is back
    assert running.gauge() == 1
    assert running.reload_alerts()[-1].status is AlertStatus.RESOLVED
    audit = store_view(running.store_url, running.target).actions()
    assert "config_reload_recovered" in audit


def test_a_port_out_of_range_is_refused(running: Running, caplog: pytest.LogCaptureFixture) -> None:
    port = running.good.split("url: http://127.0.0.1:")[1].split("\n")[0]
    _refused(running, caplog, running.good.replace(f":{port}", ":99999"), "invalid URL")


def test_a_valid_change_is_reloaded(running: Running) -> None:
    """The control: a reloadable key does change without a restart."""
    running.reload(running.good.replace("deadbandPercent: 5", "deadbandPercent: 7"))
    assert running.service.provider.config.change_policy.deadband_percent == 7
    assert running.gauge() == 1


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (("url: http://", "url: ftp://"), "invalid URL"),
        (("127.0.0.1:", "127.0.0.1:99999#"), "invalid URL"),
        (("retries: 0", "retries: 0\n    bearerTokenFile: /nonexistent/token"), "cannot read"),
    ],
    ids=["ftp", "port", "token-file"],
)
def test_start_up_refuses_what_a_reload_refuses(
    tmp_path: Path, edit: tuple[str, str], why: str
) -> None:
    old, new = edit
    work = workdir(tmp_path, SETTINGS.replace("URL", "http://127.0.0.1:9").replace(old, new, 1),
                   OVERRIDES)  # fmt: skip
    assert run_once(work) == EXIT_USAGE
    assert work.target.read_text() == OVERRIDES
    del why  # the message itself is checked through the reload tests (same checks)


@pytest.mark.parametrize("text", ["", "# everything commented out\n# mode: prod\n"])
def test_start_up_refuses_an_emptied_file(tmp_path: Path, text: str) -> None:
    """A restart after the file lost its content must not run on defaults either (with
    `--mode prod` that wrote synthetic tenants into the real overrides file)."""
    work = workdir(tmp_path, text, OVERRIDES)
    assert run_once(work, cli={"mode": "prod", "target.path": str(work.target)}) == EXIT_USAGE
    assert work.target.read_text() == OVERRIDES


def test_rewrites_while_the_loop_runs(tmp_path: Path) -> None:
    """The same through the real loop (a cycle a second): truncate, then restore."""
    prom = FakePrometheus({"t-busy": 50_000.0}, defaults={"ingestion_rate": 10_000.0})
    good = SETTINGS.replace("URL", prom.url).replace("updateInterval: 1m", "updateInterval: 1s")
    work = workdir(tmp_path, good, OVERRIDES)
    provider = ConfigProvider(work.config, env={}, cli={}, catalogue=CATALOGUE)
    service = Service(provider, CATALOGUE, logger=logging.getLogger("loop"))
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()

    def gauge_becomes(value: float) -> bool:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (
                service.registry.get_sample_value(
                    "mimir_limit_optimizer_config_last_reload_successful"
                )
                == value
            ):
                return True
            time.sleep(0.05)
        return False

    try:
        text = work.config.read_text()
        work.config.write_text(text[: len(text) // 2])  # a half-written file
        assert gauge_becomes(0)
        assert provider.config.source.kind == "prometheus" and provider.config.mode is Mode.PROD
        work.config.write_text(text)
        assert gauge_becomes(1)
    finally:
        stop.set()
        thread.join(timeout=30)
        prom.stop()
    assert not thread.is_alive()
