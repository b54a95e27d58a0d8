"""The runtime overrides model round-trips a hand-written file untouched (comments, key order,
quoting, unmanaged tenants and keys), edits exactly the value asked for and writes it in the
type Mimir's strict decoder expects, reads values back in base units, and the validator
reports every problem that would make Mimir reject (or silently misread) the file, with its
line and a fix. A Hypothesis property checks that any valid set of tenants x managed limits x
in-range values renders to a file that re-parses to the same values and validates clean."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimir_limit_optimizer.catalogue.load import load_catalogue
from mimir_limit_optimizer.catalogue.model import Catalogue, LimitSpec, LimitType
from mimir_limit_optimizer.catalogue.units import parse_duration
from mimir_limit_optimizer.engine import overrides as overrides_module
from mimir_limit_optimizer.engine.overrides import (
    OverridesDocument,
    OverridesEditError,
    OverridesParseError,
    OverridesValueError,
    Problem,
    current_limits,
    format_problems,
    limit_yaml_value,
    parse_overrides,
    validate_overrides,
)
from mimir_limit_optimizer.engine.tenants import TENANT_ID_SPECIAL_CHARACTERS, tenant_id_problem

CATALOGUE: Catalogue = load_catalogue()
LIMITS = CATALOGUE.limits
RATE = LIMITS["ingestion_rate"]
COUNT = LIMITS["max_global_series_per_user"]
DURATION = LIMITS["compactor_blocks_retention_period"]


def _spec_of_type(limit_type: LimitType) -> LimitSpec:
    for spec in LIMITS.values():
        if spec.type is limit_type:
            return spec
    pytest.skip(f"the catalogue has no {limit_type.value} limit")


HAND_WRITTEN = """\
# Runtime overrides for cluster prod-eu.
# Owned by the platform team; the optimizer edits values in place.
overrides:
  # --- big customers ---
  tenant-a:
    ingestion_rate: 50000                 # samples/s
    ingestion_burst_size: 1000000
    # why: migration until Q3
    max_global_series_per_user: 1500000

  "tenant-b":
    compactor_blocks_retention_period: "30d"
    max_queriers_per_tenant: 4            # unmanaged key, kept as is
    drop_labels: [pod_ip, 'instance']
  'hand-tuned': {ingestion_rate: 2.50, max_label_names_per_series: 40}
  123:
    max_global_series_per_user: 200000

# Instance limits, written by hand.
ingester_limits:
  max_series: 5000000
"""


def test_unedited_document_renders_its_input() -> None:
    doc: OverridesDocument = parse_overrides(HAND_WRITTEN)
    assert doc.render() == HAND_WRITTEN
    assert not doc.changed
    assert doc.tenants() == ["tenant-a", "tenant-b", "hand-tuned", "123"]


@pytest.mark.parametrize(
    ("text", "tenant", "value"),
    [
        (HAND_WRITTEN, "tenant-a", 50000),
        (
            "overrides:\n    a:\n        ingestion_rate: 1\n        drop_labels:\n          - x\n",
            "a",
            1,
        ),
        ("# c\n---\noverrides:\n  a:\n    ingestion_rate: 1\n...\n", "a", 1),
        ("overrides: {a: {ingestion_rate: 1}}\n", "a", 1),
        (
            "overrides:\n  a: &big\n    ingestion_rate: 1\n  b: *big\n"
            "  c:\n    ingestion_rate: 1\n",
            "c",
            1,
        ),
    ],
)
def test_edit_and_revert_gives_back_the_input(text: str, tenant: str, value: float) -> None:
    """The serialiser itself (not only the unedited shortcut) reproduces these files."""
    doc = parse_overrides(text)
    assert doc.set(tenant, "ingestion_rate", 7, RATE)
    assert doc.set(tenant, "ingestion_rate", value, RATE)
    assert doc.changed
    assert doc.render() == text


def test_set_changes_only_that_value() -> None:
    doc = parse_overrides(HAND_WRITTEN)
    assert doc.set("tenant-a", "ingestion_rate", 65000.0, RATE)
    assert doc.render() == HAND_WRITTEN.replace(
        "ingestion_rate: 50000                 # samples/s",
        "ingestion_rate: 65000                 # samples/s",
    )


def test_set_keeps_the_quoting_style_of_the_old_value() -> None:
    doc = parse_overrides(HAND_WRITTEN)
    assert doc.set("tenant-b", DURATION.name, 60 * 86400, DURATION)
    assert doc.render() == HAND_WRITTEN.replace('"30d"', '"60d"')


def test_new_key_goes_after_the_last_key_of_its_tenant() -> None:
    doc = parse_overrides(HAND_WRITTEN)
    assert doc.set("tenant-a", DURATION.name, 14 * 86400, DURATION)
    assert doc.render() == HAND_WRITTEN.replace(
        "    max_global_series_per_user: 1500000\n",
        "    max_global_series_per_user: 1500000\n    compactor_blocks_retention_period: 14d\n",
    )


def test_new_tenant_goes_after_the_last_tenant() -> None:
    doc = parse_overrides(HAND_WRITTEN)
    assert doc.set("tenant-new", "ingestion_rate", 20000, RATE)
    assert doc.render() == HAND_WRITTEN.replace(
        "    max_global_series_per_user: 200000\n",
        "    max_global_series_per_user: 200000\n  tenant-new:\n    ingestion_rate: 20000\n",
    )
    assert doc.tenants()[-1] == "tenant-new"


def test_new_key_in_a_flow_mapping_stays_in_flow_style() -> None:
    doc = parse_overrides(HAND_WRITTEN)
    assert doc.set("hand-tuned", "max_global_series_per_user", 1e5, COUNT)
    assert (
        "'hand-tuned': {ingestion_rate: 2.50, max_label_names_per_series: 40, "
        "max_global_series_per_user: 100000}\n" in doc.render()
    )


def test_remove_keeps_the_comments_around_the_key() -> None:
    doc = parse_overrides(HAND_WRITTEN)
    assert doc.remove("tenant-a", "ingestion_burst_size")
    assert doc.render() == HAND_WRITTEN.replace("    ingestion_burst_size: 1000000\n", "")


def test_removing_the_last_key_drops_the_tenant_and_keeps_what_followed() -> None:
    doc = parse_overrides(HAND_WRITTEN)
    assert doc.remove("123", "max_global_series_per_user")
    assert doc.render() == HAND_WRITTEN.replace(
        "  123:\n    max_global_series_per_user: 200000\n", ""
    )
    assert "123" not in doc.tenants()


def test_removing_a_first_key_keeps_the_comment_of_the_next() -> None:
    text = (
        "overrides:\n  a:\n    ingestion_rate: 1\n"
        "    # about the series limit\n    max_global_series_per_user: 5\n"
    )
    doc = parse_overrides(text)
    assert doc.remove("a", "ingestion_rate")
    assert doc.render() == (
        "overrides:\n  a:\n    # about the series limit\n    max_global_series_per_user: 5\n"
    )


def test_removing_the_last_tenant_leaves_an_empty_overrides_map() -> None:
    doc = parse_overrides("overrides:\n  a:\n    ingestion_rate: 1\n# end\n")
    assert doc.remove("a", "ingestion_rate")
    assert doc.render() == "overrides: {}\n# end\n"
    assert validate_overrides(doc.render(), CATALOGUE) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "overrides:\n  a:\n    ingestion_rate: 1\n# instance limits\ningester_limits: {}\n",
            "overrides: {}\n# instance limits\ningester_limits: {}\n",
        ),
        (
            "# head\noverrides:\n  a:\n    ingestion_rate: 1\n\n# end\n",
            "# head\noverrides: {}\n\n# end\n",
        ),
        (
            "overrides:  # managed\n  a:\n    ingestion_rate: 1\n# end\n",
            "overrides: {} # managed\n# end\n",
        ),
    ],
)
def test_comments_after_the_last_removed_tenant_stay(text: str, expected: str) -> None:
    doc = parse_overrides(text)
    assert doc.remove("a", "ingestion_rate")
    assert doc.render() == expected
    assert parse_overrides(doc.render()).tenants() == []


def test_remove_of_something_absent_changes_nothing() -> None:
    doc = parse_overrides(HAND_WRITTEN)
    assert not doc.remove("tenant-a", "request_rate")
    assert not doc.remove("nobody", "ingestion_rate")
    assert not doc.changed and doc.render() == HAND_WRITTEN


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        (RATE, 50000.0, "50000"),
        (RATE, 50000, "50000"),
        (RATE, 2.5, "2.5"),
        (RATE, 0.37, "0.37"),
        (RATE, 1e9, "1000000000"),
        (RATE, 0, "0"),
        (COUNT, 1_500_000.0, "1500000"),
        (COUNT, 1e6, "1000000"),
        (COUNT, 149_999.99999999997, "150000"),  # float noise rounds to the integer
        (COUNT, 1234.2, "1235"),  # a real fraction rounds up, never below the ask
        (COUNT, np.float64(42.0), "42"),
        (DURATION, 30 * 86400, "30d"),
        (DURATION, 5400, "1h30m"),
        (DURATION, 0, "0s"),
        (DURATION, 90.5, "1m30s500ms"),
    ],
)
def test_set_renders_the_type_mimir_expects(spec: LimitSpec, value: float, expected: str) -> None:
    doc = parse_overrides("")
    assert doc.set("t", spec.name, value, spec)
    assert doc.render() == f"overrides:\n  t:\n    {spec.name}: {expected}\n"


@pytest.mark.parametrize(("value", "expected"), [(1.0, "true"), (0.0, "false"), (0.5, "true")])
def test_set_renders_booleans(value: float, expected: str) -> None:
    spec = _spec_of_type(LimitType.BOOL)
    doc = parse_overrides("")
    doc.set("t", spec.name, value, spec)
    assert doc.render() == f"overrides:\n  t:\n    {spec.name}: {expected}\n"
    assert parse_overrides(doc.render()).number("t", spec) == (1.0 if value else 0.0)


def test_bytes_limits_are_integers() -> None:
    spec = _spec_of_type(LimitType.BYTES)
    assert limit_yaml_value(64 * 2**20 + 0.25, spec) == 64 * 2**20 + 1


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0])
def test_impossible_values_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="ingestion_rate"):
        limit_yaml_value(value, RATE)


@pytest.mark.parametrize(
    ("text", "value", "spec"),
    [
        ("overrides:\n  t:\n    ingestion_rate: 50000.0\n", 50000, RATE),
        ("overrides:\n  t:\n    ingestion_rate: 5e4\n", 50000, RATE),
        ("overrides:\n  t:\n    compactor_blocks_retention_period: 720h\n", 30 * 86400, DURATION),
        ("overrides:\n  t:\n    max_global_series_per_user: 1_000\n", 1000, COUNT),
    ],
)
def test_setting_the_same_value_is_a_no_op(text: str, value: float, spec: LimitSpec) -> None:
    doc = parse_overrides(text)
    assert not doc.set("t", spec.name, value, spec)
    assert not doc.changed and doc.render() == text


def test_set_replaces_a_value_of_the_wrong_type() -> None:
    doc = parse_overrides("overrides:\n  t:\n    ingestion_rate: '50000'\n")
    assert doc.set("t", "ingestion_rate", 50000, RATE)
    assert doc.render() == "overrides:\n  t:\n    ingestion_rate: 50000\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "overrides:\n  t:\n    ingestion_rate: 5\n"),
        ("# managed by mlo\n", "# managed by mlo\noverrides:\n  t:\n    ingestion_rate: 5\n"),
        ("overrides:\n", "overrides:\n  t:\n    ingestion_rate: 5\n"),
        ("overrides: {}\n", "overrides:\n  t:\n    ingestion_rate: 5\n"),
        ("overrides:\n  t:\n", "overrides:\n  t:\n    ingestion_rate: 5\n"),
        (
            "ingester_limits:\n  max_series: 1\n# end\n",
            "ingester_limits:\n  max_series: 1\noverrides:\n  t:\n    ingestion_rate: 5\n# end\n",
        ),
        (
            "overrides:\n  t:   # placeholder\n  # next\n  u: {}\n",
            "overrides:\n  t:   # placeholder\n    ingestion_rate: 5\n  # next\n  u: {}\n",
        ),
    ],
)
def test_set_creates_what_is_missing(text: str, expected: str) -> None:
    doc = parse_overrides(text)
    assert doc.set("t", "ingestion_rate", 5, RATE)
    assert doc.render() == expected


@pytest.mark.parametrize(("tenant", "written"), [("*", "'*'"), ("123", "'123'"), ("yes", "'yes'")])
def test_new_tenant_ids_are_quoted_when_yaml_would_misread_them(tenant: str, written: str) -> None:
    doc = parse_overrides("")
    doc.set(tenant, "ingestion_rate", 5, RATE)
    assert doc.render() == f"overrides:\n  {written}:\n    ingestion_rate: 5\n"
    assert parse_overrides(doc.render()).tenants() == [tenant]


def test_set_refuses_invalid_tenant_ids_and_mismatched_specs() -> None:
    doc = parse_overrides("")
    with pytest.raises(ValueError, match="unsupported character"):
        doc.set("team a", "ingestion_rate", 5, RATE)
    with pytest.raises(ValueError, match="does not match"):
        doc.set("t", "ingestion_burst_size", 5, RATE)


def test_tenant_ids_are_the_strings_mimir_sees() -> None:
    doc = parse_overrides("overrides:\n  123: {}\n  0124: {}\n  true: {}\n  '*': {}\n")
    assert doc.tenants() == ["123", "0124", "true", "*"]


def test_tenant_keys_that_yaml_reads_as_one_value_are_refused() -> None:
    with pytest.raises(OverridesParseError, match="same YAML value") as caught:
        parse_overrides("overrides:\n  123: {}\n  0123: {}\n")
    assert caught.value.line == 3


def test_an_aliased_entry_is_copied_before_an_edit() -> None:
    text = "overrides:\n  a: &big\n    ingestion_rate: 1\n  b: *big\n"
    doc = parse_overrides(text)
    assert doc.set("b", "ingestion_rate", 5, RATE)
    assert doc.render() == "overrides:\n  a:\n    ingestion_rate: 1\n  b:\n    ingestion_rate: 5\n"


def test_an_anchored_entry_is_not_edited() -> None:
    doc = parse_overrides("overrides:\n  a: &big\n    ingestion_rate: 1\n  b: *big\n")
    with pytest.raises(OverridesEditError, match="anchor"):
        doc.set("a", "ingestion_rate", 5, RATE)


def test_merged_keys_are_read_but_not_removed() -> None:
    text = (
        "overrides:\n  a: &base\n    ingestion_rate: 1\n"
        "  b:\n    <<: *base\n    max_global_series_per_user: 5\n"
    )
    doc = parse_overrides(text)
    assert doc.number("b", RATE) == 1.0
    with pytest.raises(OverridesEditError, match="merge key"):
        doc.remove("b", "ingestion_rate")
    assert doc.set("b", "ingestion_rate", 3, RATE)  # an own key now overrides the merged one
    assert parse_overrides(doc.render()).number("b", RATE) == 3.0


def test_get_returns_raw_values_and_number_base_units() -> None:
    doc = parse_overrides(HAND_WRITTEN)
    assert doc.get("tenant-a", "ingestion_rate") == 50000
    assert doc.get("tenant-b", "drop_labels") == ["pod_ip", "instance"]
    assert doc.get("tenant-a", "request_rate") is None
    assert doc.get("nobody", "ingestion_rate") is None
    assert doc.number("tenant-b", DURATION) == 30 * 86400.0
    assert doc.number("hand-tuned", RATE) == 2.5
    assert doc.number("tenant-a", DURATION) is None
    assert doc.line_of("tenant-a", "max_global_series_per_user") == 9


def test_number_reads_yaml_1_1_booleans_and_null_like_mimir() -> None:
    spec = _spec_of_type(LimitType.BOOL)
    doc = parse_overrides(f"overrides:\n  a:\n    {spec.name}: yes\n  b:\n    {spec.name}: off\n")
    assert doc.number("a", spec) == 1.0
    assert doc.number("b", spec) == 0.0
    # Null keeps the default (Mimir copies `limits:` into the tenant; yaml.v3 leaves it).
    assert parse_overrides("overrides:\n  a:\n    ingestion_rate:\n").number("a", RATE) is None


def test_number_of_a_wrong_type_raises_with_the_line() -> None:
    doc = parse_overrides("overrides:\n  a:\n    ingestion_rate: lots\n", source_name="o.yaml")
    with pytest.raises(OverridesValueError, match=r"^o\.yaml:3: overrides\.a\.ingestion_rate"):
        doc.number("a", RATE)


def test_current_limits_are_nan_where_the_file_is_silent() -> None:
    doc = parse_overrides(HAND_WRITTEN)
    tenants = ["tenant-a", "tenant-b", "nobody", "123"]
    current = current_limits(doc, tenants, [RATE, COUNT, DURATION])
    assert set(current) == {RATE.name, COUNT.name, DURATION.name}
    np.testing.assert_array_equal(current[RATE.name], [50000.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(current[COUNT.name], [1_500_000.0, np.nan, np.nan, 200_000.0])
    np.testing.assert_array_equal(current[DURATION.name], [np.nan, 30 * 86400.0, np.nan, np.nan])
    assert all(a.dtype == np.float64 and a.shape == (4,) for a in current.values())


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("overrides:\n  a: [1\n", 3, "not valid YAML"),
        ("overrides:\n  a:\n    x: 1\n   y: 2\n", 4, "not valid YAML"),
        ("overrides: {}\n---\noverrides: {}\n", 2, "second YAML document"),
        ("- overrides\n", 1, "top level must be a mapping"),
        ("overrides: 5\n", 1, "`overrides` must be a mapping"),
        ("overrides:\n  a: 5\n", 2, "tenant entry must be a mapping"),
        ("overrides:\n  a:\n    - ingestion_rate: 1\n", 3, "tenant entry must be a mapping"),
        ("overrides:\n  a: {}\n  b: {}\n  a: {}\n", 4, "duplicate key 'a' (first at line 2)"),
        (
            "overrides:\n  a:\n    ingestion_rate: 1\n    ingestion_rate: 2\n",
            4,
            "duplicate key 'ingestion_rate' (first at line 3)",
        ),
        ("overrides:\n  a:\n    ingestion_rate: !!int abc\n", 3, "not valid YAML"),
    ],
)
def test_parse_errors(text: str, line: int, fragment: str) -> None:
    with pytest.raises(OverridesParseError) as caught:
        parse_overrides(text, source_name="runtime.yaml")
    assert caught.value.line == line
    assert caught.value.source_name == "runtime.yaml"
    assert fragment in caught.value.message
    assert str(caught.value).startswith(f"runtime.yaml:{line}: ")


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n", "~\n"])
def test_empty_documents(text: str) -> None:
    doc = parse_overrides(text)
    assert doc.tenants() == [] and doc.render() == text
    assert validate_overrides(text, CATALOGUE) == []


# Each case: a broken file, the 1-based line of its one problem and a fragment of the message.
VALIDATION_CASES: list[tuple[str, str, int | None, str]] = [
    ("syntax", "overrides:\n  a: {ingestion_rate: 1\n", 3, "not valid YAML"),
    ("two documents", "overrides: {}\n---\n", 2, "second YAML document"),
    ("top level list", "- a\n", 1, "top level must be a mapping"),
    ("overrides scalar", "overrides: all\n", 1, "`overrides` must be a mapping"),
    ("tenant scalar", "overrides:\n  a: 1000\n", 2, "tenant entry must be a mapping"),
    ("duplicate tenant", "overrides:\n  a: {}\n  a: {}\n", 3, "first at line 2"),
    ("typo top level", "overides:\n  a: {}\n", 1, "unknown top-level key 'overides'"),
    ("limit at top level", "ingestion_rate: 5\n", 1, "unknown top-level key 'ingestion_rate'"),
    ("global limits block", "limits:\n  ingestion_rate: 5\n", 1, "unknown top-level key 'limits'"),
    ("comment key top", '"# note": hello\n', 1, "is a key, not a comment"),
    ("comment key tenant", 'overrides:\n  "# team a": {}\n', 2, "is a key, not a comment"),
    ("comment key limit", 'overrides:\n  a:\n    "# why": big\n', 3, "is a key, not a comment"),
    ("tenant with space", "overrides:\n  team a: {}\n", 2, "unsupported character ' '"),
    ("tenant reserved", "overrides:\n  __mimir_cluster: {}\n", 2, "reserved"),
    ("tenant dot-dot", "overrides:\n  '..': {}\n", 2, "unsafe"),
    ("tenant too long", f"overrides:\n  {'a' * 151}: {{}}\n", 2, "at most 150"),
    ("unknown limit", "overrides:\n  a:\n    max_samples_per_query: 1\n", 3, "unknown limit"),
    ("limit typo", "overrides:\n  a:\n    ingestion_rat: 1\n", 3, "unknown limit 'ingestion_rat'"),
    ("int fraction", "overrides:\n  a:\n    max_global_series_per_user: 1.5\n", 3, "truncates"),
    ("int bool", "overrides:\n  a:\n    max_global_series_per_user: true\n", 3, "the boolean"),
    ("int quoted", "overrides:\n  a:\n    max_global_series_per_user: '5'\n", 3, "the string"),
    ("int suffix", "overrides:\n  a:\n    max_global_series_per_user: 1M\n", 3, "the string"),
    ("int inf", "overrides:\n  a:\n    max_global_series_per_user: .inf\n", 3, "integer"),
    ("float string", "overrides:\n  a:\n    ingestion_rate: fast\n", 3, "expected a number"),
    ("float bool", "overrides:\n  a:\n    ingestion_rate: false\n", 3, "expected a number"),
    ("float list", "overrides:\n  a:\n    ingestion_rate: [1]\n", 3, "expected a number"),
    (
        "duration no unit",
        "overrides:\n  a:\n    compactor_blocks_retention_period: 30\n",
        3,
        "'30' is not a duration",
    ),
    (
        "duration words",
        "overrides:\n  a:\n    compactor_blocks_retention_period: 30 days\n",
        3,
        "is not a duration",
    ),
    (
        "duration order",
        "overrides:\n  a:\n    compactor_blocks_retention_period: 30m1h\n",
        3,
        "is not a duration",
    ),
    (
        "duration negative",
        "overrides:\n  a:\n    compactor_blocks_retention_period: -1h\n",
        3,
        "is not a duration",
    ),
    ("negative count", "overrides:\n  a:\n    max_global_series_per_user: -1\n", 3, "negative"),
    ("negative rate", "overrides:\n  a:\n    ingestion_rate: -0.5\n", 3, "negative"),
    ("known int", "overrides:\n  a:\n    max_queriers_per_tenant: 2.5\n", 3, "truncates"),
    ("string map", "overrides:\n  a:\n    ha_cluster_label: {a: 1}\n", 3, "expected a string"),
    ("list scalar", "overrides:\n  a:\n    drop_labels: pod\n", 3, "expected a list"),
    ("map list", "overrides:\n  a:\n    active_series_custom_trackers: [a]\n", 3, "mapping"),
    ("bool int", "overrides:\n  a:\n    accept_ha_samples: 1\n", 3, "expected true or false"),
    ("bool quoted true", "overrides:\n  a:\n    accept_ha_samples: 'true'\n", 3, "true or false"),
]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [case[1:] for case in VALIDATION_CASES],
    ids=[case[0] for case in VALIDATION_CASES],
)
def test_validation_reports_the_problem_and_its_line(
    text: str, line: int | None, fragment: str
) -> None:
    for key in (
        "ha_cluster_label",
        "drop_labels",
        "active_series_custom_trackers",
        "accept_ha_samples",
        "max_queriers_per_tenant",
    ):
        if key in text and CATALOGUE.kind_of(key) is None:
            pytest.skip(f"the catalogue does not know {key}")
    problems = validate_overrides(text, CATALOGUE, source_name="runtime.yaml")
    assert len(problems) == 1, format_problems(problems, "runtime.yaml")
    assert problems[0].line == line
    assert fragment in problems[0].message
    assert problems[0].fix


VALID_VALUES = [
    "ingestion_rate: 50000",
    "ingestion_rate: 2.5",
    "ingestion_rate: 1e5",
    "max_global_series_per_user: 1_500_000",
    "max_global_series_per_user: 1.0e6",  # yaml.v2 accepts an integral float for an int
    "max_global_series_per_user: 0",
    "compactor_blocks_retention_period: 0",
    "compactor_blocks_retention_period: 0s",
    "compactor_blocks_retention_period: 1h30m",
    "compactor_blocks_retention_period: '30d'",
    "compactor_blocks_retention_period: 1y",
    "accept_ha_samples: true",
    "accept_ha_samples: yes",  # YAML 1.1 boolean: Mimir's decoder accepts it
    "ha_cluster_label: 123",  # any scalar is a string to yaml.v2
    "drop_labels: [a, b]",
    "active_series_custom_trackers: {errors: '{__name__=~\"errors.*\"}'}",
]


@pytest.mark.parametrize("line", VALID_VALUES)
def test_valid_values_pass(line: str) -> None:
    key = line.split(":", maxsplit=1)[0]
    if CATALOGUE.kind_of(key) is None:
        pytest.skip(f"the catalogue does not know {key}")
    assert validate_overrides(f"overrides:\n  a:\n    {line}\n", CATALOGUE) == []


def test_every_problem_is_reported_sorted_by_line() -> None:
    text = (
        "overrides:\n"
        "  tenant-a:\n"
        "    ingestion_rate: '50000'\n"  # 3
        "    max_samples_per_query: 5\n"  # 4
        '    "# note": x\n'  # 5
        "    max_global_series_per_user: 1.5\n"  # 6
        "  bad tenant:\n"  # 7
        "    ingestion_rate: 1\n"
        "  tenant-a:\n"  # 9
        "    ingestion_rate: 2\n"
        "limits: {}\n"  # 11
    )
    problems = validate_overrides(text, CATALOGUE, source_name="f.yaml")
    assert [p.line for p in problems] == [3, 4, 5, 6, 7, 9, 11]
    assert problems == sorted(problems)
    unknown = problems[1]
    assert unknown.key_path == "overrides.tenant-a.max_samples_per_query"
    assert unknown.fix == CATALOGUE.suggest("max_samples_per_query")
    assert problems[2].key_path == 'overrides.tenant-a."# note"'


def test_format_problems() -> None:
    problems = [
        Problem(4, "overrides.a.x", "unknown limit 'x'", "did you mean 'y'?"),
        Problem(None, "", "whole file", ""),
        Problem(2, "overrides.a", "bad id", "rename it"),
    ]
    assert format_problems(problems, "runtime.yaml") == (
        "runtime.yaml: whole file\n"
        "runtime.yaml:2: overrides.a: bad id (rename it)\n"
        "runtime.yaml:4: overrides.a.x: unknown limit 'x' (did you mean 'y'?)"
    )


def test_a_rendered_hand_written_file_validates_clean() -> None:
    assert validate_overrides(HAND_WRITTEN, CATALOGUE) == []


def test_public_surface() -> None:
    assert set(overrides_module.__all__) == {
        "OverridesDocument",
        "OverridesEditError",
        "OverridesParseError",
        "OverridesValueError",
        "Problem",
        "current_limits",
        "format_problems",
        "limit_yaml_value",
        "parse_overrides",
        "validate_overrides",
    }


# --- property: render -> parse -> same values, and a clean validation -----------------------

_TENANT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
tenant_ids = st.text(
    alphabet=_TENANT_CHARS + TENANT_ID_SPECIAL_CHARACTERS, min_size=1, max_size=20
).filter(lambda t: tenant_id_problem(t) is None)


def _value_strategy(spec: LimitSpec) -> st.SearchStrategy[float]:
    high = min(spec.max_value, 10 * 365 * 86400.0)
    low = min(spec.min_value, high)
    if spec.type is LimitType.BOOL:
        return st.sampled_from([0.0, 1.0])
    if spec.type is LimitType.DURATION:
        # Durations are written with millisecond precision.
        return st.integers(round(low * 1000), round(high * 1000)).map(lambda ms: ms / 1000)
    if spec.type is LimitType.RATE:
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    return st.integers(math.ceil(low), math.floor(high)).map(float)


@st.composite
def assignments(draw: st.DrawFn) -> list[tuple[str, LimitSpec, float]]:
    tenants = draw(st.lists(tenant_ids, min_size=1, max_size=4, unique=True))
    out = []
    for tenant in tenants:
        names = draw(st.lists(st.sampled_from(sorted(LIMITS)), min_size=1, max_size=4, unique=True))
        for name in names:
            spec = LIMITS[name]
            out.append((tenant, spec, draw(_value_strategy(spec))))
    return out


def _expected(value: float, spec: LimitSpec) -> float:
    rendered = limit_yaml_value(value, spec)
    if isinstance(rendered, bool):
        return 1.0 if rendered else 0.0
    if isinstance(rendered, str):
        return parse_duration(rendered)
    return float(rendered)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    assignments(),
    st.sampled_from(["", "# header\n", "overrides:\n  keep-me:\n    ingestion_rate: 1  # x\n"]),
)
def test_rendered_values_round_trip_and_validate(
    assignment: list[tuple[str, LimitSpec, float]], start: str
) -> None:
    doc = parse_overrides(start)
    for tenant, spec, value in assignment:
        doc.set(tenant, spec.name, value, spec)
    text = doc.render()
    assert validate_overrides(text, CATALOGUE) == [], text

    again = parse_overrides(text)
    assert again.render() == text
    for tenant, spec, value in assignment:
        number = again.number(tenant, spec)
        assert number is not None
        if spec.type is LimitType.DURATION:
            assert number == pytest.approx(value, abs=1e-3)
        else:
            assert number == _expected(value, spec)
    if start.startswith("overrides"):
        assert again.tenants()[0] == "keep-me"

    # The serialiser is stable too: forcing a re-render of the re-parsed text changes nothing.
    tenant, spec, value = assignment[0]
    expected = _expected(value, spec)
    other = 1.0 - expected if spec.type is LimitType.BOOL else expected + 1.0
    assert again.set(tenant, spec.name, other, spec)
    assert again.set(tenant, spec.name, value, spec)
    assert again.render() == text
