"""A service killed (SIGKILL) in the middle of delivering alerts, then restarted, delivers
every alert to the channel: nothing is lost, and, counted by the Idempotency-Key each
delivery carries, nothing arrives twice. The restarted process emits the same alerts
again (it sees the same incidents): they are deduplicated against the persistent queue.
The one request in flight at the kill may reach the receiver a second time with the same
key (delivery is at least once; the key makes it exactly once for the receiver)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.alerting_servers import Reply, receiver

CHILD = """
import json, logging, sys, time
from prometheus_client import CollectorRegistry
from mimir_limit_optimizer.alerting import Alert, AlertingManager, Priority, Severity
from mimir_limit_optimizer.config.alerting import AlertingSettings
from mimir_limit_optimizer.store import Store

db, url, mode = sys.argv[1], sys.argv[2], sys.argv[3]
settings = AlertingSettings.model_validate(
    {"webhooks": {"hook": {"url": url, "timeout": 5}},
     "delivery": {"pollInterval": "50ms", "initialBackoff": "100ms"}},
    by_name=False,
)
store = Store.open(db)
manager = AlertingManager(settings, queue=store, registry=CollectorRegistry(),
                          logger=logging.getLogger("child"))
now = time.time()
for i in range(8):
    manager.emit(Alert(type="t", priority=Priority.P0, severity=Severity.CRITICAL,
                       summary=f"incident {i}", component="c", dedup_key=f"incident-{i}",
                       timestamp=now))
manager.start()
if mode == "finish":
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not store.alert_counts().get("webhook:hook"):
            break
        time.sleep(0.05)
    manager.stop(flush=0)
    store.close()
    print("drained")
else:
    time.sleep(60)
"""


def _run(db: str, url: str, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, db, url, mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_mid_delivery_then_restarted_delivers_each_alert_once(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/mlo.db"
    with receiver() as server:
        server.default = Reply(200, delay=0.25)  # slow: the kill lands mid-delivery
        first = _run(db, server.url + "/hook", "hang")
        try:
            assert len(server.wait_for(3, timeout=20)) >= 3, first.stderr
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        received_before_restart = len(server.requests)
        assert received_before_restart < 8  # it really was killed mid-way
        server.default = Reply(200)
        second = _run(db, server.url + "/hook", "finish")
        out, err = second.communicate(timeout=30)
        assert second.returncode == 0 and "drained" in out, err
        time.sleep(0.1)
        requests = list(server.requests)
    keys = [r.headers["Idempotency-Key"] for r in requests]
    incidents = {json.loads(r.body)["dedupKey"] for r in requests}
    assert incidents == {f"incident-{i}" for i in range(8)}
    assert len(set(keys)) == 8  # exactly once per alert, by the receiver's dedup key
    assert len(keys) <= 9  # at most the one in flight at the kill was sent twice
