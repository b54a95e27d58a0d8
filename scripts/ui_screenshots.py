"""Screenshot every page of the web UI into docs/ui/ (shown in the README and docs/ui.md).

Starts a real service (synthetic cluster, prod mode, file target, SQLite store in a temporary
folder), lets it run one cycle, logs in with a throwaway token and drives Debian's chromium:

    .venv/bin/python scripts/ui_screenshots.py            # docs/ui/*.png
"""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "ui"
TOKEN = "screenshot-token-only-for-this-run"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip
CONFIG = """\
mode: prod
updateInterval: 1h
dataDir: {data}
changePolicy:
  cooldown: 0s
server:
  metricsPort: 0
  healthPort: 0
  uiPort: 0
limits:
  tenantTiers:
    gold:
      bufferPercentage: 30
      limits:
        ingestion_rate: 200000
tenantTierMapping:
  "tenant-00[1-3]": gold
ui:
  configWritable: true
  auth:
    token: {token}
"""
PAGES = (
    ("dashboard", "/", None),
    ("tenants", "/tenants?sort=utilisation&dir=desc", None),
    ("tenant", "/tenants/tenant-003", None),
    ("metrics", "/charts?range=24h", None),
    ("configuration", "/config", None),
    ("configuration-limits", "/config", None),
    ("audit", "/audit?action=update_limits", None),
    ("diff", "/diff?left={baseline}&right={latest}", None),
    ("tools", "/tools", None),
    ("dashboard-dark-375", "/", (375, 812)),
)


def main() -> int:
    from playwright.sync_api import sync_playwright

    from mimir_limit_optimizer.catalogue import load_catalogue
    from mimir_limit_optimizer.controller.config_provider import ConfigProvider
    from mimir_limit_optimizer.controller.service import Service

    logging.basicConfig(level=logging.WARNING)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlo-shots-") as folder:
        data = Path(folder) / "data"
        data.mkdir()
        (data / "overrides.yaml").write_text(
            "overrides:\n  tenant-001:\n    ingestion_rate: 10000\n"
        )
        config = Path(folder) / "config.yaml"
        config.write_text(CONFIG.format(data=data, token=TOKEN))
        catalogue = load_catalogue()
        provider = ConfigProvider(config, env={}, cli={}, catalogue=catalogue)
        service = Service(provider, catalogue, logger=logging.getLogger("shots"))
        stop = threading.Event()
        thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while service.ui.read_model.cycle_version() < 1 or service.servers is None:
            if time.monotonic() > deadline:
                print("the service did not finish a cycle", file=sys.stderr)
                return 1
            time.sleep(0.1)
        revisions = service.store.revisions(service.applier.name)
        ids = {"baseline": revisions[-1].id, "latest": revisions[0].id}
        base = f"http://127.0.0.1:{service.servers.api_port}"
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                for name, path, size in PAGES:
                    width, height = size or (1280, 900)
                    ctx = browser.new_context(
                        viewport={"width": width, "height": height},
                        color_scheme="dark" if "dark" in name else "light",
                    )
                    page = ctx.new_page()
                    page.goto(f"{base}/login")
                    page.fill("#password", TOKEN)
                    page.click("form[action='/login'] button[type=submit]")
                    page.goto(base + path.format(**ids))
                    page.wait_for_load_state("networkidle")
                    page.wait_for_timeout(500)  # charts draw after their data arrives
                    if name == "configuration-limits":  # the limit table with an edit
                        page.fill("input[name='o:ingestion_rate:defaultValue']", "30000")
                        page.fill("input[name='t:gold:ingestion_rate']", "250000")
                        page.click("#limit-diff-button")
                        page.wait_for_selector("#limit-yaml-diff")
                        page.eval_on_selector_all(
                            ".scroll", "els => els.forEach(e => e.scrollLeft = 0)"
                        )
                        section = page.locator("section[aria-labelledby=cat-h]")
                        section.screenshot(path=str(OUT / f"{name}.png"))
                    else:
                        page.screenshot(path=str(OUT / f"{name}.png"), full_page=size is None)
                    ctx.close()
                    print(f"docs/ui/{name}.png")
                browser.close()
        finally:
            stop.set()
            thread.join(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
