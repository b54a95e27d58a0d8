"""Audit volume of the service's cycle: audit events per dry-run cycle against the number of
planned changes (one event per change, as before the summarised `change_held_back`), and the
size of the stored plan. Two cycles on the same data: the second repeats the first's plan.

    .venv/bin/python bench/plan_audit.py [--tenants 1000 5000]

Counts, not timings: the numbers do not depend on the machine's load."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.controller.oneshot import build_source
from mimir_limit_optimizer.controller.reconcile import PLAN_KEY, Reconciler
from mimir_limit_optimizer.observability.health import HealthState
from mimir_limit_optimizer.observability.metrics import ControllerMetrics
from mimir_limit_optimizer.store import AuditLog, Store
from mimir_limit_optimizer.targets.file import FileTarget

CATALOGUE = load_catalogue()
LOG = logging.getLogger("bench-plan-audit")
LOG.addHandler(logging.NullHandler())
LOG.propagate = False


def measure(tenants: int, directory: Path) -> list[tuple[int, int, int, int, int]]:
    """Per cycle: (planned, held back, writes, audit events, stored plan bytes, compressed)."""
    store = Store.open(f"sqlite:///{directory / 'mlo.db'}")
    applier = Applier(
        FileTarget(directory / "overrides.yaml"), store, CATALOGUE, verifier=None,
        rollback_on_failure=True, sleep=lambda _s: None, logger=LOG,
    )  # fmt: skip
    reconciler = Reconciler(
        catalogue=CATALOGUE,
        source_factory=lambda cfg, now: build_source(cfg, now=now, env={}),
        applier=applier, store=store, audit=AuditLog(store, logger=LOG),
        metrics=ControllerMetrics(CollectorRegistry()), health=HealthState(stall_after=60),
        logger=LOG,
    )  # fmt: skip
    config = Config.model_validate(
        {"synthetic": {"tenantCount": tenants, "history": "2d"},
         "trendAnalysis": {"analysisWindow": "2d", "minHistory": "1d"}}
    )  # fmt: skip
    now = float(int(time.time() // 300 * 300))
    rows = []
    seen = 0
    for cycle in range(2):
        result = reconciler.run_once(config, now=now + 60 * cycle)
        events = len(store.audit(limit=10_000_000)) - seen
        seen += events
        raw = store.load_checkpoint(PLAN_KEY) or b""
        writes = result.planned - result.held_back
        rows.append((result.planned, result.held_back, writes, events, len(raw)))
    store.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, nargs="+", default=[1000, 5000])
    args = parser.parse_args()
    print(
        f"{'tenants':>8} {'cycle':>5} {'planned':>8} {'held':>7} {'writes':>7} "
        f"{'events':>7} {'per-change':>10} {'ratio':>7} {'plan KiB':>9}"
    )
    for tenants in args.tenants:
        with tempfile.TemporaryDirectory() as tmp:
            for cycle, (planned, held, writes, events, size) in enumerate(
                measure(tenants, Path(tmp)), start=1
            ):
                ratio = events / planned if planned else 0.0
                print(
                    f"{tenants:>8} {cycle:>5} {planned:>8} {held:>7} {writes:>7} {events:>7} "
                    f"{planned:>10} {ratio:>7.3f} {size / 1024:>9.1f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
