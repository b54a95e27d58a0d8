"""Every PromQL expression the deployment ships (dashboard targets, alert rules), in a form a
plain Prometheus can evaluate: Grafana variables replaced, alert conditions made to return
their value (`bool`) instead of filtering it away."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

# Grafana variables -> values a test Prometheus accepts. Regex matchers with ".*" also match
# series without the label (the test's scrapes carry no cluster label).
VARIABLES = {
    "$__rate_interval": "20s",
    "$cluster": ".*",
    "$namespace": ".*",
    "$limit": ".*",
}
_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)")


def dashboard_exprs(dashboard_file: Path) -> Iterator[tuple[str, str]]:
    """(panel title / refId, expression) of every panel target and query variable."""
    dashboard = json.loads(dashboard_file.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for t in panel.get("targets", []):
            yield f"{panel['title']} / {t['refId']}", t["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"]
            match = re.fullmatch(r"label_values\((.*), (\w+)\)", query)
            assert match, f"variable {var['name']}: unexpected query {query}"
            # label_values(series, label) is Grafana's: Prometheus answers the series part.
            yield f"variable {var['name']}", match[1]


def rule_exprs(rules_file: Path) -> Iterator[tuple[str, str]]:
    groups: list[dict[str, Any]] = yaml.safe_load(rules_file.read_text(encoding="utf-8"))["groups"]
    for group in groups:
        for rule in group["rules"]:
            yield rule["alert"], rule["expr"]


def substitute(expr: str) -> str:
    for name, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown variable in {expr}"
    return expr


def as_value(expr: str) -> str:
    """The alert condition as a value: `absent(X)` -> `X` (present when healthy), and the last
    top-level comparison `a > b` -> `a > bool b` (0 or 1 for every series of `a`)."""
    expr = expr.strip()
    if expr.startswith("absent(") and expr.endswith(")"):
        return expr[len("absent(") : -1]
    depth, quoted, last = 0, False, None
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch == '"' and (i == 0 or expr[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in "({[":
            depth += 1
        elif not quoted and ch in ")}]":
            depth -= 1
        elif not quoted and depth == 0:
            match = _COMPARISON.match(expr, i)
            if match and not (ch == "=" and expr[i - 1 : i] in "=!<>~"):
                last = match
                i = match.end()
                continue
        i += 1
    assert last is not None, f"no top-level comparison in {expr}"
    return f"{expr[: last.end()]} bool{expr[last.end() :]}"
