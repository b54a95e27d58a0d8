"""Service benchmark: one `mlo run` dry-run cycle on the synthetic cluster at 1k, 10k, 100k
tenants (2 days of history, the service's own wiring: store, audit, guards, metrics).

Each size runs in a child process (one core: OMP/OPENBLAS threads = 1) that builds the
service as `mlo run` does, runs one cycle and prints: the cycle's wall time end to end and
its CPU time (the baseline that a loaded machine does not inflate), each
phase as the service measures it (`reconcile_duration_seconds`) and the time outside every
phase, peak RSS, audit events written by the cycle, and its own /metrics (series, bytes).
Goals at 10,000 tenants (issue 13): cycle <= 5 s, no unaccounted time, peak RSS <= 500 MB,
/metrics <= 20,000 series.

    .venv/bin/python bench/service_scale.py                      # 1k, 10k, 100k
    .venv/bin/python bench/service_scale.py --sizes 1000 10000   # skip 100k (long)
    .venv/bin/python bench/service_scale.py --sizes 200          # seconds (CI smoke)
    .venv/bin/python bench/service_scale.py --sizes 10000 --populated   # every tenant in the file
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mimir_limit_optimizer.observability.metrics import PHASES as METRIC_PHASES

# Every phase the service measures (the reconcile's, then cost, prune and the UI's index);
# "total" is the reconcile's sum; "verify" is timed inside "apply" (its write sequence).
PHASES = (*(p for p in METRIC_PHASES if p not in ("verify", "total")), "ui")


def populate(service: Any, path: Path) -> int:
    """Write an overrides file that sets three limits for every tenant of the synthetic
    cluster (the file a cluster of this size has once limits are managed: 4 lines a tenant),
    in place of the empty file of a first start. Returns its line count."""
    from mimir_limit_optimizer.sources.synthetic_generate import tenant_names

    # The cluster's own naming (not the source: building it here would warm the service's
    # cached cluster and hide the `collect` phase).
    names, _ = tenant_names(service.provider.config.synthetic.tenant_count)
    lines = ["# every tenant, as an earlier apply left it\noverrides:\n"]
    for i, tenant in enumerate(names):
        lines.append(
            f"  {tenant}:\n    ingestion_rate: {10_000 + i}\n"
            f"    ingestion_burst_size: {200_000 + i}\n"
            f"    max_global_series_per_user: {150_000 + i}\n"
        )
    text = "".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text.count("\n")


def child(tenants: int, history: str, populated: bool = False) -> dict[str, object]:
    from prometheus_client import generate_latest

    from mimir_limit_optimizer.catalogue import load_catalogue
    from mimir_limit_optimizer.controller.config_provider import ConfigProvider
    from mimir_limit_optimizer.controller.service import Service, ServiceOptions

    workdir = Path(tempfile.mkdtemp(prefix="mlo-service-bench-"))
    config = workdir / "config.yaml"
    config.write_text(
        "mode: dry-run\n"
        "source:\n  kind: synthetic\n"
        f"synthetic:\n  tenantCount: {tenants}\n  history: {history}\n"
        f"dataDir: {workdir / 'data'}\n"
        "server:\n  enabled: false\n"
    )
    logging.basicConfig(level=logging.WARNING)
    log = logging.getLogger("mimir_limit_optimizer")
    catalogue = load_catalogue()
    provider = ConfigProvider(config, env={}, cli={}, catalogue=catalogue)
    service = Service(provider, catalogue, logger=log, options=ServiceOptions(once=True))
    lines = populate(service, workdir / "data" / "overrides.yaml") if populated else 0
    start, cpu_start = time.perf_counter(), time.process_time()
    result = service.cycle()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    registry = service.registry

    def phase(name: str) -> float:
        value = registry.get_sample_value(
            "mimir_limit_optimizer_reconcile_duration_seconds_sum", {"phase": name}
        )
        return float(value or 0.0)

    phases = {name: phase(name) for name in PHASES}
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    scrape = generate_latest(registry)
    series = sum(1 for line in scrape.decode().splitlines() if line and not line.startswith("#"))
    events = len(service.store.audit())
    return {
        "tenants": tenants,
        "ok": result.ok,
        "wall": wall,
        "cpu": cpu,
        "total": phase("total"),
        "phases": phases,
        "outside": wall - sum(phases.values()),
        "peak_rss_mb": peak_rss_mb,
        "derive": derive_seconds(service, catalogue),
        "audit_events": events,
        "held_back": result.held_back,
        "metrics_series": series,
        "metrics_bytes": len(scrape),
        "overrides_lines": lines,
    }


def derive_seconds(service: Any, catalogue: Any) -> float:
    """Seconds to read every array of one collection once. The synthetic source hands the
    engine `LazyArrays`, each derived from the cluster's demands when `recommend` reads it:
    this part of `recommend` is the source's work (measured again here, after the cycle)."""
    from mimir_limit_optimizer.controller.oneshot import signals_needed
    from mimir_limit_optimizer.engine.recommend import enabled_limits

    config = service.provider.config
    now = service.clock()
    specs = signals_needed(enabled_limits(config, catalogue), catalogue)
    source = service.reconciler.source_factory(config, now)
    start = now - config.trend_analysis.analysis_window
    observation = source.collect(specs, start=start, end=now)
    began = time.perf_counter()
    for arrays in (observation.usage, observation.discards):
        for name in arrays:
            _ = arrays[name]  # LazyArrays: derived on access, dropped with the next
    return time.perf_counter() - began


def run_child(tenants: int, history: str, populated: bool) -> dict[str, object]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    args = [sys.executable, __file__, "--child", str(tenants), "--history", history]
    args += ["--populated"] if populated else []
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child for {tenants} tenants failed:\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--history", default="2d")
    parser.add_argument("--child", type=int)
    parser.add_argument(
        "--populated",
        action="store_true",
        help="start from an overrides file that sets 3 limits for every tenant (what a "
        "managed cluster of that size has: 40,000 lines at 10,000 tenants), not an empty one",
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.history, args.populated)))
        return
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"service: one dry-run cycle, synthetic cluster, {args.history} of history, one core; "
        f"{'overrides file with every tenant' if args.populated else 'empty overrides file'}; "
        f"load average {load} on {os.cpu_count()} cores (cpu: the cycle's own CPU seconds, "
        "which other processes' load does not inflate as it does the wall time)"
    )
    short = {"read_target": "read", "recommend": "recomm", "report": "report"}
    head = " ".join(f"{short.get(p, p):>7}" for p in PHASES)
    print(
        f"{'tenants':>8} {'cycle s':>8} {'cpu':>6} {head} {'outside':>7} {'derive':>6} "
        f"{'peak MB':>8} "
        f"{'audit ev':>8} {'series':>7} {'MB':>5}"
    )
    for size in args.sizes:
        r = run_child(size, args.history, args.populated)
        phases = r["phases"]
        assert isinstance(phases, dict)
        cells = " ".join(f"{phases[p]:>7.2f}" for p in PHASES)
        print(
            f"{size:>8} {r['wall']:>8.2f} {r['cpu']:>6.2f} {cells} {r['outside']:>7.2f} "
            f"{r['derive']:>6.2f} "
            f"{r['peak_rss_mb']:>8.0f} {r['audit_events']:>8} {r['metrics_series']:>7} "
            f"{int(r['metrics_bytes']) / 1e6:>5.1f}",  # type: ignore[call-overload]
            flush=True,
        )


if __name__ == "__main__":
    main()
