"""Collection benchmark against a real Prometheus: N tenants x D days.

Builds a synthetic cluster, backfills a real Prometheus on 127.0.0.1 with it (promtool),
then, in the same run:
  ours   PrometheusSource.collect for the given limits: one range query per signal for all
         tenants, chunked, 4 concurrent requests;
  ours-1 the same with one request at a time;
  eval   Prometheus' own evaluation time for the same range requests (`stats=all`,
         execTotalTime summed): the physical floor. ours-1 / eval is our overhead per query
         (HTTP, Prometheus' JSON encoding, decoding, assembly);
  plain  the same HTTP requests (same PromQL, same ranges, same 4 in flight) with a plain
         httpx client and json.loads (what collection cost before the fast decoder);
  naive  one query per tenant per signal over the whole range (what per-object tools do).
Prints query counts, seconds and ratios. Needs Debian's `prometheus` package.

    .venv/bin/python bench/collect_scale.py --tenants 1000 --days 7
    .venv/bin/python bench/collect_scale.py --tenants 50 --days 1 --naive-tenants 50   # smoke
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.promserver import PromServer, start_prometheus

from mimir_limit_optimizer.catalogue import load_catalogue
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


def _queries(server: PromServer) -> float:
    return server.requests_total("/api/v1/query_range") + server.requests_total("/api/v1/query")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--step", type=float, default=600.0, help="query step, seconds")
    parser.add_argument("--naive-tenants", type=int, default=None, help="default: all")
    args = parser.parse_args()

    step = args.step
    end = float(int(time.time() // step * step) - step)
    start = end - args.days * 86400
    settings = SyntheticSettings(
        tenant_count=args.tenants, seed=5, history=args.days * 86400, step=step
    )
    cluster = generate_cluster(settings, end=end)
    workdir = Path(tempfile.mkdtemp(prefix="mlo-bench-"))
    data = workdir / "data.om"
    t0 = time.perf_counter()
    with data.open("w") as raw:
        write_openmetrics(cluster, FamilyFilter(raw), scrape_interval=step / 2)
    print(f"backfill: {args.tenants} tenants x {args.days:g} days, scrape {step / 2:g}s, "
          f"{data.stat().st_size / 1e6:.0f} MB OpenMetrics")  # fmt: skip
    server = start_prometheus(data.read_text(), workdir / "prom", backfill_timeout=3600)
    print(f"prometheus ready after {time.perf_counter() - t0:.0f}s at {server.url}")
    try:
        prom = PrometheusSettings(
            url=server.url, step=step, rate_interval=2 * step, chunk_length=86400.0
        )
        catalogue = load_catalogue()
        specs = [catalogue.limits[name] for name in LIMITS]

        # Untimed warm-up: Prometheus' first pass over the blocks pages them in.
        PrometheusSource(prom).collect(specs, start=start, end=end)
        before = _queries(server)
        t0 = time.perf_counter()
        obs = PrometheusSource(prom).collect(specs, start=start, end=end)
        ours_s = time.perf_counter() - t0
        ours_q = _queries(server) - before
        assert len(obs.tenants) == args.tenants, len(obs.tenants)
        del obs
        sequential = prom.model_copy(update={"max_concurrency": 1})
        t0 = time.perf_counter()
        PrometheusSource(sequential).collect(specs, start=start, end=end)
        ours1_s = time.perf_counter() - t0

        # The same range requests, sequential, plain client.
        render = TemplateRenderer({}, rate_interval=2 * step, replication_factor=3)
        queries = list(
            dict.fromkeys(
                render.render(q) for s in specs for q in (s.usage_query, s.discard_query) if q
            )
        )
        chunk = 86400.0
        ranges = []
        t = start
        while t <= end:
            ranges.append((t, min(end, t + chunk - step)))
            t += chunk
        t0 = time.perf_counter()
        # The same concurrency as ours (4 requests in flight): the ratio is our overhead.
        with httpx.Client(base_url=server.url, timeout=120) as client:

            def fetch(job: tuple[str, float, float]) -> None:
                query, lo, hi = job
                body = client.post(
                    "/api/v1/query_range",
                    data={"query": query, "start": lo, "end": hi, "step": step},
                ).content
                json.loads(body)

            jobs = [(q, lo, hi) for q in queries for lo, hi in ranges]
            with ThreadPoolExecutor(max_workers=prom.max_concurrency) as pool:
                list(pool.map(fetch, jobs))
        plain_s = time.perf_counter() - t0
        plain_q = len(queries) * len(ranges)

        # Prometheus' own evaluation time of the same range requests (the floor).
        eval_s = 0.0
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for query, lo, hi in jobs:
                stats = client.post(
                    "/api/v1/query_range",
                    data={"query": query, "start": lo, "end": hi, "step": step, "stats": "all"},
                ).json()["data"]["stats"]["timings"]
                eval_s += float(stats["execTotalTime"])

        # Naive: one query per tenant per signal over the whole range.
        naive_tenants = cluster.tenants[: args.naive_tenants or args.tenants]
        t0 = time.perf_counter()
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for tenant in naive_tenants:
                per_tenant = TemplateRenderer({"user": tenant}, rate_interval=2 * step,
                                              replication_factor=3)  # fmt: skip
                for spec in specs:
                    for template in (spec.usage_query, spec.discard_query):
                        if template:
                            json.loads(
                                client.post(
                                    "/api/v1/query_range",
                                    data={
                                        "query": per_tenant.render(template),
                                        "start": start,
                                        "end": end,
                                        "step": step,
                                    },
                                ).content
                            )
        naive_s = time.perf_counter() - t0
        naive_q = len(naive_tenants) * len(queries)
        scale = args.tenants / len(naive_tenants)
    finally:
        server.stop()

    points = int(args.days * 86400 / step) + 1
    print(f"signals: {', '.join(LIMITS)}; {points} points per series, "
          f"step {format_duration(step)}, chunks of 1d")  # fmt: skip
    print(f"{'method':<8} {'queries':>8} {'seconds':>8}")
    print(f"{'ours':<8} {ours_q:>8.0f} {ours_s:>8.2f}")
    print(f"{'ours-1':<8} {ours_q:>8.0f} {ours1_s:>8.2f}   (one request at a time)")
    print(f"{'eval':<8} {plain_q:>8.0f} {eval_s:>8.2f}   (Prometheus' execTotalTime, summed)")
    print(f"{'plain':<8} {plain_q:>8.0f} {plain_s:>8.2f}")
    note = "" if scale == 1 else f"   (measured on {len(naive_tenants)} tenants, x{scale:g})"
    print(f"{'naive':<8} {naive_q * scale:>8.0f} {naive_s * scale:>8.2f}{note}")
    print(
        f"ours-1 / Prometheus-eval = {ours1_s / eval_s:.2f}   "
        f"ours / Prometheus-eval = {ours_s / eval_s:.2f}   ours / plain = {ours_s / plain_s:.2f}   "
        f"naive / ours = {naive_s * scale / ours_s:.1f}x"
    )


if __name__ == "__main__":
    main()
