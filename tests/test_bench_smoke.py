"""The benchmarks still run: seconds-long versions of bench/quality.py, bench/engine_scale.py,
bench/service_scale.py and bench/collect_scale.py (against a real Prometheus) print the tables
docs/benchmarks.md describes. Only the shape of their output is checked, never a timing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"[0-9][0-9.,]*"


def bench(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quality_smoke_prints_the_tables_and_writes_json(tmp_path: Path) -> None:
    document = tmp_path / "quality.json"
    out = bench("quality.py", "--smoke", "--json", str(document))
    assert "Backtest per scenario" in out and "Totals over 14 scenario(s)" in out
    for strategy in ("ours", "p95x1.2", "krr", "mimir-defaults", "keep-current"):
        assert re.search(rf"│ +│ {re.escape(strategy)} +│ +{NUMBER} │", out), strategy
    assert "ours Pareto-dominates p95x1.2" in out and "ours Pareto-dominates krr" in out
    assert re.search(rf"14 scenarios, {NUMBER} tenants, {NUMBER} cycles per strategy, 5 ", out)
    data = json.loads(document.read_text())
    assert len(data["results"]) == 70 and len(data["totals"]) == 5


def test_engine_scale_smoke_prints_one_row_per_size() -> None:
    out = bench("engine_scale.py", "--sizes", "300", "--naive-max", "300", "--repeat", "3")
    lines = out.strip().splitlines()
    assert lines[0].startswith("engine: tenants x 10 limits x 2016 points, float32 streamed")
    assert lines[1] == "point passes: compiled (engine/_*_pass.c)"
    header = next(line for line in lines if line.split()[:1] == ["tenants"])
    assert header.split() == ["tenants", "ours", "s", "cpu", "s", "sort", "s", "cpu/sort",
                              "peak", "MB", "floor", "MB", "peak/floor", "all-input", "MB",
                              "naive", "s", "naive/ours", "cpu", "range"]  # fmt: skip
    row = lines[lines.index(header) + 1].split()
    assert row[0] == "300" and len(row) == 12
    assert all(re.fullmatch(NUMBER, cell) for cell in row[:10]) and row[10].endswith("x")
    # The row is the median of the three runs: its CPU time lies within their range.
    fastest, slowest = (float(x) for x in row[11].split("-"))
    assert fastest <= float(row[2]) <= slowest


def test_service_scale_smoke_prints_every_phase() -> None:
    out = bench("service_scale.py", "--sizes", "100")
    lines = out.strip().splitlines()
    header = lines[1].split()
    assert header[:2] == ["tenants", "cycle"] and "outside" in header and "series" in header
    row = lines[2].split()
    # "cycle s", "peak MB" and "audit ev" are two header words each.
    assert row[0] == "100" and len(row) == len(header) - 3
    assert all(re.fullmatch(NUMBER, cell) for cell in row)


@pytest.mark.prometheus
def test_collect_scale_smoke_against_a_real_prometheus() -> None:
    from tests.conftest import require_binary

    require_binary("prometheus", "apt-get install -y prometheus")
    require_binary("promtool", "apt-get install -y prometheus")
    out = bench("collect_scale.py", "--tenants", "20", "--days", "0.25", "--naive-tenants", "5")
    assert "backfill: 20 tenants x 0.25 days" in out
    for method in ("ours", "ours-1", "eval", "plain", "naive"):
        assert re.search(rf"^{method} +{NUMBER} +{NUMBER}", out, re.M), method
    assert re.search(rf"ours-1 / Prometheus-eval = {NUMBER} ", out)
    assert re.search(rf"ours / plain = {NUMBER} +naive / ours = {NUMBER}x", out)


@pytest.mark.prometheus
def test_scale_entry_point_runs_both_benchmarks() -> None:
    from tests.conftest import require_binary

    require_binary("prometheus", "apt-get install -y prometheus")
    out = bench("scale.py", "--smoke")
    assert "$ engine_scale.py" in out and "$ collect_scale.py" in out
    assert re.search(rf"ours / plain = {NUMBER} +naive / ours = {NUMBER}x", out)


def test_cli_startup_bench_prints_times_against_the_floor() -> None:
    out = bench("cli_startup.py", "--runs", "1")
    for case in ("python -c pass (floor)", "mlo --help", "mlo limits"):
        assert re.search(rf"{re.escape(case)} +{NUMBER} +{NUMBER} +{NUMBER}", out), case
    # What each command imported of the heavy libraries: none for --help.
    assert re.search(r"mlo --help .* none\n", out)
    assert "the 0.3 s target" in out
