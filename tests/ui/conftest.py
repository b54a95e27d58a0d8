"""A real service (synthetic cluster, prod mode, file target, SQLite store) started once per
test module, and one headless Debian chromium per session (never a downloaded browser)."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.controller.config_provider import ConfigProvider
from mimir_limit_optimizer.controller.service import Service
from tests.conftest import REQUIRE_REAL_ENV

TOKEN = "ui-test-token-4f9a1c"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
CONFIG = """\
mode: prod
updateInterval: 1h
dataDir: {data}
synthetic:
  tenantCount: 12
changePolicy:
  cooldown: 0s
server:
  metricsPort: 0
  healthPort: 0
  uiPort: 0
circuitBreaker:
  apiToken: api-token-never-shown-7d2e
ui:
  configWritable: true
  auth:
    token: {token}
"""

BASELINE = "# hand-written\noverrides:\n  tenant-001:\n    ingestion_rate: 10000\n"


@dataclass
class Running:
    service: Service
    base: str
    config_file: Path
    overrides: Path
    stop: threading.Event

    def wait_cycles(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.service.ui.read_model.cycle_version() < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {count} cycle(s) within {timeout}s")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("ui-service")
    config_file = folder / "config.yaml"
    config_file.write_text(CONFIG.format(data=folder / "data", token=TOKEN), encoding="utf-8")
    # What the operator had before the optimizer's first write (kept as the baseline revision).
    (folder / "data").mkdir()
    (folder / "data" / "overrides.yaml").write_text(BASELINE, encoding="utf-8")
    catalogue = load_catalogue()
    provider = ConfigProvider(config_file, env={}, cli={}, catalogue=catalogue)
    service = Service(provider, catalogue, logger=logging.getLogger("test-ui-service"))
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while service.servers is None or service.servers.api_port is None:
        assert time.monotonic() < deadline, "the UI server did not start"
        time.sleep(0.05)
    run = Running(
        service,
        f"http://127.0.0.1:{service.servers.api_port}",
        config_file,
        folder / "data" / "overrides.yaml",
        stop,
    )
    run.wait_cycles(1)
    yield run
    stop.set()
    thread.join(30)


def chromium_path() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    found = shutil.which("chromium")
    if found:
        return found
    message = "chromium not found; install it with: apt-get install chromium"
    if os.environ.get(REQUIRE_REAL_ENV) == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")  # one module drives the browser: one browser per session
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
