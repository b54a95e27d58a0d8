"""The shipped alert rules: `promtool check rules` passes, `promtool test rules` passes with a
firing case for every alert (alerts_test.yaml), and every alert has a summary, a description,
a severity and a runbook section in docs/operations.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import require_binary
from tests.deploy.chart import ALERTS, ROOT

UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")
INSTALL = "apt-get install -y prometheus"


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rule_file() -> None:
    promtool = require_binary("promtool", INSTALL)
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    promtool = require_binary("promtool", INSTALL)
    result = subprocess.run(
        [promtool, "test", "rules", str(UNIT_TESTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_unit_test() -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    quiet = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }
    names = {rule["alert"] for rule in _rules()}
    assert names - firing == set()
    assert names - quiet == set()  # and a case where it does not fire


def test_every_alert_is_documented() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in operations.splitlines()
        if line.startswith("#")
    }
    for rule in _rules():
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert annotations["runbook"] == f"docs/operations.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in anchors, f"no runbook section for {rule['alert']}"
