"""The shipped Mimir limit catalogue is complete and consistent, and every PromQL template
renders, parses (promtool) and computes the documented per-tenant value on sample data."""

from __future__ import annotations

import math
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from mimir_limit_optimizer.catalogue.load import CatalogueError, load_catalogue, parse_catalogue
from mimir_limit_optimizer.catalogue.model import Catalogue, LimitSpec, LimitType, SignalKind
from tests.conftest import require_binary

CATALOGUE = load_catalogue()
RAW: dict[str, Any] = YAML(typ="safe").load(
    resources.files("mimir_limit_optimizer.catalogue")
    .joinpath("data/mimir.yaml")
    .read_text(encoding="utf-8")
)
RAW_ENTRIES = {entry["name"]: entry for entry in RAW["limits"]}

# The limits the project promised to manage (the brief's list).
REQUIRED = {
    "ingestion_rate", "ingestion_burst_size", "request_rate", "request_burst_size",
    "max_global_series_per_user", "max_global_series_per_metric",
    "max_global_metadata_per_user", "max_global_metadata_per_metric",
    "max_global_exemplars_per_user", "max_label_names_per_series", "max_label_name_length",
    "max_label_value_length", "max_metadata_length", "max_fetched_chunks_per_query",
    "max_fetched_series_per_query", "max_fetched_chunk_bytes_per_query",
    "max_query_parallelism", "max_query_lookback", "max_partial_query_length",
    "max_total_query_length", "max_cache_freshness", "out_of_order_time_window",
    "ruler_max_rules_per_rule_group", "ruler_max_rule_groups_per_tenant",
    "alertmanager_notification_rate_limit", "alertmanager_max_dispatcher_aggregation_groups",
    "alertmanager_max_alerts_count", "alertmanager_max_alerts_size_bytes",
    "compactor_blocks_retention_period", "store_gateway_tenant_shard_size",
    "ingestion_tenant_shard_size", "native_histograms_ingestion_enabled",
    "max_native_histogram_buckets", "creation_grace_period", "max_queriers_per_tenant",
}  # fmt: skip

# Defaults read in Mimir's limits.go RegisterFlags (@aa3dce83), in base units.
MIMIR_DEFAULTS = {
    "ingestion_rate": 10_000, "ingestion_burst_size": 200_000, "request_rate": 0,
    "request_burst_size": 0, "max_global_series_per_user": 150_000,
    "max_global_series_per_metric": 0, "max_global_exemplars_per_user": 0,
    "max_label_names_per_series": 30, "max_label_name_length": 1024,
    "max_label_value_length": 2048, "max_metadata_length": 1024,
    "max_fetched_chunks_per_query": 2_000_000, "max_query_parallelism": 14,
    "max_cache_freshness": 600, "creation_grace_period": 600,
    "ruler_max_rules_per_rule_group": 20, "ruler_max_rule_groups_per_tenant": 70,
    "ha_max_clusters": 100, "native_histograms_ingestion_enabled": 0,
}  # fmt: skip

# Discard reasons that ingesters emit: every replica counts the rejected sample, so templates
# using them must divide by the replication factor. Verified in pkg/ingester/ingester.go.
INGESTER_REASONS = {
    "per_user_series_limit", "per_metric_series_limit", "per_user_metadata_limit",
    "per_metric_metadata_limit", "sample-out-of-order", "sample-too-old",
}  # fmt: skip

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
SELECTOR = 'cluster="c1",namespace="mimir"'


def rf_expr(sel: str, default: int = 3) -> str:
    """The expansion of ${rf} that the Prometheus source uses."""
    return f"scalar(max(cortex_distributor_replication_factor{{{sel}}}) or vector({default}))"


def render(template: str, sel: str = "", rate: str = "5m") -> str:
    values = {"sel": sel, "rate": rate, "rf": rf_expr(sel)}
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def balance_error(expr: str) -> str | None:
    """Why `expr` has unbalanced brackets or an unterminated string, or None."""
    closing = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    in_string = False
    i = 0
    while i < len(expr):
        char = expr[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "([{":
            stack.append(char)
        elif char in closing and (not stack or stack.pop() != closing[char]):
            return f"unexpected {char!r} at {i}"
        i += 1
    if in_string:
        return "unterminated string"
    return f"unclosed {''.join(stack)!r}" if stack else None


def templates() -> list[tuple[str, str, str]]:
    out = []
    for spec in CATALOGUE.limits.values():
        for kind, template in (("usage", spec.usage_query), ("discards", spec.discard_query)):
            if template:
                out.append((spec.name, kind, template))
    return out


TEMPLATES = templates()
TEMPLATE_IDS = [f"{name}-{kind}" for name, kind, _ in TEMPLATES]


# ------------------------------------------------------------------ shape of the catalogue


def test_catalogue_manages_at_least_30_limits_including_the_required_ones() -> None:
    assert CATALOGUE.flavour == "mimir"
    assert len(CATALOGUE.limits) >= 30
    assert REQUIRED - set(CATALOGUE.limits) == set()


@pytest.mark.parametrize(("name", "expected"), sorted(MIMIR_DEFAULTS.items()))
def test_defaults_match_mimir(name: str, expected: float) -> None:
    assert CATALOGUE.limits[name].default == expected


def test_every_entry_records_what_it_was_checked_against() -> None:
    assert RAW["checked_against"]
    missing = [name for name, entry in RAW_ENTRIES.items() if not entry.get("checked_against")]
    assert missing == []
    assert all(spec.checked_against for spec in CATALOGUE.limits.values())


def test_no_name_is_in_two_lists() -> None:
    lists = {
        "limits": set(CATALOGUE.limits),
        "known": set(CATALOGUE.known),
        "not_limits": set(CATALOGUE.not_limits),
        "aliases": set(CATALOGUE.aliases),
    }
    names = sorted(lists)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert lists[first] & lists[second] == set(), (first, second)
    assert len(RAW_ENTRIES) == len(RAW["limits"]), "a limit is listed twice"


def test_aliases_point_at_managed_limits() -> None:
    assert CATALOGUE.aliases == {"max_series": "max_global_series_per_user"}
    assert "'max_global_series_per_user'" in CATALOGUE.suggest("max_series")


def test_runtime_file_top_level_keys() -> None:
    assert {"overrides", "multi_kv_config", "ingester_limits"} <= CATALOGUE.top_level_keys


@pytest.mark.parametrize("spec", CATALOGUE.limits.values(), ids=lambda s: s.name)
def test_signal_has_what_it_needs(spec: LimitSpec) -> None:
    if spec.signal is SignalKind.USAGE:
        assert spec.usage_query
    if spec.signal is SignalKind.DISCARD:
        assert spec.discard_query
        assert spec.usage_query is None
    if spec.signal is SignalKind.POLICY:
        # Policy-only limits carry no signal: hints stay in `notes`, not in templates.
        assert spec.usage_query is None
        assert spec.discard_query is None
    if spec.signal is not SignalKind.DERIVED:
        assert spec.derived_from is None
    for reason in spec.discard_reasons:
        assert spec.discard_query is not None
        assert reason in spec.discard_query, f"{spec.name}: reason {reason} not queried"
    assert spec.description


@pytest.mark.parametrize(
    "spec",
    [s for s in CATALOGUE.limits.values() if s.signal is SignalKind.DERIVED],
    ids=lambda s: s.name,
)
def test_derived_limits_follow_an_existing_non_derived_parent(spec: LimitSpec) -> None:
    parent = CATALOGUE.limits[spec.derived_from or ""]
    assert parent.signal is not SignalKind.DERIVED
    assert spec.derive_factor is not None
    assert spec.derive_factor > 0


def test_ingestion_burst_factor_is_mimirs_default_ratio() -> None:
    burst = CATALOGUE.limits["ingestion_burst_size"]
    rate = CATALOGUE.limits["ingestion_rate"]
    assert burst.derived_from == "ingestion_rate"
    assert burst.derive_factor == burst.default / rate.default == 20
    assert CATALOGUE.limits["request_burst_size"].derived_from == "request_rate"


@pytest.mark.parametrize("spec", CATALOGUE.limits.values(), ids=lambda s: s.name)
def test_min_default_max_are_ordered(spec: LimitSpec) -> None:
    assert spec.min_value <= spec.max_value
    if spec.zero_means_unlimited and spec.default == 0:
        return
    assert spec.min_value <= spec.default <= spec.max_value


@pytest.mark.parametrize("spec", CATALOGUE.limits.values(), ids=lambda s: s.name)
def test_buffers_and_booleans_are_sane(spec: LimitSpec) -> None:
    assert 0 <= spec.buffer_percent <= 200
    if spec.type is LimitType.BOOL:
        assert not spec.zero_means_unlimited
        assert (spec.min_value, spec.max_value) == (0.0, 1.0)


def test_zero_that_disables_a_feature_is_not_unlimited() -> None:
    # 0 exemplars turns exemplars off; a 0 out-of-order window turns OOO off.
    assert not CATALOGUE.limits["max_global_exemplars_per_user"].zero_means_unlimited
    assert not CATALOGUE.limits["out_of_order_time_window"].zero_means_unlimited
    assert CATALOGUE.limits["request_rate"].zero_means_unlimited


def test_per_query_averages_may_never_lower() -> None:
    for name in (
        "max_fetched_chunks_per_query",
        "max_fetched_series_per_query",
        "max_fetched_chunk_bytes_per_query",
        "max_global_exemplars_per_user",
    ):
        assert CATALOGUE.limits[name].may_lower is False, name
    assert CATALOGUE.limits["ingestion_rate"].may_lower is True


# ------------------------------------------------------------------ names that are not limits


@pytest.mark.parametrize("name", sorted(CATALOGUE.not_limits))
def test_not_limits_get_their_fix_naming_a_real_key(name: str) -> None:
    suggestion = CATALOGUE.suggest(name)
    assert suggestion == CATALOGUE.not_limits[name]
    real = set(CATALOGUE.limits) | set(CATALOGUE.known) | CATALOGUE.top_level_keys
    named = set(re.findall(r"[a-z][a-z0-9_]+", suggestion)) & real
    assert named, f"{name}: the fix names no key Mimir accepts"
    assert CATALOGUE.kind_of(name) is None


def test_required_not_limits() -> None:
    assert {
        "max_samples_per_query",
        "max_series_per_query",
        "max_query_length",
        "max_concurrent_queries",
        "max_tenants",
    } <= set(CATALOGUE.not_limits)


def test_typos_get_close_matches() -> None:
    assert "max_global_series_per_user" in CATALOGUE.suggest("max_global_series_per_usr")


def test_loader_rejects_a_limit_listed_twice() -> None:
    text = """
flavour: mimir
checked_against: test
limits:
  - {name: ingestion_rate, type: rate, default: 1, signal: policy-only}
known: {ingestion_rate: float}
"""
    with pytest.raises(CatalogueError, match="listed twice"):
        parse_catalogue(text)


# ------------------------------------------------------------------ PromQL templates


def test_balance_checker_catches_mistakes() -> None:
    assert balance_error('sum by (user) (rate(x{a="(}"}[5m]))') is None
    assert balance_error("sum by (user) (rate(x[5m])") is not None
    assert balance_error('x{a="b}') is not None
    assert balance_error("x{a=(}") is not None


@pytest.mark.parametrize(("name", "kind", "template"), TEMPLATES, ids=TEMPLATE_IDS)
def test_template_renders_to_plausible_promql(name: str, kind: str, template: str) -> None:
    assert set(PLACEHOLDER.findall(template)) <= {"sel", "rate", "rf"}
    assert "${sel}" in template, f"{name} {kind}: extra matchers would be ignored"
    for sel in ("", SELECTOR):
        expr = render(template, sel)
        assert "${" not in expr
        assert balance_error(expr) is None, (name, kind, balance_error(expr))
        assert re.search(r"\bby \(user\)", expr), f"{name} {kind}: not one series per tenant"
        assert "{," not in expr
        assert ",," not in expr
    if "rate(" in template:
        assert "[${rate}]" in template


def reasons_in(template: str) -> set[str]:
    """Every discard reason a template matches, from `reason="x"` and `reason=~"x|y"`."""
    found: set[str] = set()
    for value in re.findall(r'reason=~?"([^"]*)"', template):
        found.update(value.split("|"))
    return found


def test_reasons_in_reads_both_matcher_forms() -> None:
    assert reasons_in('x{reason="a",y="b"} + z{reason=~"c|d"}') == {"a", "c", "d"}


@pytest.mark.parametrize(("name", "kind", "template"), TEMPLATES, ids=TEMPLATE_IDS)
def test_replication_factor_division_matches_the_emitting_component(
    name: str, kind: str, template: str
) -> None:
    ingester_side = "cortex_ingester_" in template or bool(reasons_in(template) & INGESTER_REASONS)
    if ingester_side:
        assert "${rf}" in template, f"{name} {kind}: ingester-side counts need / ${{rf}}"
    else:
        assert "${rf}" not in template, f"{name} {kind}: distributor-side counts are not replicated"


def test_templates_parse_with_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool", "apt-get install prometheus")
    rules = []
    for name, kind, template in TEMPLATES:
        for variant, sel in (("nosel", ""), ("sel", SELECTOR)):
            rules.append({"record": f"mlo:{name}:{kind}:{variant}", "expr": render(template, sel)})
    path = tmp_path / "rules.yml"
    with path.open("w", encoding="utf-8") as handle:
        YAML().dump({"groups": [{"name": "catalogue", "rules": rules}]}, handle)
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


# ------------------------------------------------------------------ what the queries compute
#
# promtool's rule unit tests evaluate each rendered template on series sampled every minute
# at t=10m with a 5m window. Series of cluster "c2" must be ignored (the selector reaches
# every metric of the expression, including the replication-factor gauge).

C1 = 'cluster="c1"'
INPUT_SERIES = """
# distributors: tenant a 20 samples/s over two distributors, 1 exemplar/s, 10 metadata/s;
# tenant b 5 samples/s and nothing else
cortex_distributor_received_samples_total{user="a",pod="d1"} 0+600x10
cortex_distributor_received_samples_total{user="a",pod="d2"} 0+600x10
cortex_distributor_received_exemplars_total{user="a",pod="d1"} 0+60x10
cortex_distributor_received_samples_total{user="b",pod="d1"} 0+300x10
cortex_discarded_samples_total{user="a",reason="rate_limited",pod="d1"} 0+120x10
cortex_discarded_exemplars_total{user="a",reason="rate_limited",pod="d1"} 0x10
cortex_distributor_received_metadata_total{user="a",pod="d1"} 0+600x10
cortex_discarded_requests_total{user="a",reason="rate_limited",pod="d1"} 0+60x10
cortex_distributor_requests_in_total{user="a",version="1.0",pod="d1"} 0+120x10
cortex_distributor_received_requests_total{user="a",pod="d1"} 0+60x10
cortex_distributor_received_requests_total{user="b",pod="d1"} 0+60x10
cortex_distributor_replication_factor{pod="d1"} 3x10
cortex_distributor_replication_factor{pod="d2"} 3x10
# ingesters (RF 3): tenant a 2700 series over three ingesters -> 900
cortex_ingester_memory_series_created_total{user="a",pod="i1"} 1000x10
cortex_ingester_memory_series_created_total{user="a",pod="i2"} 1200x10
cortex_ingester_memory_series_created_total{user="a",pod="i3"} 800x10
cortex_ingester_memory_series_removed_total{user="a",pod="i1"} 100x10
cortex_ingester_memory_series_removed_total{user="a",pod="i2"} 200x10
cortex_ingester_memory_series_removed_total{user="a",pod="i3"} 0x10
# every replica rejects 1 sample/s for the series limit -> 1/s deduplicated
cortex_discarded_samples_total{user="a",reason="per_user_series_limit",pod="i1"} 0+60x10
cortex_discarded_samples_total{user="a",reason="per_user_series_limit",pod="i2"} 0+60x10
cortex_discarded_samples_total{user="a",reason="per_user_series_limit",pod="i3"} 0+60x10
# metadata: a has a removed counter on one ingester only, b has none at all
cortex_ingester_memory_metadata_created_total{user="a",pod="i1"} 30x10
cortex_ingester_memory_metadata_created_total{user="a",pod="i2"} 30x10
cortex_ingester_memory_metadata_created_total{user="a",pod="i3"} 30x10
cortex_ingester_memory_metadata_removed_total{user="a",pod="i1"} 3x10
cortex_discarded_metadata_total{user="a",reason="per_user_metadata_limit",pod="i1"} 0+60x10
cortex_discarded_metadata_total{user="a",reason="per_user_metadata_limit",pod="i2"} 0+60x10
cortex_discarded_metadata_total{user="a",reason="per_user_metadata_limit",pod="i3"} 0+60x10
cortex_ingester_memory_metadata_created_total{user="b",pod="i1"} 10x10
cortex_ingester_memory_metadata_created_total{user="b",pod="i2"} 10x10
cortex_ingester_memory_metadata_created_total{user="b",pod="i3"} 10x10
cortex_ingester_tsdb_exemplar_series_with_exemplars_in_storage{user="a",pod="i1"} 30x10
cortex_ingester_tsdb_exemplar_series_with_exemplars_in_storage{user="a",pod="i2"} 30x10
cortex_ingester_tsdb_exemplar_series_with_exemplars_in_storage{user="a",pod="i3"} 30x10
# query-frontend: a fetches 100 chunks/s over 2 queries/s (label calls are not queries); b
# ran no query
cortex_query_fetched_chunks_total{user="a",pod="qf1"} 0+6000x10
cortex_query_frontend_queries_total{user="a",op="query",pod="qf1"} 0+60x10
cortex_query_frontend_queries_total{user="a",op="query_range",pod="qf1"} 0+60x10
cortex_query_frontend_queries_total{user="a",op="label_names_and_values",pod="qf1"} 0+600x10
cortex_query_fetched_chunks_total{user="b",pod="qf1"} 0+6000x10
cortex_query_frontend_queries_total{user="b",op="query",pod="qf1"} 0x10
# ruler: group g2 seen on two rulers while moving
cortex_prometheus_rule_group_rules{user="a",rule_group="ns;g1",pod="r1"} 5x10
cortex_prometheus_rule_group_rules{user="a",rule_group="ns;g2",pod="r1"} 12x10
cortex_prometheus_rule_group_rules{user="a",rule_group="ns;g2",pod="r2"} 12x10
# alertmanager (3 replicas hold the same alerts)
cortex_alertmanager_notifications_total{user="a",integration="e",pod="am1"} 0+600x10
cortex_alertmanager_notification_rate_limited_total{user="a",integration="e",pod="am1"} 0+120x10
cortex_alertmanager_notifications_total{user="b",integration="e",pod="am1"} 0+60x10
cortex_alertmanager_alerts_limiter_current_alerts{user="a",pod="am1"} 50x10
cortex_alertmanager_alerts_limiter_current_alerts{user="a",pod="am2"} 50x10
cortex_alertmanager_alerts_limiter_current_alerts{user="a",pod="am3"} 48x10
"""
# Another cluster with the same tenants and a different replication factor: must not count.
NOISE_SERIES = """
cortex_distributor_received_samples_total{user="a",pod="x1"} 0+60000x10
cortex_distributor_requests_in_total{user="b",pod="x1"} 0+60000x10
cortex_distributor_replication_factor{pod="x1"} 7x10
cortex_ingester_memory_series_created_total{user="a",pod="x2"} 99999x10
cortex_ingester_memory_metadata_removed_total{user="b",pod="x2"} 9999x10
cortex_alertmanager_notification_rate_limited_total{user="b",integration="x",pod="x3"} 0+60x10
cortex_prometheus_rule_group_rules{user="a",rule_group="ns;g9",pod="x4"} 99x10
"""

# (limit, template kind) -> expected value per tenant; tenants absent from the dict must be
# absent from the result.
EXPECTED: dict[tuple[str, str], dict[str, float]] = {
    # the limiter is charged samples + exemplars + metadata
    ("ingestion_rate", "usage"): {"a": 31.0, "b": 5.0},
    ("ingestion_rate", "discards"): {"a": 2.0},
    ("request_rate", "usage"): {"a": 2.0, "b": 1.0},
    ("request_rate", "discards"): {"a": 1.0},
    ("max_global_series_per_user", "usage"): {"a": 900.0},
    # 1 rejected sample/s; accepted 20 - 1 = 19 samples/s over 900 series -> 900/19 series
    ("max_global_series_per_user", "discards"): {"a": 900.0 / 19.0},
    ("max_global_metadata_per_user", "usage"): {"a": 29.0, "b": 10.0},
    # 1 rejected metadata/s; accepted 10 - 1 = 9/s over 29 entries -> 29/9 entries
    ("max_global_metadata_per_user", "discards"): {"a": 29.0 / 9.0},
    ("max_global_exemplars_per_user", "usage"): {"a": 30.0},
    ("max_fetched_chunks_per_query", "usage"): {"a": 50.0},
    ("ruler_max_rules_per_rule_group", "usage"): {"a": 12.0},
    ("ruler_max_rule_groups_per_tenant", "usage"): {"a": 2.0},
    ("alertmanager_notification_rate_limit", "usage"): {"a": 8.0, "b": 1.0},
    ("alertmanager_notification_rate_limit", "discards"): {"a": 2.0},
    ("alertmanager_max_alerts_count", "usage"): {"a": 50.0},
}


def parse_series(text: str, cluster: str) -> list[dict[str, str]]:
    """`metric{labels} values` lines (comments skipped) as promtool input series of `cluster`."""
    out = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            series, values = line.rsplit(" ", 1)
            out.append({"series": series.replace("{", f"{{{cluster},", 1), "values": values})
    return out


def test_expected_values_cover_every_usage_driven_limit_with_discards() -> None:
    for spec in CATALOGUE.limits.values():
        if spec.signal is SignalKind.USAGE and spec.discard_query:
            assert (spec.name, "discards") in EXPECTED, spec.name


def test_queries_compute_the_documented_values(tmp_path: Path) -> None:
    promtool = require_binary("promtool", "apt-get install prometheus")
    series = parse_series(INPUT_SERIES, C1) + parse_series(NOISE_SERIES, 'cluster="c2"')
    tests = []
    for (name, kind), per_tenant in EXPECTED.items():
        spec = CATALOGUE.limits[name]
        template = spec.usage_query if kind == "usage" else spec.discard_query
        assert template, (name, kind)
        tests.append(
            {
                "expr": render(template, C1),
                "eval_time": "10m",
                "exp_samples": [
                    {"labels": f'{{user="{user}"}}', "value": value}
                    for user, value in sorted(per_tenant.items())
                ],
            }
        )
    (tmp_path / "empty_rules.yml").write_text("groups: []\n", encoding="utf-8")
    path = tmp_path / "tests.yml"
    with path.open("w", encoding="utf-8") as handle:
        YAML().dump(
            {
                "rule_files": ["empty_rules.yml"],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
            },
            handle,
        )
    done = subprocess.run(
        [promtool, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_expected_series_conversion_is_the_documented_formula() -> None:
    # rejected series = rejected samples/s x series / accepted samples/s
    rejected, series, received = 1.0, 900.0, 20.0
    assert math.isclose(
        EXPECTED[("max_global_series_per_user", "discards")]["a"],
        rejected * series / (received - rejected),
    )


def _catalogue_with(entries: str) -> Catalogue:
    return parse_catalogue(f"flavour: mimir\nchecked_against: test\nlimits:\n{entries}")


def test_loader_parses_durations_and_booleans_into_base_units() -> None:
    cat = _catalogue_with(
        "  - {name: a, type: duration, default: 1h30m, min: 1m, max: 1d, signal: policy-only}\n"
        "  - {name: b, type: bool, default: true, signal: policy-only}\n"
    )
    assert (cat.limits["a"].default, cat.limits["a"].min_value) == (5400.0, 60.0)
    assert cat.limits["a"].max_value == 86400.0
    assert cat.limits["b"].default == 1.0
    assert CATALOGUE.limits["compactor_blocks_retention_period"].min_value == 86400.0


def test_docs_table_lists_every_managed_limit_with_its_signal() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "catalogue.md").read_text(encoding="utf-8")
    rows = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^\| `([a-z_]+)` \| [a-z]+ \| [^|]+ \| ([^|]+) \|", docs, re.M)
    }
    for spec in CATALOGUE.limits.values():
        assert spec.name in rows, f"docs/catalogue.md: no table row for {spec.name}"
        assert rows[spec.name].strip().startswith(spec.signal.value), spec.name


def test_the_fast_and_the_portable_yaml_parsers_read_the_catalogue_alike() -> None:
    """The catalogue loads with libyaml when present (fast start-up) and ruamel otherwise:
    both must give the same data (YAML 1.1 vs 1.2 differ on `1.0e9`, `yes`, `on`, ...)."""
    from pathlib import Path

    import yaml
    from ruamel.yaml import YAML

    import mimir_limit_optimizer.catalogue.load as load_module

    text = (Path(load_module.__file__).parent / "data" / "mimir.yaml").read_text()
    assert yaml.load(text, Loader=yaml.CSafeLoader) == YAML(typ="safe").load(text)
