"""CLI start-up benchmark: how long `mlo --help` and `mlo limits` take, against the floor of
starting Python at all (`python -c pass`), measured in the same run.

Target (issue 13 §1): both under 0.3 s on an idle machine. The numbers are wall times of
fresh processes (median and best of N), so a busy machine inflates all of them; the ratio to
the floor and the time above it are the comparable part. It also lists which heavy modules
(numpy, FastAPI, SQLAlchemy, the Kubernetes client, matplotlib, pydantic) each command
imported: none, for these two.

    .venv/bin/python bench/cli_startup.py              # 15 runs each
    .venv/bin/python bench/cli_startup.py --runs 3     # smoke run
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

TARGET_SECONDS = 0.3
HEAVY = ("numpy", "fastapi", "sqlalchemy", "kubernetes", "matplotlib", "pydantic")

# What each case runs in a fresh interpreter. The CLI cases call the real entry point, as the
# `mlo` script does, with stdout captured.
CASES = {
    "python -c pass (floor)": ["-c", "pass"],
    "mlo --help": ["-m", "mimir_limit_optimizer.cli", "--help"],
    "mlo limits": ["-m", "mimir_limit_optimizer.cli", "limits"],
}

_PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['mlo', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('mimir_limit_optimizer.cli', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "sys.stderr.write('HEAVY ' + ','.join(m for m in {heavy!r} if m in sys.modules) + '\\n')\n"
)


def _time(args: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + system of the child) per run. CPU time is what
    a busy, shared machine distorts least; wall time is what a person waits."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], capture_output=True, check=True, timeout=120)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return walls, cpus


def _heavy_imports(cli_args: list[str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY), *cli_args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("HEAVY"))
    return line.removeprefix("HEAVY").strip() or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="processes per case (default 15)")
    args = parser.parse_args()
    runs = max(1, args.runs)

    _time(CASES["mlo --help"], 1)  # warm the file cache and the bytecode
    results = {name: _time(argv, runs) for name, argv in CASES.items()}
    floor = statistics.median(results["python -c pass (floor)"][0])
    os_load = os.getloadavg()[0]

    print(f"CLI start-up, {runs} fresh processes per case (seconds; load average {os_load:.1f})")
    header = (
        f"{'case':<26} {'median':>8} {'best':>8} {'x floor':>8} {'above floor':>12} "
        f"{'cpu':>7}  heavy"
    )
    print(header)
    print("-" * len(header))
    for name, (walls, cpus) in results.items():
        median = statistics.median(walls)
        heavy = "" if name.startswith("python") else _heavy_imports(CASES[name][2:])
        print(
            f"{name:<26} {median:8.3f} {min(walls):8.3f} {median / floor:8.1f} "
            f"{median - floor:12.3f} {statistics.median(cpus):7.3f}  {heavy}"
        )
    for name in ("mlo --help", "mlo limits"):
        best = min(results[name][0])
        cpu = statistics.median(results[name][1])
        verdict = "within" if best < TARGET_SECONDS else "ABOVE"
        print(
            f"{name}: best {best:.3f} s wall ({cpu:.3f} s CPU), {verdict} the "
            f"{TARGET_SECONDS} s target"
        )


if __name__ == "__main__":
    main()
