"""Alerting wired into the optimizer: the reconcile cycle emits the alerts that matter
(collection failed P2 and its resolution, apply failed P1, rollback after a failed
verification P1, limits applied P3); the running service delivers them, serves
GET /debug/alerting/status on the health port without secrets, turns a failed config
reload into a P2 alert, and recovers a channel with a bad configuration when the file is
fixed, without a restart; `mlo alert test` and `mlo alert channels` report what happens."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

import mimir_limit_optimizer.cli.alert_cmd  # noqa: F401 (registers `mlo alert`)
from mimir_limit_optimizer.alerting import AlertStatus, CollectingSink, Priority
from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.cli.app import app
from mimir_limit_optimizer.controller.config_provider import ConfigProvider
from mimir_limit_optimizer.controller.service import Service
from mimir_limit_optimizer.sources.base import SourceError
from mimir_limit_optimizer.targets.verify import MimirVerifier
from tests.alerting_servers import Receiver, Reply, receiver
from tests.fake_mimir import FakeMimir
from tests.test_controller import HAND_WRITTEN, NOW, DiskFull, Rig, config

CATALOGUE = load_catalogue()
TOKEN = "svc-token-s3cret-77"


def emitted(sink: CollectingSink) -> list[tuple[str, str, str]]:
    return [(a.type, a.priority.value, a.status.value) for a in sink.alerts]


def rig_with_sink(tmp_path: Path, **kwargs: Any) -> tuple[Rig, CollectingSink]:
    rig = Rig(tmp_path, **kwargs)
    sink = CollectingSink()
    rig.reconciler.alerts = sink
    rig.path.write_text(HAND_WRITTEN)
    return rig, sink


# --- what the cycle emits -------------------------------------------------------------------


def test_a_failed_collection_fires_p2_and_the_next_good_one_resolves_it(tmp_path: Path) -> None:
    down = {"on": True}

    def source(cfg: Any, now: float) -> Any:
        from mimir_limit_optimizer.controller.oneshot import build_source

        real = build_source(cfg, now=now, env={})

        class Flaky:
            def collect(self, *a: Any, **k: Any) -> Any:
                if down["on"]:
                    raise SourceError("connection refused", url="http://prom:9090")
                return real.collect(*a, **k)

            def describe(self) -> str:
                return "flaky"

        return Flaky()

    rig, sink = rig_with_sink(tmp_path, source=source)
    rig.reconciler.run_once(config(), now=NOW)
    (fired,) = sink.alerts
    assert (fired.type, fired.priority, fired.dedup_key) == (
        "collection_failed",
        Priority.P2,
        "collection_failed:synthetic",
    )
    assert "connection refused" in fired.summary and fired.component == "source"
    down["on"] = False
    rig.reconciler.run_once(config(), now=NOW + 300)
    assert emitted(sink)[1:] == [("collection_failed", "P2", "resolved")]  # dry-run: no more


def test_an_apply_emits_limits_applied_p3_and_resolves_apply_incidents(tmp_path: Path) -> None:
    rig, sink = rig_with_sink(tmp_path)
    result = rig.reconciler.run_once(config(mode="prod"), now=NOW)
    assert result.applied > 0
    assert emitted(sink) == [
        ("collection_failed", "P2", "resolved"),
        ("apply_failed", "P1", "resolved"),
        ("rollback", "P1", "resolved"),
        ("limits_applied", "P3", "firing"),
    ]
    applied = sink.alerts[-1]
    assert applied.details["count"] == result.applied
    assert applied.dedup_key == f"limits_applied:{rig.applier.name}:{applied.details['revision']}"
    assert {"tenant", "limit", "old", "new"} <= set(applied.details["changes"][0])


def test_a_failed_write_fires_apply_failed_p1(tmp_path: Path) -> None:
    rig, sink = rig_with_sink(tmp_path, fs=DiskFull())
    rig.reconciler.run_once(config(mode="prod"), now=NOW)
    assert emitted(sink)[-1] == ("apply_failed", "P1", "firing")
    assert "previous content intact" in sink.alerts[-1].summary


def test_a_rollback_after_failed_verification_fires_p1(tmp_path: Path) -> None:
    other = tmp_path / "not-the-target.yaml"
    other.write_text("overrides: {}\n")
    with FakeMimir([other], CATALOGUE, period=0.05) as mimir:
        settings = config(verify={"mimirUrl": mimir.url, "timeout": "1s", "pollInterval": "100ms"})
        rig, sink = rig_with_sink(tmp_path, verifier=MimirVerifier(settings.verify))
        rig.reconciler.run_once(config(mode="prod"), now=NOW)
    assert emitted(sink)[-1] == ("rollback", "P1", "firing")
    assert sink.alerts[-1].status is AlertStatus.FIRING and "rolled back" in sink.alerts[-1].summary


# --- the running service ----------------------------------------------------------------------


def _config_text(tmp_path: Path, server: Receiver, method: str) -> str:
    return (
        f"updateInterval: 1s\ndataDir: {tmp_path}\nsynthetic:\n  tenantCount: 4\n"
        "server:\n  metricsPort: 0\n  healthPort: 0\n"
        "alerting:\n"
        "  webhooks:\n"
        "    ops:\n"
        f"      url: {server.url}/hook?token={TOKEN}\n"
        f"      method: {method}\n"
        "  routing:\n"
        "    - match: {type: config_reload_failed}\n"
        "      channels: [webhooks]\n"
        "      escalation: immediate\n"
        "  delivery:\n"
        "    pollInterval: 50ms\n"
    )


def _wait(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_the_service_alerts_on_a_bad_reload_and_a_fixed_file_recovers_the_channel(
    tmp_path: Path,
) -> None:
    with receiver() as server:
        server.default = Reply(200)
        file = tmp_path / "mlo.yaml"
        file.write_text(_config_text(tmp_path, server, "GET"))  # GET: the channel is broken
        provider = ConfigProvider(file, env={}, cli={}, catalogue=CATALOGUE)
        service = Service(provider, CATALOGUE, logger=logging.getLogger("test-alerting-svc"))
        stop = threading.Event()
        thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
        thread.start()
        try:
            assert _wait(lambda: service.servers is not None)
            assert service.servers is not None
            status_url = f"http://127.0.0.1:{service.servers.health_port}/debug/alerting/status"
            status = httpx.get(status_url).json()
            (ops,) = status["channels"]
            assert ops["name"] == "webhook:ops" and ops["healthy"] is False
            assert "method 'GET' is not supported" in ops["configError"]
            assert TOKEN not in json.dumps(status)

            file.write_text("alerting: [\n")  # a broken file: the reload fails
            assert _wait(lambda: httpx.get(status_url).json()["channels"][0]["pending"] == 1)
            assert server.requests == []  # the channel is still broken: the alert waits

            file.write_text(_config_text(tmp_path, server, "POST"))  # fixed: no restart
            requests = server.wait_for(2, timeout=20)
            bodies = [r.json() for r in requests]
            assert [(b["type"], b["status"]) for b in bodies] == [
                ("config_reload_failed", "firing"),
                ("config_reload_failed", "resolved"),
            ]
            assert bodies[0]["priority"] == "P2"
            assert _wait(lambda: httpx.get(status_url).json()["channels"][0]["healthy"])
            metrics = httpx.get(f"http://127.0.0.1:{service.servers.metrics_port}/metrics").text
            assert (
                'mimir_limit_optimizer_alert_configuration_errors_total{channel="webhook:ops",'
                'config_error_type="invalid_value"} 1.0' in metrics
            )
        finally:
            stop.set()
            thread.join(timeout=30)
        assert not thread.is_alive()


# --- mlo alert -------------------------------------------------------------------------------


def _cli_config(tmp_path: Path, url: str, **webhook: str) -> Path:
    extra = "".join(f"      {k}: {v}\n" for k, v in webhook.items())
    path = tmp_path / "alerts.yaml"
    path.write_text(
        "alerting:\n  webhooks:\n    ops:\n"
        f"      url: {url}/hook?token={TOKEN}\n      timeout: 2s\n{extra}"
        "  pagerduty:\n    integrationKey: ''\n"
    )
    return path


def test_mlo_alert_test_reports_the_outcome(tmp_path: Path) -> None:
    runner = CliRunner()
    with receiver() as server:
        path = _cli_config(tmp_path, server.url)
        ok = runner.invoke(app, ["alert", "test", "--channel", "ops", "--config", str(path)])
        assert ok.exit_code == 0, ok.output
        assert "ok: test alert delivered to webhook:ops" in ok.output
        (request,) = server.wait_for(1)
        assert request.json()["type"] == "test" and request.json()["priority"] == "P1"

        server.default = Reply(503, body=b"maintenance")
        failed = runner.invoke(
            app, ["alert", "test", "--channel", "webhook:ops", "-c", str(path), "-f", "json"]
        )
        assert failed.exit_code == 1
        body = json.loads(failed.stdout)
        assert body["ok"] is False and body["retryable"] is True
        assert body["detail"] == "webhook ops returned HTTP 503: maintenance"

        bad = runner.invoke(app, ["alert", "test", "--channel", "pagerduty", "-c", str(path)])
        assert bad.exit_code == 2 and "integrationKey is empty" in bad.output
        unknown = runner.invoke(app, ["alert", "test", "--channel", "sms", "-c", str(path)])
        assert unknown.exit_code == 2 and "no enabled alert channel 'sms'" in unknown.output

        listed = runner.invoke(app, ["alert", "channels", "-c", str(path), "-f", "json"])
        assert listed.exit_code == 0
        rows = {row["channel"]: row for row in json.loads(listed.stdout)}
        assert rows["webhook:ops"]["configError"] is None
        assert "integrationKey" in rows["pagerduty"]["configError"]
        for result in (ok, failed, bad, listed):
            assert TOKEN not in result.output


def test_mlo_config_show_redacts_alerting_secrets(tmp_path: Path) -> None:
    path = _cli_config(tmp_path, "http://127.0.0.1:9", headers="{Authorization: 'Bearer x-s3cr3t'}")
    shown = CliRunner().invoke(app, ["config", "show", "-c", str(path)])
    assert shown.exit_code == 0, shown.output
    assert TOKEN not in shown.stdout and "x-s3cr3t" not in shown.stdout
    assert "webhooks:" in shown.stdout and "Authorization: '***'" in shown.stdout
