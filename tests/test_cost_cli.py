"""`mlo cost` on the embedded default (the synthetic cluster, no configuration): JSON whose
numbers add up (tenants -> teams -> cluster), CSV with one row per scope, a table; with a
budget and enforcement configured, the budget usage, its crossing and the caps enforcement
would set. And the cost signals read through a real Prometheus (loaded with the synthetic
cluster) cost what the hand computation from the cluster's truth says, within 1%."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.cli.main import app
from mimir_limit_optimizer.config.cost import CostControlSettings
from mimir_limit_optimizer.config.models import PrometheusSettings, SyntheticSettings
from mimir_limit_optimizer.engine.cost import Ledger, build_report, integrate_daily
from mimir_limit_optimizer.engine.cost.periods import DAY
from mimir_limit_optimizer.sources.cost_signals import PrometheusCostSource, SyntheticCostSource
from mimir_limit_optimizer.sources.synthetic import SyntheticSource, write_openmetrics
from tests.promserver import PromServer

RUNNER = CliRunner()


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.chdir(tmp_path)
    for name in ("MODE", "MLO_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    result = RUNNER.invoke(app, ["cost", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_json_on_the_embedded_default_adds_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = json.loads(run(tmp_path, monkeypatch, "--format", "json"))
    assert document["source"].startswith("synthetic cluster")
    assert document["method"] == "samples" and document["currency"] == "USD"
    assert document["missing"] == {}
    tenants = document["tenants"]
    assert len(tenants) == 24
    month = sum(t["month"] for t in tenants)
    assert document["global"]["month"] == pytest.approx(month, rel=1e-6)
    assert document["global"]["today"] == pytest.approx(sum(t["today"] for t in tenants), rel=1e-6)
    assert document["global"]["forecast"]["month"] >= document["global"]["month"]
    assert sum(d["cost"] for d in document["daily"]) == pytest.approx(month, rel=1e-6)
    assert tenants == sorted(tenants, key=lambda t: -t["month"])  # biggest spenders first
    assert {t["mode"] for t in tenants} == {"monitor"}
    kinds = {r["kind"] for r in document["recommendations"]}
    assert kinds == {"lower_limit"}  # no budget: nothing to cross
    saving = document["recommendations"][0]
    assert saving["monthly_saving"] > 0 and saving["target"] < saving["current"]


def test_budgets_teams_and_caps_show_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mlo.yaml"
    config.write_text(
        "costControl:\n"
        "  teams: {'tenant-*': core, '*': other}\n"
        "  globalBudget: {monthly: 0.5, daily: 1000}\n"
        "  autoLimitReduction: true\n"
        "  tenantBudgets:\n"
        "    tenant-003: {monthly: 0.01, enforceBudget: true}\n"
    )
    document = json.loads(run(tmp_path, monkeypatch, "--config", str(config), "--format", "json"))
    teams = {t["team"]: t for t in document["teams"]}
    assert set(teams) == {"core", "other"}
    assert teams["core"]["month"] + teams["other"]["month"] == pytest.approx(
        document["global"]["month"], rel=1e-6
    )
    glob = document["global"]
    assert glob["budget"]["monthly"] == 0.5
    assert glob["usage"]["monthly"] == pytest.approx(glob["month"] / 0.5, rel=1e-4)
    assert glob["reaches_budget"]["monthly"] is not None
    assert any(r["kind"] == "budget_crossing" and r["scope"] == "global"
               for r in document["recommendations"])  # fmt: skip
    assert document["enforcement"].startswith("would cap")  # dry-run
    assert [(c["tenant"], c["limit"], c["cap"]) for c in document["caps"]] == [
        ("tenant-003", "ingestion_rate", 1000)
    ]
    table = run(tmp_path, monkeypatch, "--config", str(config))
    assert "Cluster and teams" in table and "Budget caps" in table and "team core" in table
    rows = list(csv.DictReader(io.StringIO(run(tmp_path, monkeypatch, "--format", "csv"))))
    assert [r["scope"] for r in rows].count("global") == 1
    assert len(rows) == 24 + 1


@pytest.mark.prometheus
def test_costs_read_through_a_real_prometheus_match_the_hand_computation(
    prometheus_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two days ending shortly before now (Prometheus drops blocks older than its retention).
    step = 300.0
    end = float(int(time.time() // step * step) - step)
    settings = SyntheticSettings(tenant_count=6, seed=3, history=2 * DAY, step=step)
    source = SyntheticSource(settings, end=end, replication_factor=2)
    cluster = source.cluster
    text = io.StringIO()
    write_openmetrics(cluster, text, scrape_interval=60)
    server: PromServer = prometheus_factory(text.getvalue())

    prices = CostControlSettings.model_validate(
        {"costMethod": "composite", "compositeWeights": {"samples": 1, "series": 1},
         "costPerUnit": 0.25, "prices": {"perSeriesHour": 0.002}}
    )  # fmt: skip
    prom = PrometheusCostSource(
        PrometheusSettings(url=server.url, step=step), load_catalogue(), replication_factor=3
    )
    start = cluster.timestamps[0] + 1  # steps fully inside the generated history
    usage = prom.collect_cost(["samples", "series"], start=start, end=end)
    assert usage.unavailable == {}
    ledger = Ledger().merge(integrate_daily(usage), collected_at=end)
    # By hand, from the truth: every step's samples/s x 300 s at 0.25 per million, and its
    # series x 300 s / 3600 at 0.002 per series-hour, summed per UTC day of the step's middle.
    ts = cluster.timestamps[1:]
    samples = np.nan_to_num(cluster.samples_accepted[:, 1:])
    series = np.nan_to_num(cluster.series[:, 1:])
    per_step = samples * step / 1e6 * 0.25 + series * step / 3600 * 0.002
    day_of = ((ts - step / 2) // DAY).astype(int)
    for day in np.unique(day_of):
        expected = per_step[:, day_of == day].sum(axis=1)
        report = build_report(ledger, prices, float(day) * DAY + DAY / 2)
        got = dict(zip(report.scopes.tenants, report.spent["day"][: len(report.scopes.tenants)],
                       strict=True))  # fmt: skip
        for i, tenant in enumerate(cluster.tenants):
            assert got[tenant] == pytest.approx(expected[i], rel=0.01, abs=1e-9), (tenant, day)
        assert report.spent["day"][-1] == pytest.approx(expected.sum(), rel=0.01)
    # The in-process synthetic cost source says the same.
    same = SyntheticCostSource(source).collect_cost(["samples", "series"], start=start, end=end)
    rows = [same.tenants.index(t) for t in usage.tenants]  # Prometheus sorts tenants
    for signal in ("samples", "series"):
        np.testing.assert_allclose(
            np.nan_to_num(same.rates[signal][rows]), np.nan_to_num(usage.rates[signal]), rtol=1e-6
        )

    # And `mlo cost` itself: this month's cost of the cluster, by hand.
    config = tmp_path / "mlo.yaml"
    config.write_text(
        "trendAnalysis: {analysisWindow: 2d, minHistory: 1h}\n"
        "costControl:\n  costMethod: composite\n  costPerUnit: 0.25\n"
        "  compositeWeights: {samples: 1, series: 1}\n  prices: {perSeriesHour: 0.002}\n"
    )
    document = json.loads(
        run(tmp_path, monkeypatch, "--config", str(config), "--prometheus-url", server.url,
            "--format", "json")
    )  # fmt: skip
    month_start = float(np.datetime64(document["periods"]["month"] + "-01", "s").astype(int))
    in_month = (ts - step / 2) >= month_start
    assert document["global"]["month"] == pytest.approx(per_step[:, in_month].sum(), rel=0.01)
