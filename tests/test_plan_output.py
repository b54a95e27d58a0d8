"""What people read: every recommendation carries `target`, `recommended` (the next safe step)
and `bounds` in JSON, YAML and CSV, under a schema version; the table shows target and next
step and never drops or cuts a reason at 80, 120 or 200 columns; and the service's audit stays
bounded (one summarised `change_held_back` per cycle, a dry-run plan audited once while it does
not change, the cycle's whole plan stored for the UI)."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from rich.console import Console
from ruamel.yaml import YAML
from typer.testing import CliRunner

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.cli import output
from mimir_limit_optimizer.cli.service_cmds import app
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.controller.oneshot import build_source, run_cycle
from mimir_limit_optimizer.controller.reconcile import Reconciler, last_plan
from mimir_limit_optimizer.engine.planning import PLAN_SCHEMA_VERSION
from mimir_limit_optimizer.observability.health import HealthState
from mimir_limit_optimizer.observability.metrics import ControllerMetrics
from mimir_limit_optimizer.store import AuditLog, Store
from mimir_limit_optimizer.targets.file import FileTarget

CATALOGUE = load_catalogue()
NOW = float(int(time.time() // 300 * 300))
LOG = logging.getLogger("test-plan-output")
CONFIG = Config.model_validate({"synthetic": {"tenantCount": 12}})


@pytest.fixture(scope="module")
def cycle():
    source = build_source(CONFIG, now=NOW, env={})
    return run_cycle(CONFIG, CATALOGUE, source, now=NOW)


def test_json_rows_carry_target_next_step_and_bounds(cycle) -> None:
    document = output.recommendations_document(
        cycle.recommendations, source="synthetic", skipped={}, plan=cycle.plan
    )
    assert document["schema_version"] == PLAN_SCHEMA_VERSION
    rows = json.loads(output.to_json(document))["recommendations"]
    stepped = [r for r in rows if r["status"] == "change" and r["target"] != r["recommended"]]
    assert stepped, "the synthetic cluster always has a step-limited change"
    for row in rows:
        assert {"target", "recommended", "held", "bounds", "current"} <= set(row)
        lower, upper = row["bounds"]["lower"], row["bounds"]["upper"]
        if lower is not None:
            assert lower <= row["target"] <= upper
    row = stepped[0]
    moving_down = row["target"] < row["current"]
    assert (row["target"] <= row["recommended"]) == moving_down  # the step is on the way


def test_yaml_and_csv_carry_the_same_fields(cycle) -> None:
    document = output.recommendations_document(
        cycle.recommendations, source="synthetic", skipped={}, plan=cycle.plan
    )
    loaded = YAML(typ="safe").load(output.to_yaml(document))
    assert loaded["recommendations"] == json.loads(output.to_json(document))["recommendations"]
    text = output.recommendations_csv(cycle.recommendations, cycle.plan)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {"target", "recommended", "held", "lower_bound", "upper_bound"} <= set(rows[0])
    by_key = {(r["tenant"], r["limit"]): r for r in loaded["recommendations"]}
    for row in rows:
        want = by_key[(row["tenant"], row["limit"])]
        assert row["target"] == ("" if want["target"] is None else str(want["target"]))
        assert row["recommended"] == (
            "" if want["recommended"] is None else str(want["recommended"])
        )


def _squash(text: str) -> str:
    return re.sub(r"[\s│┃|]+", "", text)


@pytest.mark.parametrize("width", [80, 120, 200])
def test_the_table_never_drops_or_cuts_a_reason(cycle, width: int) -> None:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    output.recommendations_table(cycle.recommendations, console, cycle.plan)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= width
    shown = _squash(text)
    rows = output.recommendation_rows(cycle.recommendations, cycle.plan)
    reasons = [r for row in rows for r in row["reasons"]]
    assert len(reasons) > 50
    missing = [r for r in reasons if _squash(r) not in shown]
    assert missing == []
    if width < output.WIDE_TABLE:  # target and next step on each row's line
        line = next(ln for ln in text.splitlines() if "; next " in ln)
        assert "->" in line


def test_plan_json_lists_held_changes_with_why(tmp_path: Path) -> None:
    config = tmp_path / "mlo.yaml"
    config.write_text(
        f"dataDir: {tmp_path}\nsynthetic:\n  tenantCount: 12\nsafety:\n  maxTenantsPerCycle: 2\n"
    )
    result = CliRunner().invoke(app, ["plan", "-c", str(config), "-f", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema_version"] == PLAN_SCHEMA_VERSION
    held = [c for c in document["changes"] if c["held"]]
    assert held and all("maxTenantsPerCycle" in c["held"] for c in held)
    assert document["summary"]["tenants"] == 2
    assert not (tmp_path / "mlo.db").exists()  # a plan never creates the service's store


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.store = Store.open(f"sqlite:///{tmp / 'mlo.db'}")
        self.registry = CollectorRegistry()
        applier = Applier(
            FileTarget(tmp / "overrides.yaml"), self.store, CATALOGUE, verifier=None,
            rollback_on_failure=True, sleep=lambda _s: None, logger=LOG,
        )  # fmt: skip
        self.reconciler = Reconciler(
            catalogue=CATALOGUE,
            source_factory=lambda cfg, now: build_source(cfg, now=now, env={}),
            applier=applier, store=self.store, audit=AuditLog(self.store, logger=LOG),
            metrics=ControllerMetrics(self.registry), health=HealthState(stall_after=60),
            logger=LOG,
        )  # fmt: skip

    def count(self, action: str) -> int:
        return len(self.store.audit(action=action, limit=100_000))


def test_audit_volume_per_cycle_is_bounded_and_the_plan_is_stored(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    capped = Config.model_validate(
        {"synthetic": {"tenantCount": 40}, "safety": {"maxTenantsPerCycle": 2}}
    )
    first = rig.reconciler.run_once(capped, now=NOW)
    assert first.ok and first.held_back > 20
    assert rig.count("change_held_back") == 1  # one summary, not one event per change
    (summary,) = rig.store.audit(action="change_held_back")
    assert summary.details["count"] == first.held_back
    assert sum(summary.details["reasons"].values()) == first.held_back
    stored = last_plan(rig.store)
    assert stored is not None and stored["version"] == PLAN_SCHEMA_VERSION
    items = stored["items"]
    assert isinstance(items, list) and len(items) == first.planned
    assert sum(1 for i in items if i["held"]) == first.held_back


def test_dry_run_audits_the_same_plan_once_and_counts_repeats(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.reconciler.run_once(CONFIG, now=NOW)
    audited = rig.count("would_update_limits")
    assert audited > 0
    rig.reconciler.run_once(CONFIG, now=NOW + 60)  # same data, same plan
    assert rig.count("would_update_limits") == audited
    repeats = rig.registry.get_sample_value("mimir_limit_optimizer_plans_unchanged_total")
    assert repeats == 1.0
    # A restart remembers what was audited (it is in the stored plan).
    again = Rig(tmp_path)
    again.reconciler.run_once(CONFIG, now=NOW + 120)
    assert again.count("would_update_limits") == audited
    # A different plan is audited again.
    other = Config.model_validate(
        {"synthetic": {"tenantCount": 12}, "safety": {"maxTenantsPerCycle": 1}}
    )
    again.reconciler.run_once(other, now=NOW + 180)
    assert again.count("would_update_limits") > audited


def test_mlo_recommend_at_80_columns_keeps_every_reason(tmp_path: Path) -> None:
    config = tmp_path / "mlo.yaml"
    config.write_text(f"dataDir: {tmp_path}\nsynthetic:\n  tenantCount: 6\n")
    runner = CliRunner()
    table = runner.invoke(app, ["recommend", "-c", str(config)], env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    rows = json.loads(runner.invoke(app, ["recommend", "-c", str(config), "-f", "json"]).stdout)[
        "recommendations"
    ]
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    shown = _squash(table.stdout)
    assert [r for row in rows for r in row["reasons"] if _squash(r) not in shown] == []


@pytest.mark.parametrize("width", [80, 200])
def test_the_table_says_where_each_current_value_comes_from(cycle, width: int) -> None:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    output.recommendations_table(cycle.recommendations, console, cycle.plan)
    shown = _squash(console.export_text())
    rows = output.recommendation_rows(cycle.recommendations, cycle.plan)
    origins = {row["current_origin"] for row in rows if row["current_origin"]}
    assert origins  # the synthetic cluster reports its current limits
    assert all(_squash(f"current value from: {o}") in shown for o in origins)
