"""The long-term peak memory's cost per cycle (engine/peak_memory.py, controller/peak_memory.py):
update from a cycle's results, encode, save to a SQLite store, and a restart's load + decode,
at N tenants x 10 limits. Prints milliseconds, the stored bytes, and each step's ratio
against a floor measured in the same run: serializing the same names and arrays with no
compression and no database (orjson + tobytes), the least any stored form costs.

    .venv/bin/python bench/peak_memory_scale.py                  # 10k and 100k tenants
    .venv/bin/python bench/peak_memory_scale.py --sizes 1000     # seconds
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson

from mimir_limit_optimizer.controller.peak_memory import encode, load_memory
from mimir_limit_optimizer.engine.peak_memory import HELD_LEVEL, recall, update
from mimir_limit_optimizer.store import Store

LIMITS = 10
WINDOW = 30 * 86400.0
NOW = 1_800_000_000.0


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - start) * 1000.0


def run(n: int, workdir: Path) -> dict[str, float]:
    tenants = tuple(f"tenant-{i:06d}" for i in range(n))
    rng = np.random.default_rng(n)
    results = {
        f"limit_{k}": SimpleNamespace(extra={HELD_LEVEL: rng.random(n) * 1e5})
        for k in range(LIMITS)
    }
    recs: Any = SimpleNamespace(tenants=tenants, results=results)
    memory = update(None, recs, now=NOW, long_term_window=WINDOW)
    memory, t_update = timed(lambda: update(memory, recs, now=NOW + 300, long_term_window=WINDOW))

    def floor() -> int:
        size = 0
        for m in memory.limits.values():
            size += len(orjson.dumps(list(m.tenants))) + len(m.level.tobytes())
            size += len(m.seen_at.tobytes())
        return size

    raw, t_floor = timed(floor)
    rows, t_encode = timed(lambda: {k: (encode(m), m.known) for k, m in memory.limits.items()})
    store = Store.open(f"sqlite:///{workdir / f'mlo-{n}.db'}")
    try:
        _, t_save = timed(lambda: store.save_peak_memory(rows, at=NOW))
        (loaded, problems), t_load = timed(lambda: load_memory(store))
    finally:
        store.close()
    assert not problems and loaded.entries == n * LIMITS
    _, t_recall = timed(
        lambda: [recall(loaded, k, tenants, now=NOW, long_term_window=WINDOW) for k in results]
    )
    return {
        "update": t_update,
        "encode": t_encode,
        "save": t_save,
        "load": t_load,
        "recall": t_recall,
        "floor": t_floor,
        "raw_mb": raw / 1e6,
        "stored_mb": sum(len(blob) for blob, _ in rows.values()) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    print(f"peak memory, {LIMITS} limits, SQLite; ms (x the serialization floor of the same run)")
    print(f"{'tenants':>8} {'update':>12} {'encode':>12} {'save':>12} {'load':>12} "
          f"{'recall':>12} {'floor':>7} {'raw MB':>7} {'stored MB':>9}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            r = run(n, Path(tmp))
            cells = " ".join(
                f"{r[k]:6.0f} ({r[k] / r['floor']:3.1f}x)"
                for k in ("update", "encode", "save", "load", "recall")
            )
            print(f"{n:>8} {cells} {r['floor']:7.0f} {r['raw_mb']:7.1f} {r['stored_mb']:9.1f}")


if __name__ == "__main__":
    main()
