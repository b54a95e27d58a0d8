"""Scale benchmarks, one entry point: the engine alone, then collection from a real
Prometheus (ours, a plain client with the same requests, and the naive per-tenant way).

    .venv/bin/python bench/scale.py                       # engine 1k/10k/50k; collection 1k x 7d
    .venv/bin/python bench/scale.py --collect-tenants 1000 5000
    .venv/bin/python bench/scale.py --smoke               # seconds (CI)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> None:
    print(f"$ {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine-sizes", nargs="+", default=["1000", "10000", "50000"])
    parser.add_argument("--collect-tenants", nargs="+", default=["1000"])
    parser.add_argument("--days", default="7")
    parser.add_argument("--step", default="3600", help="seconds; see docs/benchmarks.md")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        run("engine_scale.py", "--sizes", "200", "--naive-max", "200")
        run("collect_scale.py", "--tenants", "20", "--days", "0.25", "--step", "600")
        return
    run("engine_scale.py", "--sizes", *args.engine_sizes)
    for tenants in args.collect_tenants:
        run("collect_scale.py", "--tenants", tenants, "--days", args.days, "--step", args.step,
            "--naive-tenants", str(min(int(tenants), 200)))  # fmt: skip


if __name__ == "__main__":
    main()
