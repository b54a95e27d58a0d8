"""`mlo backtest --sweep`: each strategy's headroom knob swept, the curves compared at equal
median headroom (interpolated), ours' dominance asserted along the curves over the headroom
range the baselines span; `--limits` checked; units and definitions in the output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mimir_limit_optimizer.backtest.generate import build_case
from mimir_limit_optimizer.backtest.scenario import load_scenarios
from mimir_limit_optimizer.backtest.score import Score
from mimir_limit_optimizer.backtest.sweep import Curve, compare, run_sweep, sweep_settings
from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.cli.main import app
from mimir_limit_optimizer.config.models import Config
from tests.test_backtest import SMALL, SUITE

CATALOGUE = load_catalogue()
RUNNER = CliRunner()


def _curve(name: str, points: list[tuple[float, float, float, int]]) -> Curve:
    """points: (knob, median headroom, throttled minutes, churn); headroom pooled from one
    pair so that its median is exactly the given value."""
    return Curve(
        strategy=name,
        description=name,
        knob="multiplier",
        values=tuple(p[0] for p in points),
        totals=tuple(
            Score(name, "total", 1, minutes, 0.0, 0.0, churn, 10, (headroom,))
            for _, headroom, minutes, churn in points
        ),
    )


def test_compare_interpolates_at_equal_headroom() -> None:
    ours = _curve("ours", [(0, 1.0, 100.0, 10), (20, 1.2, 20.0, 10), (40, 1.4, 10.0, 10)])
    # The baseline spans 0.9..1.5; at 1.1 it throttles 300, ours (interpolated) 60: 5x.
    base = _curve("b", [(1.0, 0.9, 900.0, 30), (1.2, 1.1, 300.0, 20), (1.4, 1.5, 100.0, 20)])
    c = compare(ours, base)
    # From the lowest headroom both reach (1.0) to the baseline's highest (1.5); above 1.4,
    # ours is read at its last point (10 minutes at less headroom).
    assert (c.low, c.high) == (1.0, 1.5)
    assert c.coverage == pytest.approx(0.5 / 0.6)
    assert c.dominates
    assert c.ratio_min == pytest.approx(5.0)  # at 1.1: 300 against ours (interpolated) 60
    assert c.churn_ratio == pytest.approx(0.5)  # 10 changes against 20 at 1.1 and above
    assert "ours throttles" in c.sentence() and "less than b" in c.sentence()


def test_compare_sees_a_curve_that_loses_somewhere() -> None:
    ours = _curve("ours", [(0, 1.0, 100.0, 5), (60, 1.6, 1.0, 50)])
    base = _curve("b", [(1.0, 1.0, 50.0, 10), (1.6, 1.6, 40.0, 10)])
    c = compare(ours, base)
    assert not c.dominates  # at 1.0 ours throttles 100 against 50
    assert c.ratio_min == pytest.approx(0.5)
    assert c.churn_ratio == pytest.approx(5.0)  # at 1.6: 50 changes against 10


def test_compare_without_overlap() -> None:
    c = compare(_curve("ours", [(0, 2.0, 1.0, 1)]), _curve("b", [(1, 1.0, 5.0, 1)]))
    assert not c.dominates and "do not overlap" in c.sentence()


def test_sweep_settings_cover_the_issue_ranges() -> None:
    settings = sweep_settings(Config(), CATALOGUE)
    by = {}
    for s in settings:
        by.setdefault(s.strategy.name, []).append(s.value)
    assert by == {
        "ours": [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
        "p95x1.2": [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6],
        "krr": [1.0, 1.1, 1.2, 1.3, 1.4, 1.5],
    }
    ours = [s.strategy for s in settings if s.strategy.name == "ours"]
    assert [o.config.dynamic_limits.default_buffer for o in ours] == by["ours"]  # type: ignore[attr-defined]
    formula = [s.strategy for s in settings if s.strategy.name == "p95x1.2"]
    assert [f.factor_rate for f in formula] == [f.factor_count for f in formula] == by["p95x1.2"]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def suite_sweep():
    """The repository's suite with the evaluation cut to 1 day (cycles every 30 minutes as in
    the full run) and a coarser knob grid, to keep CI short; `mlo backtest --sweep` and
    bench/quality.py --sweep run the full suite and grid."""
    scenarios = [
        s.model_copy(update={"evaluation": 86400.0}) for s in load_scenarios([SUITE], CATALOGUE)
    ]
    cases = [build_case(s, CATALOGUE) for s in scenarios]
    # Ours at 10% too: between 0% and 20% its curve falls steeply (3,275 to 85 minutes), and
    # a straight line between them read the 20% point's minutes as if at 10%'s headroom.
    settings = sweep_settings(
        Config(), CATALOGUE, buffers=(0.0, 10.0, 20.0, 60.0), go_formula=(1.0, 1.3, 1.6),
        krr=(1.0, 1.5),
    )  # fmt: skip
    return run_sweep(cases, settings)


def test_ours_dominates_both_baselines_along_the_curves(suite_sweep) -> None:
    for comparison in suite_sweep.comparisons:
        baseline = suite_sweep.curve(comparison.baseline)
        xs = [s.headroom_median for s in baseline.totals]
        # Ours reaches low: its buffer-0% point sits within 7% of the baselines' lowest
        # headroom above 1.0x (noisy tenants keep their tail, trendAnalysis.adaptive.
        # tailPercentile, whatever the buffer, and the month-end tenants their last month
        # end's level, the long-term peak memory, through this quiet day: 1.06x on this
        # 1-day cut, 1.02x on the full suite; the baselines' points under 1.0x are
        # under-provisioned).
        assert comparison.low <= max(min(xs), 1.0) + 0.07, comparison
        assert comparison.dominates, comparison.sentence()
        assert comparison.ratio_min > 1.0


def test_ours_changes_limits_no_more_often_than_the_formula_at_equal_headroom(
    suite_sweep,
) -> None:
    formula = next(c for c in suite_sweep.comparisons if c.baseline == "p95x1.2")
    assert math.isfinite(formula.churn_ratio) and formula.churn_ratio <= 1.0, formula


# --- the command ------------------------------------------------------------------------------
def test_cli_sweep_json_table_and_plot(tmp_path: Path) -> None:
    file = tmp_path / "mine.yaml"
    file.write_text(SMALL)
    plot = tmp_path / "curves.png"
    done = RUNNER.invoke(
        app, ["backtest", "--sweep", "--scenarios", str(file), "--format", "json", "--plot",
              str(plot)],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    curves = {c["strategy"]: c for c in document["curves"]}
    assert list(curves) == ["ours", "p95x1.2", "krr"]
    assert [p["knob"] for p in curves["ours"]["points"]] == [0, 10, 20, 30, 40, 50, 60]
    assert [p["knob"] for p in curves["krr"]["points"]] == [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
    point = curves["p95x1.2"]["points"][0]
    assert {"throttled_minutes", "dropped_samples", "rejected_series", "headroom_median",
            "headroom_p90", "churn"} <= set(point)  # fmt: skip
    # More multiplier, more headroom: the curve is ordered along the knob.
    headrooms = [p["headroom_median"] for p in curves["p95x1.2"]["points"]]
    assert headrooms == sorted(headrooms)
    assert [c["baseline"] for c in document["comparisons"]] == ["p95x1.2", "krr"]
    assert all("at the same median headroom" in c["summary"] or "overlap" in c["summary"]
               for c in document["comparisons"])  # fmt: skip
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    table = RUNNER.invoke(app, ["backtest", "--sweep", "--scenarios", str(file)])
    assert table.exit_code == 0, table.output
    assert "buffer % swept" in table.stdout and "multiplier swept" in table.stdout
    assert "churn: limit changes" in table.stdout


def test_table_defines_headroom_and_churn_with_units(tmp_path: Path) -> None:
    file = tmp_path / "mine.yaml"
    file.write_text(SMALL)
    done = RUNNER.invoke(app, ["backtest", "--scenarios", str(file)])
    assert done.exit_code == 0, done.output
    assert "headroom p50 / p90: time-averaged limit in force ÷ p99 of true demand (×" in (
        done.stdout.replace("\n", " ")
    )
    assert "churn (changes)" in done.stdout and "churn: limit changes" in done.stdout
    assert "seed" not in done.stdout.replace("seeded", "").lower()


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ("ingestion_rte", "unknown limit 'ingestion_rte' (did you mean ingestion_rate?)"),
        ("no_such_limit", "unknown limit 'no_such_limit'"),
        ("ingestion_burst_size", "ingestion_burst_size is a"),
        (" , ", "no limit given"),
    ],
)
def test_cli_rejects_limits_it_cannot_backtest(tmp_path: Path, limits: str, expected: str) -> None:
    file = tmp_path / "mine.yaml"
    file.write_text(SMALL)
    done = RUNNER.invoke(app, ["backtest", "--scenarios", str(file), "--limits", limits])
    assert done.exit_code == 2
    assert expected in done.output.replace("\n", " ")
    assert "Traceback" not in done.output


def test_cli_limits_restrict_a_scenario_file(tmp_path: Path) -> None:
    file = tmp_path / "mine.yaml"
    file.write_text(SMALL)
    done = RUNNER.invoke(
        app, ["backtest", "--scenarios", str(file), "--limits", "ingestion_rate", "-f", "json"]
    )
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert document["scenarios"][0]["tenants"] == 3
    ours = next(r for r in document["results"] if r["strategy"] == "ours")
    # Only the two rate tenants count (the series tenant is out): two pairs at most.
    assert ours["rejected_series"] == 0


def test_json_documents_define_their_metrics(tmp_path: Path) -> None:
    file = tmp_path / "mine.yaml"
    file.write_text(SMALL)
    done = RUNNER.invoke(app, ["backtest", "--scenarios", str(file), "--format", "json"])
    assert done.exit_code == 0, done.output
    definitions = json.loads(done.stdout)["definitions"]
    assert set(definitions) == {
        "throttled_minutes", "dropped_samples", "rejected_series", "headroom", "churn"
    }  # fmt: skip
    assert "÷ p99 of true demand (×" in definitions["headroom"]
    assert definitions["churn"].startswith("limit changes")
