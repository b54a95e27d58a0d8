"""The service as a user runs it: `mlo run` serves /metrics, /healthz and /readyz on
127.0.0.1 while its loop runs and stops cleanly; `mlo run --once --mode prod` then
`mlo history`, `mlo diff`, `mlo rollback` and `mlo audit` work on the same target; and killing
the process with SIGKILL at random moments never leaves a partial overrides file."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import httpx
import pytest

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.controller.config_provider import ConfigProvider
from mimir_limit_optimizer.controller.service import Service
from mimir_limit_optimizer.engine import compiled
from mimir_limit_optimizer.engine.overrides import validate_overrides

CATALOGUE = load_catalogue()
HAND_WRITTEN = "overrides:\n  tenant-001:\n    max_queriers_per_tenant: 4\n"


def mlo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MODE", "MLO_CONFIG")}
    return subprocess.run(
        [sys.executable, "-m", "mimir_limit_optimizer.cli", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_the_loop_serves_health_and_metrics_and_stops(tmp_path: Path) -> None:
    file = tmp_path / "mlo.yaml"
    file.write_text(
        f"updateInterval: 1s\ndataDir: {tmp_path}\nsynthetic:\n  tenantCount: 6\n"
        "server:\n  metricsPort: 0\n  healthPort: 0\n  uiPort: 0\n"
    )
    provider = ConfigProvider(file, env={}, cli={}, catalogue=CATALOGUE)
    service = Service(provider, CATALOGUE, logger=logging.getLogger("test-service"))
    stop = threading.Event()
    outcome: list[int] = []
    thread = threading.Thread(target=lambda: outcome.append(service.run(stop)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while service.servers is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.servers is not None
    health = f"http://127.0.0.1:{service.servers.health_port}"
    metrics = f"http://127.0.0.1:{service.servers.metrics_port}/metrics"
    while httpx.get(f"{health}/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    ready = httpx.get(f"{health}/readyz")
    assert ready.status_code == 200 and ready.json()["role"] == "standalone"
    assert httpx.get(f"{health}/healthz").status_code == 200
    text = httpx.get(metrics).text
    assert 'mimir_limit_optimizer_reconcile_total{result="success"}' in text
    # The REST API runs on its own server; a mutation without the token is refused.
    api = f"http://127.0.0.1:{service.servers.api_port}/api/v1/circuit-breaker"
    assert service.servers.api_port not in (None, service.servers.metrics_port)
    assert httpx.get(f"{api}/status").status_code == 200
    assert httpx.post(f"{api}/disable").status_code in (401, 403)
    assert (
        httpx.get(f"{metrics[: -len('/metrics')]}/api/v1/circuit-breaker/status").status_code == 404
    )
    assert "mimir_limit_optimizer_tenant_recommended_limits{" in text
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive() and outcome == [0]
    assert not (tmp_path / "overrides.yaml").exists()  # dry-run wrote nothing


def test_run_once_history_diff_rollback_and_audit(tmp_path: Path) -> None:
    target = tmp_path / "runtime.yaml"
    target.write_text(HAND_WRITTEN)
    args = ("--overrides-file", str(target))
    first = mlo("run", "--once", "--mode", "prod", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    written = target.read_text()
    assert written != HAND_WRITTEN
    assert mlo("validate", str(target), cwd=tmp_path).returncode == 0
    assert mlo("run", "--once", "--mode", "prod", *args, cwd=tmp_path).returncode == 0
    assert target.read_text() == written  # the second run changes nothing
    history = json.loads(mlo("history", *args, "--format", "json", cwd=tmp_path).stdout)
    assert [r["kind"] for r in history["items"]] == ["apply", "baseline"]
    apply_id, baseline_id = (r["id"] for r in history["items"])
    diff = mlo("diff", str(baseline_id), str(apply_id), *args, cwd=tmp_path).stdout
    assert diff.startswith(f"--- revision {baseline_id}") and "+  " in diff
    done = mlo("rollback", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert target.read_text() == HAND_WRITTEN
    events = json.loads(mlo("audit", "--format", "json", "--limit", "1000", cwd=tmp_path).stdout)
    actions = {e["action"] for e in events["items"]}
    assert {"update_limits", "change_held_back", "rollback"} <= actions


def test_sigkill_during_applies_never_leaves_a_partial_file(tmp_path: Path) -> None:
    """Kill `mlo run --once --mode prod` at random moments: the target is always either the
    hand-written content or a complete, valid file. Bounded: 12 kills."""
    target = tmp_path / "runtime.yaml"
    rng = random.Random(7)
    seen_new = 0
    # How long one apply takes here (start-up included): kills are spread around it, so that
    # some land before, some during and some after the write, on a fast or a slow machine.
    target.write_text(HAND_WRITTEN)
    started = time.monotonic()
    timed = mlo("run", "--once", "--mode", "prod", "--overrides-file", str(target), cwd=tmp_path)
    duration = time.monotonic() - started
    assert timed.returncode == 0, timed.stderr[-2000:]
    for attempt in range(12):
        target.write_text(HAND_WRITTEN)
        settings = tmp_path / f"mlo-{attempt}.yaml"  # a fresh store: every run really applies
        settings.write_text(f"dataDir: {tmp_path / f'data-{attempt}'}\n")
        env = {k: v for k, v in os.environ.items() if k not in ("MODE", "MLO_CONFIG")}
        process = subprocess.Popen(
            [sys.executable, "-m", "mimir_limit_optimizer.cli", "run", "--once", "--mode",
             "prod", "--config", str(settings), "--overrides-file", str(target)],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # The last two kills come well after a whole run's time, so that on a machine whose
        # speed changes under load at least one lands after the write.
        time.sleep((rng.uniform(0.3, 1.3) if attempt < 10 else 3.0) * duration)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        text = target.read_text()
        if text != HAND_WRITTEN:
            seen_new += 1
            assert validate_overrides(text, CATALOGUE, source_name="t") == []
            assert text.endswith("\n") and "tenant-001" in text
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    assert seen_new > 0  # some kills came after the write: both outcomes were exercised


def test_sigterm_stops_the_service_cleanly(tmp_path: Path) -> None:
    settings = tmp_path / "mlo.yaml"
    settings.write_text(
        f"updateInterval: 1s\ndataDir: {tmp_path}\nsynthetic:\n  tenantCount: 6\n"
        "server:\n  metricsPort: 0\n  healthPort: 0\n  uiPort: 0\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MODE", "MLO_CONFIG")}
    process = subprocess.Popen(
        [sys.executable, "-m", "mimir_limit_optimizer.cli", "run", "--config", str(settings)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # bounded: wait for the first cycle
        line = process.stderr.readline()
        lines.append(line)
        if "cycle ok" in line or not line:
            break
    assert any("cycle ok" in line for line in lines), "".join(lines[-20:])
    first = json.loads(lines[0].split("mimir_limit_optimizer: ", 1)[1])
    assert first["mode"] == "dry-run" and first["source"] == "synthetic"
    assert first["target"].startswith("file ") and "config" in first
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    rest = process.stderr.read()
    assert "received SIGTERM" in rest


def test_the_startup_line_says_which_engine_passes_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install without a C compiler runs the numpy paths: the log's first line says so."""
    file = tmp_path / "mlo.yaml"
    file.write_text(f"dataDir: {tmp_path}\nsynthetic:\n  tenantCount: 3\n")
    provider = ConfigProvider(file, env={}, cli={}, catalogue=CATALOGUE)
    service = Service(provider, CATALOGUE, logger=logging.getLogger("test-service"))
    assert json.loads(service.startup_line())["enginePasses"] == "compiled"
    # Built without numpy 2's headers: every pass but the sort.
    without_sort = types.SimpleNamespace(hour_pass=compiled.point_passes().hour_pass)
    monkeypatch.setattr(compiled, "point_passes", lambda: without_sort)
    assert json.loads(service.startup_line())["enginePasses"] == "compiled, numpy sort"
    monkeypatch.setattr(compiled, "point_passes", lambda: None)
    assert json.loads(service.startup_line())["enginePasses"] == "numpy"
