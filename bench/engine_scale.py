"""Engine scale benchmark: tenants x 10 limits x 2,016 points (7 days at 5 minutes).

For each size, a child process runs the engine once on one core over a streaming source: each
limit's (tenants x time) float32 arrays are generated when the engine asks for them and freed
when it moves on (`engine.usage.LazyArrays`), as `PrometheusSource` hands them over. It reports
the engine's wall time (generation excluded), peak memory (max RSS of the whole process) and
the floor: the bytes of the input the engine must hold at once (the largest limit's usage and
discards in float32) and of the whole input. The baseline, run in the same command on the same
source, is the naive way: a Python loop per tenant and limit with numpy's nanpercentile (what a
per-object recommender does); its ratio to ours is printed.

The engine's compiled point passes (engine/_*_pass.c) are used when they were built;
`--numpy-passes` runs the numpy paths they replace instead (the same results), to show their
share.

    .venv/bin/python bench/engine_scale.py                        # 1k, 10k, 100k, 3 runs each
    .venv/bin/python bench/engine_scale.py --sizes 300 --naive-max 300   # seconds (CI smoke)
    .venv/bin/python bench/engine_scale.py --sizes 10000 --numpy-passes
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported lazily at run time: the parent process only prints
    from mimir_limit_optimizer.catalogue import Catalogue
    from mimir_limit_optimizer.engine.usage import Observation

STEP = 300.0
POINTS = 2016
LIMITS = 10
NOW = 1_800_000_000.0
DISCARD_LIMITS = 2  # the first two limits have a discard signal, as ingestion and series do


class _Stream:
    """Generates each limit's arrays on demand, deterministically (seeded per limit), and
    counts the seconds spent generating so they can be taken out of the engine's time."""

    def __init__(self, tenants: int, names: list[str]) -> None:
        rng = np.random.default_rng(7)
        self.names = names
        self.tenants = tenants
        self.level = rng.lognormal(8, 2, size=(tenants, 1)).astype(np.float32)
        ts = NOW - STEP * np.arange(POINTS)[::-1]
        self.timestamps = ts
        self.daily = (1 + 0.3 * np.sin(ts / 86400 * 2 * np.pi))[None, :].astype(np.float32)
        self.seconds = 0.0  # wall
        self.cpu = 0.0  # process CPU seconds

    def usage(self, name: str) -> np.ndarray:
        start, cpu = time.perf_counter(), time.process_time()
        k = self.names.index(name)
        rng = np.random.default_rng(100 + k)
        noise = rng.standard_normal((self.tenants, POINTS), dtype=np.float32)
        noise *= np.float32(0.05)
        noise += np.float32(1)
        noise *= self.level * np.float32(1 + 0.1 * k)
        noise *= self.daily
        noise[:: max(1, self.tenants // 50), : POINTS // 2] = np.nan  # half history
        self.seconds += time.perf_counter() - start
        self.cpu += time.process_time() - cpu
        return noise

    def discards(self, name: str) -> np.ndarray:
        usage = self.usage(name)
        start, cpu = time.perf_counter(), time.process_time()
        usage *= np.float32(0.01)
        usage -= self.level * np.float32(0.008)
        np.maximum(usage, np.float32(0), out=usage)
        self.seconds += time.perf_counter() - start
        self.cpu += time.process_time() - cpu
        return usage


def _setup(tenants: int) -> tuple[Catalogue, Observation, list[str], _Stream]:
    from mimir_limit_optimizer.catalogue import SignalKind, load_catalogue
    from mimir_limit_optimizer.engine.usage import LazyArrays, Observation

    catalogue = load_catalogue()
    usage_specs = [s for s in catalogue.limits.values() if s.signal is SignalKind.USAGE]
    specs = []
    for k in range(LIMITS):  # reuse usage-driven specs under new names if fewer than 10
        base = usage_specs[k % len(usage_specs)]
        specs.append(
            base if k < len(usage_specs) else dataclasses.replace(base, name=f"{base.name}_{k}")
        )
    catalogue = dataclasses.replace(
        catalogue, limits={**catalogue.limits, **{s.name: s for s in specs}}
    )
    names = [s.name for s in specs]
    stream = _Stream(tenants, names)
    shape = (tenants, POINTS)
    observation = Observation(
        tenants=tuple(f"tenant-{i}" for i in range(tenants)),
        timestamps=stream.timestamps.astype(np.float64),
        step=STEP,
        usage=LazyArrays(names, stream.usage, shape=shape),
        discards=LazyArrays(names[:DISCARD_LIMITS], stream.discards, shape=shape),
        current={s.name: (stream.level[:, 0] * 1.3).astype(np.float64) for s in specs},
    )
    return catalogue, observation, names, stream


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(tenants: int, naive: bool, numpy_passes: bool) -> dict[str, float]:
    from mimir_limit_optimizer.config.models import Config
    from mimir_limit_optimizer.engine import compiled
    from mimir_limit_optimizer.engine.recommend import recommend

    if numpy_passes:  # as if the package had been installed without a C compiler
        setattr(compiled, "point_passes", lambda: None)  # noqa: B010 (no typed assignment)

    catalogue, observation, names, stream = _setup(tenants)
    config = Config()
    before = _rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    if naive:
        for name in names:
            usage = observation.usage[name]
            current = observation.current[name]
            out = np.empty(tenants)
            for i in range(tenants):  # the per-tenant way
                p = np.nanpercentile(usage[i], 95) if np.isfinite(usage[i]).any() else np.nan
                value = p * 1.2
                if abs(value - current[i]) <= 0.05 * current[i]:
                    value = current[i]
                out[i] = value
            del usage
    else:
        recs = recommend(observation, config, catalogue, now=NOW, limits=names)
        assert len(recs.tenants) == tenants
    seconds = time.perf_counter() - start - stream.seconds
    cpu_seconds = time.process_time() - cpu - stream.cpu
    peak = _rss_mb()
    # The floor of the method, in the same process and under the same load: one float32 sort
    # of a limit's (tenants x time) array per limit (what percentiles cannot do without), in
    # a buffer as the engine sorts; the best of 3 (the least disturbed by other load).
    usage = observation.usage[names[0]]
    buffer = np.empty_like(usage)
    sorts = []
    for _ in range(3):
        sort_cpu = time.process_time()
        np.copyto(buffer, usage)
        buffer.sort(axis=1)
        sorts.append(time.process_time() - sort_cpu)
    sort_floor = min(sorts) * len(names)
    del usage, buffer
    one = tenants * POINTS * 4 / 2**20  # one float32 (N, T) array, MB
    return {
        "tenants": tenants,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "generate_seconds": stream.seconds,
        "peak_rss_mb": peak,
        "sort_floor_cpu_seconds": sort_floor,
        "start_rss_mb": before,
        "held_input_mb": one * (2 if DISCARD_LIMITS else 1),
        "total_input_mb": one * (LIMITS + DISCARD_LIMITS),
    }


def run_child(tenants: int, naive: bool, numpy_passes: bool = False) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    args = [sys.executable, __file__, "--child", str(tenants)] + (["--naive"] if naive else [])
    args += ["--numpy-passes"] if numpy_passes else []
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument(
        "--naive-max", type=int, default=10000, help="largest size for the naive baseline"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of ours per size (each in a new process); the row is the median run by CPU "
        "time and `cpu range` the fastest and slowest (a shared VM swings 15-20%%)",
    )
    parser.add_argument(
        "--numpy-passes",
        action="store_true",
        help="the numpy point passes instead of the compiled ones (as without a C compiler)",
    )
    parser.add_argument("--child", type=int)
    parser.add_argument("--naive", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.naive, args.numpy_passes)))
        return
    print(
        f"engine: tenants x {LIMITS} limits x {POINTS} points, float32 streamed per limit, "
        "one core (child process per run)"
    )
    from mimir_limit_optimizer.engine.compiled import which_passes

    built = which_passes()
    print(
        "point passes: "
        + (
            "numpy (--numpy-passes)"
            if args.numpy_passes
            else "numpy (the compiled passes were not built: no C compiler at install)"
            if built == "numpy"
            else f"{built} (engine/_*_pass.c)"
        )
    )
    print("cpu s = process CPU time (less sensitive to other load than wall time; ratios use it)")
    print(
        "floor MB = input the engine must hold at once (one limit's usage + discards); "
        "all-input MB = every limit's arrays (never held at once)"
    )
    print(
        "sort s = CPU seconds of one float32 sort of a limit's array, x the limits (the floor "
        "of the method, same process, same load); cpu/sort = ours over it"
    )
    print(
        f"runs: {args.repeat} of ours per size, the median by CPU time shown; "
        "cpu range = fastest-slowest run"
    )
    print(
        f"{'tenants':>8} {'ours s':>8} {'cpu s':>6} {'sort s':>6} {'cpu/sort':>8} "
        f"{'peak MB':>8} {'floor MB':>9} "
        f"{'peak/floor':>10} {'all-input MB':>12} {'naive s':>8} {'naive/ours':>10} "
        f"{'cpu range':>11}"
    )
    for size in args.sizes:
        runs = sorted(
            (
                run_child(size, naive=False, numpy_passes=args.numpy_passes)
                for _ in range(max(1, args.repeat))
            ),
            key=lambda run: run["cpu_seconds"],
        )
        ours = runs[len(runs) // 2]
        spread = f"{runs[0]['cpu_seconds']:.2f}-{runs[-1]['cpu_seconds']:.2f}"
        naive_s = ratio = "-"
        if size <= args.naive_max:
            naive = run_child(size, naive=True)
            naive_s = f"{naive['seconds']:.2f}"
            ratio = f"{naive['cpu_seconds'] / ours['cpu_seconds']:.1f}x"
        print(
            f"{size:>8} {ours['seconds']:>8.2f} {ours['cpu_seconds']:>6.2f} "
            f"{ours['sort_floor_cpu_seconds']:>6.2f} "
            f"{ours['cpu_seconds'] / ours['sort_floor_cpu_seconds']:>8.1f} "
            f"{ours['peak_rss_mb']:>8.0f} "
            f"{ours['held_input_mb']:>9.0f} {ours['peak_rss_mb'] / ours['held_input_mb']:>10.1f} "
            f"{ours['total_input_mb']:>12.0f} {naive_s:>8} {ratio:>10} {spread:>11}",
            flush=True,
        )


if __name__ == "__main__":
    main()
