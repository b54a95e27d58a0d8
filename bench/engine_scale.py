"""Engine scale benchmark: tenants x 10 limits x 2,016 points (7 days at 5 minutes).

For each size, a child process builds the input, runs the engine once on one core, and
reports wall time and peak memory (max RSS, and the part above the input arrays). The
baseline, run in the same command, is the naive way: a Python loop per tenant and limit with
numpy's nanpercentile (what a per-object recommender does); its ratio to ours is printed.

    .venv/bin/python bench/engine_scale.py                 # 1k, 10k, 50k
    .venv/bin/python bench/engine_scale.py --sizes 1000    # seconds-long smoke run (CI)
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

import numpy as np

STEP = 300.0
POINTS = 2016
LIMITS = 10
NOW = 1_800_000_000.0


def _setup(tenants: int):
    from mimir_limit_optimizer.catalogue import SignalKind, load_catalogue
    from mimir_limit_optimizer.engine.usage import Observation

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
    rng = np.random.default_rng(7)
    ts = NOW - STEP * np.arange(POINTS)[::-1]
    level = rng.lognormal(8, 2, size=(tenants, 1))
    daily = 1 + 0.3 * np.sin(ts / 86400 * 2 * np.pi)[None, :]
    usage = level * daily * (1 + 0.05 * rng.standard_normal((tenants, POINTS)))
    usage[:: max(1, tenants // 50), : POINTS // 2] = np.nan  # some tenants with half history
    # Distinct arrays per limit (a real Observation holds one per signal), and discards for
    # the first two limits, as the ingestion and series limits have.
    usages = {s.name: usage * (1 + 0.1 * k) for k, s in enumerate(specs)}
    discards = {s.name: np.maximum(usage * 0.01 - level * 0.008, 0) for s in specs[:2]}
    observation = Observation(
        tenants=tuple(f"tenant-{i}" for i in range(tenants)),
        timestamps=ts,
        step=STEP,
        usage=usages,
        discards=discards,
        current={s.name: (level[:, 0] * 1.3) for s in specs},
    )
    return catalogue, observation, [s.name for s in specs]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(tenants: int, naive: bool) -> dict[str, float]:
    from mimir_limit_optimizer.config.models import Config
    from mimir_limit_optimizer.engine.recommend import recommend

    catalogue, observation, names = _setup(tenants)
    config = Config()
    before = _rss_mb()  # after building the input: "engine MB" is what the engine adds
    start = time.perf_counter()
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
    else:
        recs = recommend(observation, config, catalogue, now=NOW, limits=names)
        assert len(recs.tenants) == tenants
    seconds = time.perf_counter() - start
    peak = _rss_mb()
    return {
        "tenants": tenants,
        "seconds": seconds,
        "peak_rss_mb": peak,
        "above_input_mb": peak - before,
    }


def run_child(tenants: int, naive: bool) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    args = [sys.executable, __file__, "--child", str(tenants)] + (["--naive"] if naive else [])
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument(
        "--naive-max", type=int, default=10000, help="largest size for the naive baseline"
    )
    parser.add_argument("--child", type=int)
    parser.add_argument("--naive", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.naive)))
        return
    print(f"engine: tenants x {LIMITS} limits x {POINTS} points, one core (child process per run)")
    print(
        f"{'tenants':>8} {'ours s':>8} {'peak MB':>8} {'engine MB':>9} "
        f"{'naive s':>8} {'naive/ours':>10}"
    )
    for size in args.sizes:
        ours = run_child(size, naive=False)
        naive_s = ratio = "-"
        if size <= args.naive_max:
            naive = run_child(size, naive=True)
            naive_s = f"{naive['seconds']:.2f}"
            ratio = f"{naive['seconds'] / ours['seconds']:.1f}x"
        print(
            f"{size:>8} {ours['seconds']:>8.2f} {ours['peak_rss_mb']:>8.0f} "
            f"{ours['above_input_mb']:>9.0f} {naive_s:>8} {ratio:>10}"
        )


if __name__ == "__main__":
    main()
