"""The Grafana dashboard shipped in the chart is exactly what deploy/grafana/dashboard.py
builds, has the mimir-mixin's cluster/namespace variables, selects on them in every query,
and has a panel for each topic the operators asked for. (Its queries return data:
test_promql.py.)"""

from __future__ import annotations

import importlib.util
import json
import re
from typing import Any

from tests.deploy.chart import DASHBOARD, ROOT

TOPICS = {  # topic -> a metric its panel must query
    "cycles and their results": "mimir_limit_optimizer_reconcile_total",
    "changes applied and held back": "mimir_limit_optimizer_changes_total",
    "recommended vs current for the top tenants": "mimir_limit_optimizer_tenant_recommended_limits",
    "throttled tenants": "mimir_limit_optimizer_tenants_throttled",
    "breaker states": "mimir_limit_optimizer_circuit_breaker_tenants",
    "emergency level": "mimir_limit_optimizer_emergency_level",
    "alert channel health": "mimir_limit_optimizer_alert_channel_health",
    "alert queue sizes": "mimir_limit_optimizer_alert_queue_size",
    "cost per tenant": "mimir_limit_optimizer_cost_current",
    "budget use": "mimir_limit_optimizer_budget_usage_ratio",
}


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("dashboard", ROOT / "deploy/grafana/dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def test_shipped_json_is_what_the_code_builds() -> None:
    generator = _generator()
    assert DASHBOARD.read_text(encoding="utf-8") == generator.render()
    assert generator.main(["--check"]) == 0


def test_cluster_and_namespace_variables_as_in_the_mixin() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    assert {"datasource", "cluster", "namespace"} <= set(variables)
    assert variables["namespace"]["definition"].count('cluster=~"$cluster"') == 1
    for name in ("cluster", "namespace"):
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"


def test_every_query_selects_cluster_and_namespace() -> None:
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            selectors = re.findall(r"\{([^}]*)\}", target["expr"])
            metric_selectors = [s for s in selectors if "=" in s]
            assert metric_selectors, f"{panel['title']}: no label selector"
            for s in metric_selectors:
                assert 'cluster=~"$cluster"' in s and 'namespace=~"$namespace"' in s, (
                    f"{panel['title']}: {target['expr']}"
                )


def test_a_panel_for_every_topic() -> None:
    exprs = " ".join(t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", []))
    missing = [topic for topic, metric in TOPICS.items() if metric not in exprs]
    assert missing == []


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in _dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        cells = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not cells & taken, panel["title"]
        taken |= cells
