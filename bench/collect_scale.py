"""Collection benchmark against a real Prometheus: N tenants x D days.

Builds a synthetic cluster and backfills it into TSDB blocks (promtool), cached under
~/.cache/mlo-bench by parameters so that re-runs skip it; serves them with a real Prometheus
on 127.0.0.1 limited to --prom-cores cores (GOMAXPROCS); then, best of --repeat:
  ours     PrometheusSource.collect for the given limits with the default settings: one range
           query per signal for all tenants, chunked, up to 4 requests in flight as long as
           more pay (adaptive), plus a probe and 2 instant queries;
  ours-kept the same, by one source object collecting again (as `mlo backtest` does): it
           starts at the level its last collection learned and checks it one level lower;
  ours-1   the same with one request at a time;
  ours-4   the same with 4 requests in flight throughout (adaptiveConcurrency: false);
  eval     Prometheus' own evaluation time for exactly the requests ours sends
           (`stats=all`, execTotalTime summed): the physical floor;
  transfer the same requests one at a time, bytes received and nothing decoded: eval plus
           Prometheus' JSON encoding plus HTTP, the floor of any client;
  plain    the same requests with a plain httpx client and json.loads, 4 in flight (what
           collection cost before the fast decoder);
  naive    one query per tenant per signal over the whole range (what per-object tools do).
Prints query counts, seconds and ratios. Needs Debian's `prometheus` package.

    .venv/bin/python bench/collect_scale.py --tenants 1000 --days 7
    .venv/bin/python bench/collect_scale.py --tenants 5000 --days 7 --naive-tenants 100
    .venv/bin/python bench/collect_scale.py --tenants 20 --days 0.25 --step 600   # smoke
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.promserver import PromServer, backfill_openmetrics, serve_tsdb

from mimir_limit_optimizer.catalogue import LimitSpec, load_catalogue
from mimir_limit_optimizer.catalogue.units import format_duration
from mimir_limit_optimizer.config.models import PrometheusSettings, SyntheticSettings
from mimir_limit_optimizer.sources.prometheus import PrometheusSource
from mimir_limit_optimizer.sources.promql import TemplateRenderer
from mimir_limit_optimizer.sources.synthetic import generate_cluster, write_openmetrics

# Only the families the benchmarked queries read: keeps the backfill small.
FAMILIES = (
    "cortex_distributor_received_samples",
    "cortex_distributor_received_exemplars",
    "cortex_discarded_samples",
    "cortex_discarded_exemplars",
    "cortex_ingester_memory_series_created",
    "cortex_ingester_memory_series_removed",
    "cortex_distributor_replication_factor",
    "cortex_limits_defaults",
    "cortex_limits_overrides",
)
LIMITS = ("ingestion_rate", "max_global_series_per_user")
# promtool's largest blocks: the largest a Prometheus with 30 d retention compacts to itself
# (ranges 2h x 3^k up to retention / 10); one parse of the input per block, not per 2 h.
BLOCK = "54h"
# A range request (query, start, end, step) or an instant one (query, time).
Job = tuple[str, float, float, float] | tuple[str, float]


class FamilyFilter(io.TextIOBase):
    """Passes through only the OpenMetrics lines of FAMILIES (and # EOF)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.pending = ""

    def write(self, text: str) -> int:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            if line == "# EOF":
                self.out.write(line + "\n")
                continue
            parts = line.split(" ", 3)
            name = parts[2] if line.startswith("# ") and len(parts) > 2 else line.split("{")[0]
            if name.split(" ")[0].startswith(FAMILIES):
                self.out.write(line + "\n")
        return len(text)


CACHE_VERSION = 1  # bump when the generated data or its families change


def prom_cpu_seconds(server: PromServer) -> float:
    """Prometheus' CPU seconds so far (user + system, /proc): unlike wall-clock time, barely
    moved by the load of other processes on a shared machine."""
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _queries(server: PromServer) -> float:
    return server.requests_total("/api/v1/query_range") + server.requests_total("/api/v1/query")


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlo-bench"


def prepare_tsdb(
    tenants: int, days: float, step: float, cache: Path
) -> tuple[Path, dict[str, Any]]:
    """TSDB blocks of the synthetic cluster, built once per parameter set and cached: the
    backfill (Python writing OpenMetrics, then promtool) is minutes at 5,000 tenants, the
    queries we measure are seconds. Returns the blocks' directory and the metadata (the
    data's end time and tenants)."""
    key = f"collect-v{CACHE_VERSION}-t{tenants}-d{days:g}-s{step:g}-seed5"
    root = cache / key
    meta_path = root / "meta.json"
    if meta_path.exists():
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        print(f"backfill: {tenants} tenants x {days:g} days, cached at {root} (delete it to "
              "rebuild)")  # fmt: skip
        return root / "tsdb", meta
    end = float(int(time.time() // step * step) - step)
    settings = SyntheticSettings(tenant_count=tenants, seed=5, history=days * 86400, step=step)
    cluster = generate_cluster(settings, end=end)
    if root.exists():
        shutil.rmtree(root)  # an interrupted build
    root.mkdir(parents=True)
    data = root / "data.om"
    t0 = time.perf_counter()
    with data.open("w") as raw:
        write_openmetrics(cluster, FamilyFilter(raw), scrape_interval=step / 2)
    written = time.perf_counter() - t0
    size = data.stat().st_size / 1e6
    t0 = time.perf_counter()
    backfill_openmetrics(data, root / "tsdb", timeout=3600, max_block_duration=BLOCK)
    data.unlink()
    meta = {"end": end, "tenants": list(cluster.tenants)}
    meta_path.write_text(json.dumps(meta))
    print(f"backfill: {tenants} tenants x {days:g} days, scrape {step / 2:g}s, {size:.0f} MB "
          f"OpenMetrics written in {written:.0f}s, promtool {time.perf_counter() - t0:.0f}s "
          f"(blocks of up to {BLOCK}); cached at {root}")  # fmt: skip
    return root / "tsdb", meta


def serve_copy(blocks: Path, workdir: Path, cores: int) -> PromServer:
    """Prometheus on hard links of the cached blocks (it writes its WAL and lock beside
    them; block files are never modified), limited to `cores` (GOMAXPROCS)."""
    data_dir = workdir / "tsdb"
    data_dir.mkdir(parents=True)
    for block in blocks.iterdir():
        if (block / "meta.json").exists():
            shutil.copytree(block, data_dir / block.name, copy_function=os.link)
    return serve_tsdb(data_dir, workdir, env={"GOMAXPROCS": str(cores)})


def _post(client: httpx.Client, job: Job, stats: bool = False) -> httpx.Response:
    if len(job) == 4:
        query, lo, hi, step = job
        form = {"query": query, "start": lo, "end": hi, "step": step}
        path = "/api/v1/query_range"
    else:
        query, at = job
        form, path = {"query": query, "time": at}, "/api/v1/query"
    if stats:
        form["stats"] = "all"
    response = client.post(path, data=form)
    response.raise_for_status()
    return response


def time_eval(url: str, jobs: list[Job]) -> float:
    """Prometheus' own evaluation time of `jobs`, one at a time (execTotalTime, summed)."""
    total = 0.0
    with httpx.Client(base_url=url, timeout=300) as client:
        for job in jobs:
            timings = _post(client, job, stats=True).json()["data"]["stats"]["timings"]
            total += float(timings["execTotalTime"])
    return total


def time_transfer(url: str, jobs: list[Job], encoding: str) -> float:
    """Seconds to receive the responses' bytes, one request at a time, nothing decoded: what
    any client pays on top of the evaluation (Prometheus' JSON encoding and the transfer).
    `encoding`: the Accept-Encoding sent ("identity", as ours over loopback, or "gzip")."""
    t0 = time.perf_counter()
    headers = {"Accept-Encoding": encoding}
    with httpx.Client(base_url=url, timeout=300, headers=headers) as client:
        for job in jobs:
            _post(client, job)
    return time.perf_counter() - t0


def time_plain(url: str, jobs: list[Job], concurrency: int) -> float:
    """The same requests with a plain httpx client and json.loads, `concurrency` in flight
    (what collection cost before the fast decoder)."""
    t0 = time.perf_counter()
    with (
        httpx.Client(base_url=url, timeout=300) as client,
        ThreadPoolExecutor(max_workers=concurrency) as pool,
    ):
        list(pool.map(lambda job: json.loads(_post(client, job).content), jobs))
    return time.perf_counter() - t0


def time_ours(prom: PrometheusSettings, specs: list[LimitSpec], start: float, end: float,
              tenants: int, *, levels: list[str] | None = None,
              source: PrometheusSource | None = None) -> float:  # fmt: skip
    """Seconds of one collection (by `source`, else a new one); appends the requests-in-flight
    levels it went through to `levels` (e.g. "1>2>1")."""
    t0 = time.perf_counter()
    source = source or PrometheusSource(prom)
    obs = source.collect(specs, start=start, end=end)
    took = time.perf_counter() - t0
    assert len(obs.tenants) == tenants, len(obs.tenants)
    if levels is not None:
        levels.append(">".join(map(str, source.last_concurrency)))
    return took


def time_naive(
    url: str, tenants: list[str], specs: list[LimitSpec], window: tuple[float, float, float]
) -> float:
    """One query per tenant per signal over the whole range (what per-object tools do)."""
    start, end, step = window
    t0 = time.perf_counter()
    with httpx.Client(base_url=url, timeout=300) as client:
        for tenant in tenants:
            render = TemplateRenderer({"user": tenant}, rate_interval=2 * step,
                                      replication_factor=3)  # fmt: skip
            for spec in specs:
                for template in (spec.usage_query, spec.discard_query):
                    if template:
                        json.loads(
                            _post(client, (render.render(template), start, end, step)).content
                        )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--step", type=float, default=3600.0, help="query step, seconds")
    parser.add_argument("--chunk", type=float, default=86400.0, help="chunkLength, seconds")
    parser.add_argument("--naive-tenants", type=int, default=None,
                        help="default: all; 0 skips the naive way")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="best of N for every timing")
    parser.add_argument("--prom-cores", type=int, default=1, help="GOMAXPROCS of Prometheus")
    parser.add_argument("--cache-dir", type=Path, default=_cache_root())
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["plain", "transfer-gz", "naive", "ours-4", "ours-kept"],
                        help="methods not to run (each takes minutes at 5,000)")  # fmt: skip
    args = parser.parse_args()

    step = args.step
    blocks, meta = prepare_tsdb(args.tenants, args.days, step, args.cache_dir)
    end = float(meta["end"])
    start = end - args.days * 86400
    workdir = Path(tempfile.mkdtemp(prefix="mlo-bench-"))
    server = serve_copy(blocks, workdir, args.prom_cores)
    print(f"prometheus (GOMAXPROCS={args.prom_cores}) at {server.url}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
    best: dict[str, float] = {}
    rounds: list[dict[str, float]] = []
    cpu_rounds: list[dict[str, float]] = []  # Prometheus' CPU seconds per method and round

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, math.inf), seconds)

    try:
        # A timeout no chunk reaches: a retried request would measure the retry, not the
        # collection (30 s, the default, is reached on a busy 2-core machine at 5,000).
        prom = PrometheusSettings(url=server.url, step=step, rate_interval=2 * step,
                                  chunk_length=args.chunk, timeout=600)  # fmt: skip
        sequential = prom.model_copy(update={"max_concurrency": 1})
        fixed = prom.model_copy(update={"adaptive_concurrency": False})
        levels: list[str] = []
        kept_levels: list[str] = []
        catalogue = load_catalogue()
        specs = [catalogue.limits[name] for name in LIMITS]
        ranges, instants = PrometheusSource(prom).planned_requests(specs, start=start, end=end)
        jobs: list[Job] = [*ranges, *instants]

        # Untimed warm-up: Prometheus' first pass over the blocks pages them in; `kept`
        # learns its level here.
        kept = PrometheusSource(prom)
        kept.collect(specs, start=start, end=end)
        before = _queries(server)
        time_ours(prom, specs, start, end, args.tenants)  # counts the requests, untimed
        ours_q = _queries(server) - before
        # Rounds of eval, ours-1, ours and transfer back to back: on a shared machine the
        # load drifts over minutes, so each round's ratios compare neighbours in time.
        for _ in range(args.repeat):
            this: dict[str, float] = {}
            cpu: dict[str, float] = {}

            def timed(name: str, run: Callable[[], float]) -> None:
                before_cpu = prom_cpu_seconds(server)
                this[name] = run()  # noqa: B023 (called at once)
                cpu[name] = prom_cpu_seconds(server) - before_cpu  # noqa: B023

            timed("eval", lambda: time_eval(server.url, jobs))
            timed("ours-1", lambda: time_ours(sequential, specs, start, end, args.tenants))
            timed("ours", lambda: time_ours(prom, specs, start, end, args.tenants,
                                            levels=levels))  # fmt: skip
            if "ours-kept" not in args.skip:
                timed("ours-kept", lambda: time_ours(prom, specs, start, end, args.tenants,
                                                     levels=kept_levels, source=kept))  # fmt: skip
            if "ours-4" not in args.skip:
                timed("ours-4", lambda: time_ours(fixed, specs, start, end, args.tenants))
            timed("transfer", lambda: time_transfer(server.url, jobs, "identity"))
            cpu_rounds.append(cpu)
            for name, seconds in this.items():
                keep(name, seconds)
            rounds.append(this)
            if "transfer-gz" not in args.skip:
                keep("transfer-gz", time_transfer(server.url, jobs, "gzip"))
            if "plain" not in args.skip:
                keep("plain", time_plain(server.url, jobs, prom.max_concurrency))
        load = os.getloadavg()[0]
        naive_tenants = list(meta["tenants"])[: args.naive_tenants]
        if "naive" not in args.skip and args.naive_tenants != 0:
            keep("naive", time_naive(server.url, naive_tenants, specs, (start, end, step)))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    points = int(args.days * 86400 / step) + 1
    signals = len({job[0] for job in ranges})
    print(f"{args.tenants} tenants x {args.days:g} d; limits {', '.join(LIMITS)}: {signals} "
          f"range queries x {len(ranges) // signals} chunks of "
          f"{format_duration(args.chunk)}, {points} points per series at "
          f"{format_duration(step)}, + {len(instants)} instant queries; best of {args.repeat}; "
          f"load average {load:.1f}")  # fmt: skip
    print(f"{'method':<11} {'queries':>8} {'seconds':>8}")
    rows = [
        ("ours", ours_q, "default: adaptive, up to 4 requests in flight"),
        ("ours-kept", ours_q, "default, collecting again: from the level learned"),
        ("ours-1", ours_q, "one request at a time"),
        ("ours-4", ours_q, "4 requests in flight throughout"),
        ("eval", len(jobs), "Prometheus' execTotalTime, summed"),
        ("transfer", len(jobs), "eval + JSON encoding + HTTP: bytes received, nothing decoded"),
        ("transfer-gz", len(jobs), "the same, gzip-compressed (httpx's default)"),
        ("plain", len(jobs), "httpx + json.loads (gzip), 4 in flight"),
    ]
    if ours_q != len(jobs) + 1:
        print(f"warning: ours sent {ours_q:.0f} requests, not {len(jobs) + 1}: retries?")
    for name, count, note in rows:
        if name not in best:
            continue
        print(f"{name:<11} {count:>8.0f} {best[name]:>8.2f}   ({note})")
    ratios = (f"ours-1 / Prometheus-eval = {best['ours-1'] / best['eval']:.2f}   "
              f"ours / Prometheus-eval = {best['ours'] / best['eval']:.2f}   "
              f"transfer / eval = {best['transfer'] / best['eval']:.2f}   "
              f"ours / plain = {best['ours'] / best.get('plain', math.nan):.2f}")  # fmt: skip
    if "naive" in best:
        scale = args.tenants / len(naive_tenants)
        naive_q = len(naive_tenants) * 4 * scale
        note = "" if scale == 1 else f"   (measured on {len(naive_tenants)} tenants, x{scale:g})"
        print(f"{'naive':<11} {naive_q:>8.0f} {best['naive'] * scale:>8.2f}{note}")
        ratios += f"   naive / ours = {best['naive'] * scale / best['ours']:.1f}x"
    print(ratios)
    print(f"ours: requests in flight per round: {', '.join(levels)}")
    if kept_levels:
        print(f"ours-kept: requests in flight per round: {', '.join(kept_levels)}")
    for name in ("eval", "ours-1", "ours", "ours-kept", "ours-4", "transfer"):
        each = [r[name] for r in cpu_rounds if name in r]
        if each:
            print(f"Prometheus CPU s during {name}: {', '.join(f'{x:.1f}' for x in each)}; "
                  f"median {statistics.median(each):.1f}")  # fmt: skip
    for name in ("ours-1", "ours", "ours-kept", "ours-4", "transfer"):
        each = [r[name] / r["eval"] for r in rounds if name in r]
        if each:
            print(f"{name} / eval per round: {', '.join(f'{x:.2f}' for x in each)}; "
                  f"median {statistics.median(each):.2f}")  # fmt: skip

    each = [r["ours-kept"] / r["ours"] for r in rounds if "ours-kept" in r]
    if each:
        print(f"ours-kept / ours per round: {', '.join(f'{x:.2f}' for x in each)}; "
              f"median {statistics.median(each):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
