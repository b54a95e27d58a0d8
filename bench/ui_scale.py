"""Web UI scale benchmark: a real service state with N tenants x 10 limits in the store, then
each page's server time against a static file served by the same server (the floor), as a
ratio (timings on a shared machine are noisy; the ratio is what to compare).

The state is made by the service itself: a dry-run cycle over a synthetic cluster of N tenants
(short history, so the engine run is quick) recommends every tenant x limit; then the overrides
file is given an entry per tenant (three limits at 70% of the recommendation, as if an older
apply had written them) and a second cycle plans against it, audits every pending change and
checkpoints the results; a few revisions of that file are added to the store. The Diff viewer's
"current content vs pending plan" is then a file of N tenants against a plan for most of them.

    .venv/bin/python bench/ui_scale.py                   # 10,000 tenants
    .venv/bin/python bench/ui_scale.py --tenants 500 --repeat 3   # smoke run (CI)
    .venv/bin/python bench/ui_scale.py --only /diff      # the Diff viewer's pages only
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

CONFIG = """\
mode: dry-run
dataDir: {data}
synthetic:
  tenantCount: {tenants}
  history: 2d
  step: 1h
trendAnalysis:
  analysisWindow: 2d
  minHistory: 1h
server:
  metricsPort: 0
  healthPort: 0
  uiPort: 0
"""
PAGES = (
    "/",
    "/tenants",
    "/tenants?q=tenant-0*&status=near+limit&sort=utilisation&dir=desc&page=2",
    "/tenants/{tenant}",
    "/audit",
    "/audit?action=would_update_limits&page=100",
    "/diff",
    "/diff?left=current&right=pending",
    "/diff?left=current&right=pending&page=2",
    "/diff?left={first}&right={last}",
    "/config",
    "/charts",
    "/tools",
    "/api/v1/overview",
    "/api/v1/tenants?perPage=100&sort=changes&dir=desc",
)
FLOOR = "/static/app.css"
LIMITS = ("ingestion_rate", "ingestion_burst_size", "max_global_series_per_user")


def measure(client: httpx.Client, path: str, repeat: int) -> tuple[float, float, int]:
    """Seconds of the first GET (caches cold), median seconds of `repeat` more, body size."""
    start = time.perf_counter()
    size = len(client.get(path).content)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - start)
        if answer.status_code != 200:
            raise SystemExit(f"{path}: HTTP {answer.status_code}: {answer.text[:300]}")
    return first, statistics.median(times), size


def _older_overrides(recs: Any) -> str:
    """An overrides file with three limits per tenant at 70% of the recommendation."""
    lines = ["# what an older apply wrote\noverrides:\n"]
    chosen = [n for n in LIMITS if n in recs.results]
    for i, tenant in enumerate(recs.tenants):
        lines.append(f"  {tenant}:\n")
        for name in chosen:
            value = recs.results[name].recommended[i]
            if math.isfinite(value):
                lines.append(f"    {name}: {max(1, int(value * 0.7))}\n")
    return "".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--only", default="", help="time only the pages containing this text")
    args = parser.parse_args()

    from mimir_limit_optimizer.catalogue import load_catalogue
    from mimir_limit_optimizer.controller.config_provider import ConfigProvider
    from mimir_limit_optimizer.controller.service import Service
    from mimir_limit_optimizer.web.protection_api import build_protection_router
    from mimir_limit_optimizer.web.server import start_servers
    from mimir_limit_optimizer.web.ui.model import AuditQuery

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="mlo-ui-bench-") as folder:
        config_file = Path(folder) / "config.yaml"
        config_file.write_text(CONFIG.format(data=Path(folder) / "data", tenants=args.tenants))
        catalogue = load_catalogue()
        provider = ConfigProvider(config_file, env={}, cli={}, catalogue=catalogue)
        quiet = logging.getLogger("ui-bench")
        logging.getLogger("mimir_limit_optimizer.audit").setLevel(logging.WARNING)
        service = Service(provider, catalogue, logger=quiet)
        first_cycle = service.cycle()
        if first_cycle.recommendations is None:
            raise SystemExit(f"the cycle failed: {first_cycle.detail}")
        content = _older_overrides(first_cycle.recommendations)
        overrides = Path(folder) / "data" / "overrides.yaml"
        overrides.write_text(content)
        started = time.perf_counter()
        result = service.cycle()
        cycle_seconds = time.perf_counter() - started
        if result.recommendations is None:
            raise SystemExit(f"the cycle failed: {result.detail}")
        recs = result.recommendations
        ids = []
        for k in range(5):
            text = content if k < 4 else content.replace(": 1", ": 2")  # the last one differs
            ids.append(
                service.store.add_revision(
                    target=service.applier.name, content=text, plan=[], actor="bench",
                    created_at=time.time() - 3600 * (5 - k), kind="apply", note=f"bench {k}",
                ).id
            )  # fmt: skip
        servers = start_servers(
            provider.config.server,
            registry=service.registry,
            health=service.health,
            routers=[build_protection_router(service.protection)],
            extend_api=service.ui.extend,
        )
        audit_rows = service.ui.read_model.audit(AuditQuery()).total
        try:
            base = f"http://127.0.0.1:{servers.api_port}"
            with httpx.Client(base_url=base, timeout=120) as client:
                _, floor, _ = measure(client, FLOOR, args.repeat)
                print(
                    f"{len(recs.tenants):,} tenants x {len(recs.results)} limits in the store, "
                    f"{audit_rows:,} audit events; one cycle took {cycle_seconds:.1f}s; the "
                    f"overrides file has {content.count(chr(10)):,} lines"
                )
                print(f"floor: {FLOOR} median {floor * 1000:.1f} ms over {args.repeat} GETs")
                print(f"{'page':<72} {'first ms':>9} {'median ms':>10} {'x floor':>8} {'KiB':>8}")
                for page in [p for p in PAGES if args.only in p]:
                    path = page.format(
                        tenant=recs.tenants[len(recs.tenants) // 2], first=ids[0], last=ids[-1]
                    )
                    first, seconds, size = measure(client, path, args.repeat)
                    print(
                        f"{path:<72} {first * 1000:>9.0f} {seconds * 1000:>10.1f} "
                        f"{seconds / floor:>8.1f} "
                        f"{size / 1024:>8.1f}"
                    )
        finally:
            servers.stop()
            service.store.close()


if __name__ == "__main__":
    main()
