"""What requests in flight cost a one-core Prometheus: the same collection at 1, 2 and 4 in
flight, measured by Prometheus' own CPU seconds (/proc/<pid>/stat, user + system) and its
Go garbage collector (GODEBUG=gctrace=1), which the load of other processes barely moves,
unlike wall-clock time.

For each level, per round: `transfer-N` (the planned requests, N in flight, bytes received
and nothing decoded) and `ours-N` (PrometheusSource.collect with maxConcurrency N, fixed);
then `ours` (the default settings: adaptive, up to 4).
Uses the blocks cached by bench/collect_scale.py (built on first use).

    .venv/bin/python bench/collect_concurrency.py --tenants 5000 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.promserver import PromServer, serve_tsdb

from collect_scale import LIMITS, Job, prepare_tsdb
from collect_scale import _cache_root as cache_root
from mimir_limit_optimizer.catalogue import LimitSpec, load_catalogue
from mimir_limit_optimizer.config.models import PrometheusSettings
from mimir_limit_optimizer.sources.prometheus import PrometheusSource

_TICK = os.sysconf("SC_CLK_TCK")
# gctrace: "gc N @T s P%: a+b+c ms clock, d+e/f/g+h ms cpu, ..."
_GC = re.compile(
    r"gc \d+ @\S+ \S+: \S+ ms clock, ([\d.]+)\+([\d.]+)/([\d.]+)/([\d.]+)\+([\d.]+) ms cpu"
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def gc_totals(server: PromServer) -> tuple[int, float]:
    """GC cycles so far and their CPU seconds (all phases), from Prometheus' log."""
    cycles, cpu_ms = 0, 0.0
    for line in server.log().splitlines():
        if match := _GC.match(line):
            cycles += 1
            cpu_ms += sum(float(x) for x in match.groups())
    return cycles, cpu_ms / 1000


async def transfer(url: str, jobs: list[Job], in_flight: int) -> None:
    slots = asyncio.Semaphore(in_flight)
    headers = {"Accept-Encoding": "identity"}
    async with httpx.AsyncClient(base_url=url, timeout=600, headers=headers) as client:

        async def one(job: Job) -> None:
            async with slots:
                if len(job) == 4:
                    query, lo, hi, step = job
                    form = {"query": query, "start": lo, "end": hi, "step": step}
                    response = await client.post("/api/v1/query_range", data=form)
                else:
                    query, at = job
                    response = await client.post("/api/v1/query", data={"query": query, "time": at})
                response.raise_for_status()

        await asyncio.gather(*(one(job) for job in jobs))


def run_transfer(url: str, jobs: list[Job], in_flight: int) -> None:
    asyncio.run(transfer(url, jobs, in_flight))


def run_ours(prom: PrometheusSettings, specs: list[LimitSpec], window: tuple[float, float]) -> None:
    PrometheusSource(prom).collect(specs, start=window[0], end=window[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--levels", type=int, nargs="*", default=[1, 2, 4])
    args = parser.parse_args()

    step = 3600.0
    blocks, meta = prepare_tsdb(args.tenants, args.days, step, cache_root())
    end = float(meta["end"])
    start = end - args.days * 86400
    workdir = Path(tempfile.mkdtemp(prefix="mlo-bench-"))
    data_dir = workdir / "tsdb"
    data_dir.mkdir(parents=True)
    for block in blocks.iterdir():
        if (block / "meta.json").exists():
            shutil.copytree(block, data_dir / block.name, copy_function=os.link)
    server = serve_tsdb(data_dir, workdir, env={"GOMAXPROCS": "1", "GODEBUG": "gctrace=1"})
    pid = server.process.pid
    try:
        prom = PrometheusSettings(url=server.url, step=step, rate_interval=2 * step,
                                  chunk_length=86400.0, timeout=600,
                                  adaptive_concurrency=False)  # fmt: skip
        catalogue = load_catalogue()
        specs = [catalogue.limits[name] for name in LIMITS]
        ranges, instants = PrometheusSource(prom).planned_requests(specs, start=start, end=end)
        jobs: list[Job] = [*ranges, *instants]
        PrometheusSource(prom).collect(specs, start=start, end=end)  # warm-up

        def measure(name: str, run: Callable[[], object]) -> None:
            gc0, prom0, ours0 = gc_totals(server), cpu_seconds(pid), time.process_time()
            t0 = time.perf_counter()
            run()
            wall = time.perf_counter() - t0
            gc1 = gc_totals(server)
            used = cpu_seconds(pid) - prom0
            print(f"{name:<11} wall {wall:6.2f} s   Prometheus CPU {used:6.2f} s"
                  f"   GC {gc1[0] - gc0[0]:4d} cycles {gc1[1] - gc0[1]:5.2f} s CPU"
                  f"   ours CPU {time.process_time() - ours0:5.2f} s"
                  f"   load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip

        print(f"{args.tenants} tenants x {args.days:g} d, {len(jobs)} requests, Prometheus "
              "GOMAXPROCS=1")  # fmt: skip
        for _ in range(args.rounds):
            for level in args.levels:
                fixed = prom.model_copy(update={"max_concurrency": level})
                measure(f"transfer-{level}", partial(run_transfer, server.url, jobs, level))
                measure(f"ours-{level}", partial(run_ours, fixed, specs, (start, end)))
            default = prom.model_copy(update={"adaptive_concurrency": True})
            measure("ours", partial(run_ours, default, specs, (start, end)))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
