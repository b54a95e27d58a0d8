"""The Grafana dashboard of the Mimir Limit Optimizer, as code.

    python deploy/grafana/dashboard.py          # rewrite the chart's files/dashboard.json
    python deploy/grafana/dashboard.py --check  # exit 1 when the JSON is not what this makes

Plain data, no library: every panel is a dict in Grafana's dashboard JSON model (schema 39),
built by the small helpers below. `cluster` and `namespace` variables as in the mimir-mixin
dashboards; every query selects on them. Queries prefer cluster totals and series that exist
with zero values (tests/deploy/test_promql.py runs each one against a real Prometheus
scraping a real `mlo run` and requires data).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = (
    Path(__file__).resolve().parents[1]
    / "helm"
    / "mimir-limit-optimizer"
    / "files"
    / "dashboard.json"
)
UID = "mimir-limit-optimizer"
SEL = 'cluster=~"$cluster", namespace=~"$namespace"'
JOB = f'job="mimir-limit-optimizer", {SEL}'
M = "mimir_limit_optimizer_"
RATE = "$__rate_interval"
DS = {"type": "prometheus", "uid": "${datasource}"}
WIDTH = 24


class Layout:
    """Places panels left to right, wrapping at Grafana's 24 columns; rows start a new line."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = 0
        self.y = 0
        self.height = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "id": len(self.panels) + 1,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def add(self, panel: dict[str, Any], w: int, h: int = 8) -> None:
        if self.x + w > WIDTH:
            self._newline()
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.height = max(self.height, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.height
        self.x, self.height = 0, 0


def target(expr: str, legend: str = "", *, instant: bool = False, ref: str = "A") -> dict[str, Any]:
    out: dict[str, Any] = {"datasource": DS, "expr": expr, "refId": ref}
    if legend:
        out["legendFormat"] = legend
    if instant:
        out.update({"instant": True, "range": False, "format": "table"})
    return out


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    unit: str = "short",
    extra: dict[str, Any] | None = None,
    thresholds: list[tuple[float | None, str]] | None = None,
) -> dict[str, Any]:
    steps = [{"color": color, "value": value} for value, color in (thresholds or [(None, "green")])]
    out: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {},
    }
    if kind == "timeseries":
        out["options"] = {
            "legend": {"displayMode": "table", "placement": "right", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if extra:
        out.update(extra)
    return out


def variables() -> list[dict[str, Any]]:
    def query_var(name: str, query: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": name,
            "type": "query",
            "datasource": DS,
            "query": {"query": query, "refId": f"{name}-var"},
            "definition": query,
            "includeAll": True,
            "allValue": ".*",
            "multi": True,
            "refresh": 2,
            "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        }

    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {"selected": False, "text": "default", "value": "default"},
        },
        query_var("cluster", f"label_values({M}reconcile_total, cluster)"),
        query_var(
            "namespace", f'label_values({M}reconcile_total{{cluster=~"$cluster"}}, namespace)'
        ),
        dict(
            query_var("limit", f"label_values({M}tenant_current_limits{{{SEL}}}, limit_name)"),
            multi=False,
            current={"selected": True, "text": "ingestion_rate", "value": "ingestion_rate"},
        ),
    ]


def build() -> dict[str, Any]:
    lay = Layout()
    lay.row("Overview")
    stat = "stat"
    lay.add(
        panel(stat, "Replicas up", "Optimizer replicas Prometheus scrapes successfully.",
              [target(f"sum(up{{{JOB}}})")], thresholds=[(None, "red"), (1, "green")]),
        w=3, h=4,
    )  # fmt: skip
    lay.add(
        panel(stat, "Replicas that may write", "1 expected: the Lease holder (or the only "
              "replica without leader election). 0: nothing is written; > 1: split brain.",
              [target(f"sum({M}leader{{{SEL}}})")],
              thresholds=[(None, "red"), (1, "green"), (2, "red")]),
        w=3, h=4,
    )  # fmt: skip
    lay.add(
        panel(stat, "Since last successful cycle", "Age of the last successful reconcile cycle.",
              [target(f"time() - max({M}last_reconcile_timestamp{{{SEL}}})")], unit="s",
              thresholds=[(None, "green"), (1800, "orange"), (3600, "red")]),
        w=3, h=4,
    )  # fmt: skip
    lay.add(
        panel(stat, "Tenants monitored", "Tenants in the latest recommendation cycle.",
              [target(f"max({M}tenants_monitored_total{{{SEL}}})")]),
        w=3, h=4,
    )  # fmt: skip
    lay.add(
        panel(stat, "Emergency level", "0 normal, 1 warning, 2 emergency, 3 panic.",
              [target(f"max({M}emergency_level{{{SEL}}})")],
              thresholds=[(None, "green"), (1, "yellow"), (2, "orange"), (3, "red")],
              extra={"options": {"colorMode": "background"}}),
        w=3, h=4,
    )  # fmt: skip
    lay.add(
        panel(stat, "Config reload OK", "1 when the optimizer's last configuration (re)load "
              "succeeded; 0 while it runs on the last good configuration.",
              [target(f"min({M}config_last_reload_successful{{{SEL}}})")],
              thresholds=[(None, "red"), (1, "green")]),
        w=3, h=4,
    )  # fmt: skip

    lay.add(
        panel(stat, "Mimir runtime config reload OK", "Mimir's own "
              "cortex_runtime_config_last_reload_successful (worst component): 0 means Mimir "
              "rejects its runtime files and no limit change takes effect.",
              [target(f"min(cortex_runtime_config_last_reload_successful{{{SEL}}})")],
              thresholds=[(None, "red"), (1, "green")]),
        w=3, h=4,
    )  # fmt: skip
    lay.add(
        panel(stat, "Limit changes applied (24h)", "Tenant x limit changes written in the "
              "last 24 hours.",
              [target(f'sum(increase({M}changes_total{{{SEL}, outcome="applied"}}[24h]))')]),
        w=3, h=4,
    )  # fmt: skip

    lay.row("Cycles and their results")
    lay.add(
        panel("timeseries", "Cycles by result", "Reconcile cycles per interval: success, "
              "failure (nothing written), skipped.",
              [target(f"sum by (result) (increase({M}reconcile_total{{{SEL}}}[{RATE}]))",
                      "{{result}}")]),
        w=8,
    )  # fmt: skip
    lay.add(
        panel("timeseries", "Cycle duration p95 by phase", "collect, recommend, plan, apply "
              "(with verification) and the whole cycle.",
              [target(f"histogram_quantile(0.95, sum by (le, phase) (rate("
                      f"{M}reconcile_duration_seconds_bucket{{{SEL}}}[{RATE}])))", "{{phase}}")],
              unit="s"),
        w=8,
    )  # fmt: skip
    lay.add(
        panel("timeseries", "Errors by component and reason", "Source, target and "
              "verification errors (a rollback counts as verify/reload_failed).",
              [target(f"sum by (component, reason) (increase({M}errors_total{{{SEL}}}[{RATE}]))",
                      "{{component}}/{{reason}}")]),
        w=8,
    )  # fmt: skip

    lay.row("Changes applied and held back")
    lay.add(
        panel("timeseries", "Planned changes by outcome", "Tenant x limit changes per "
              "interval: applied (written), held_back (cooldown, pinned, freeze, caps), "
              "not_applied (dry-run, follower, partial data, failed write).",
              [target(f"sum by (outcome) (increase({M}changes_total{{{SEL}}}[{RATE}]))",
                      "{{outcome}}")],
              extra={"fieldConfig": {"defaults": {"unit": "short", "custom": {
                  "drawStyle": "bars", "stacking": {"mode": "normal"}}}, "overrides": []}}),
        w=12,
    )  # fmt: skip
    lay.add(
        panel("timeseries", "Limit values written", "Tenant limit values written to the "
              "target per interval (prod mode only).",
              [target(f"sum(increase({M}limits_applied_total{{{SEL}}}[{RATE}]))", "written")]),
        w=12,
    )  # fmt: skip

    lay.row("Recommended vs current (top tenants)")
    top = (
        f"topk(10, max by (user, limit_name) ({M}tenant_recommended_limits"
        f'{{{SEL}, limit_name=~"$limit"}}))'
    )
    lay.add(
        panel("timeseries", "Recommended vs current, top 10 tenants", "The 10 largest "
              "recommendations of the selected limit (of the exported tenants: pending or "
              "recent changes, open breakers, caps, budgets, top N) and the limits in force "
              "for the same tenants.",
              [target(top, "recommended {{user}}"),
               target(f"max by (user, limit_name) ({M}tenant_current_limits"
                      f'{{{SEL}, limit_name=~"$limit"}}) and on (user, limit_name) {top}',
                      "current {{user}}")]),
        w=12, h=9,
    )  # fmt: skip
    lay.add(
        panel("table", "Recommended / current, top 10", "Ratio of the recommendation to the "
              "limit in force: > 1 raises, < 1 lowers.",
              [target(f"topk(10, max by (user, limit_name) ({M}tenant_recommended_limits"
                      f'{{{SEL}, limit_name=~"$limit"}}) / max by (user, limit_name) '
                      f'({M}tenant_current_limits{{{SEL}, limit_name=~"$limit"}} > 0))',
                      instant=True)], unit="percentunit"),
        w=12, h=9,
    )  # fmt: skip

    lay.row("Throttled tenants and breakers")
    lay.add(
        panel("timeseries", "Throttled tenants by limit", "Tenants whose samples Mimir "
              "discarded for the limit in the last day of the latest window.",
              [target(f"max by (limit_name) ({M}tenants_throttled{{{SEL}}})",
                      "{{limit_name}}")]),
        w=8,
    )  # fmt: skip
    lay.add(
        panel("timeseries", "Circuit breakers by state", "Tenants per breaker state "
              "(closed, open, half_open) in the last fast-loop tick.",
              [target(f"max by (state) ({M}circuit_breaker_tenants{{{SEL}}})", "{{state}}")]),
        w=8,
    )  # fmt: skip
    lay.add(
        panel("timeseries", "Protection clamps by limit and mode", "Limits tightened by "
              "protection per interval; mode=dry-run counts would-be clamps.",
              [target(f"sum by (limit, mode) (increase({M}throttled_requests_total{{{SEL}}}"
                      f"[{RATE}]))", "{{limit}} ({{mode}})")]),
        w=8,
    )  # fmt: skip
    lay.add(
        panel("timeseries", "Blast detections", "Breakers opened by kind and cluster-wide "
              "detectors (global_*).",
              [target(f"sum by (kind) (increase({M}blast_detections_total{{{SEL}}}[{RATE}]))",
                      "{{kind}}")]),
        w=24, h=6,
    )  # fmt: skip

    lay.row("Emergency level")
    lay.add(
        panel("timeseries", "Emergency level", "0 normal, 1 warning, 2 emergency, 3 panic.",
              [target(f"max({M}emergency_level{{{SEL}}})", "level")],
              thresholds=[(None, "green"), (1, "yellow"), (2, "orange"), (3, "red")]),
        w=12,
    )  # fmt: skip

    lay.add(
        panel("timeseries", "Cluster pressure", "Pressure signals in percent of their capacity "
              "(the highest instance); the emergency levels' thresholds apply to these.",
              [target(f"max by (resource) ({M}resource_usage_percent{{{SEL}}})", "{{resource}}")],
              unit="percent"),
        w=12,
    )  # fmt: skip

    lay.row("Alert channels")
    lay.add(
        panel("timeseries", "Channel health", "1: configured, breaker not open, last attempt "
              "succeeded.",
              [target(f"min by (channel) ({M}alert_channel_health{{{SEL}}})", "{{channel}}")]),
        w=8,
    )  # fmt: skip
    lay.add(
        panel("timeseries", "Alert queue fill", "Main and retry queues as a fraction of "
              "their capacity (full: alerts are dropped).",
              [target(f'max by (channel) ({M}alert_queue_size{{{SEL}, channel=~"main|retry"}} '
                      f"/ {M}alert_queue_capacity{{{SEL}}})", "{{channel}}")],
              unit="percentunit"),
        w=8,
    )  # fmt: skip
    lay.add(
        panel("timeseries", "Deliveries by result", "success, failure (retry scheduled), "
              "dead_letter, deduplicated, dropped.",
              [target(f"sum by (result) (increase({M}alert_delivery_total{{{SEL}}}[{RATE}]))",
                      "{{result}}")]),
        w=8,
    )  # fmt: skip

    lay.row("Cost and budgets")
    lay.add(
        panel("timeseries", "Cost per tenant this month, top 10", "Spend so far in the "
              "calendar month (currency of costControl.globalBudget).",
              [target(f"topk(10, max by (tenant) ({M}cost_current{{{SEL}, scope=\"tenant\", "
                      f'period="month"}}))', "{{tenant}}")]),
        w=12, h=9,
    )  # fmt: skip
    lay.add(
        panel("timeseries", "Cluster cost and forecast this month", "Spend so far and the "
              "month-end forecast of the whole cluster.",
              [target(f'max({M}cost_current{{{SEL}, scope="global", period="month"}})', "spent"),
               target(f'max({M}cost_forecast{{{SEL}, scope="global", period="month"}})',
                      "forecast")]),
        w=12, h=9,
    )  # fmt: skip
    lay.add(
        panel("bargauge", "Budget use", "Spend divided by the budget of the period, per "
              "scope with a budget (1 = used up).",
              [target(f"max by (scope, tenant, team, period) ({M}budget_usage_ratio{{{SEL}}})",
                      "{{scope}} {{tenant}}{{team}} {{period}}", instant=True)],
              unit="percentunit",
              thresholds=[(None, "green"), (0.75, "orange"), (1, "red")]),
        w=24, h=8,
    )  # fmt: skip

    return {
        "title": "Mimir Limit Optimizer",
        "uid": UID,
        "description": "Cycles, changes, recommendations, protection, alerting and cost of "
        "the Mimir Limit Optimizer.",
        "tags": ["mimir", "mimir-limit-optimizer"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": variables()},
        "annotations": {"list": []},
        "links": [],
        "panels": lay.panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run python deploy/grafana/dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
