"""Tenant ids follow dskit's `tenant.ValidTenantID` plus Mimir's reserved `__mimir_cluster`;
include/skip matching works with globs and full-match regexes, skip always wins, and an empty
include list selects everyone; the tier mapping picks the most specific pattern, whatever the
order it was written in."""

from __future__ import annotations

import numpy as np
import pytest

from mimir_limit_optimizer.engine.tenants import (
    MAX_TENANT_ID_LENGTH,
    TenantMatcher,
    TenantPatternError,
    first_match,
    tenant_id_problem,
)


@pytest.mark.parametrize(
    "tenant",
    [
        "tenant-a",
        "0",
        "*",  # a literal id in Mimir, not a wildcard
        "Team_1.prod",
        "!-_.*'()",
        "a" * MAX_TENANT_ID_LENGTH,
        "...",  # only '.' and '..' are unsafe
        "__mimir_cluster_",
    ],
)
def test_valid_tenant_ids(tenant: str) -> None:
    assert tenant_id_problem(tenant) is None


@pytest.mark.parametrize(
    ("tenant", "fragment"),
    [
        ("", "empty tenant id"),
        ("team a", "unsupported character ' ' at position 4"),
        ("a/b", "unsupported character '/'"),
        ("a|b", "unsupported character '|'"),  # the multi-tenant query separator
        ("a:b", "unsupported character ':'"),  # the subtenant separator
        ("tenant-é", "unsupported character 'é'"),
        ("a" * (MAX_TENANT_ID_LENGTH + 1), "151 characters long: Mimir allows at most 150"),
        (".", "unsafe"),
        ("..", "unsafe"),
        ("__mimir_cluster", "reserved"),
    ],
)
def test_invalid_tenant_ids(tenant: str, fragment: str) -> None:
    problem = tenant_id_problem(tenant)
    assert problem is not None
    assert fragment in problem


def test_bad_characters_are_reported_before_length() -> None:
    # dskit checks characters first: a long id with a space is reported for the space.
    problem = tenant_id_problem(" " * 200)
    assert problem is not None and "unsupported character" in problem


TENANTS = ["team-a-prod", "team-a-dev", "team-b-prod", "internal", "x"]


@pytest.mark.parametrize(
    ("include", "skip", "use_regex", "expected"),
    [
        ([], [], False, TENANTS),
        (["team-*"], [], False, ["team-a-prod", "team-a-dev", "team-b-prod"]),
        (["*-prod"], [], False, ["team-a-prod", "team-b-prod"]),
        (["team-?-dev"], [], False, ["team-a-dev"]),
        (["team-[ab]-prod"], [], False, ["team-a-prod", "team-b-prod"]),
        ([], ["internal"], False, ["team-a-prod", "team-a-dev", "team-b-prod", "x"]),
        (["team-*"], ["*-dev"], False, ["team-a-prod", "team-b-prod"]),
        (["internal"], ["internal"], False, []),  # skip wins over an exact include
        (["TEAM-*"], [], False, []),  # case-sensitive, like tenant ids
        ([r"team-[a-z]-prod"], [], True, ["team-a-prod", "team-b-prod"]),
        ([r"team"], [], True, []),  # regexes match the whole id, not a substring
        ([r"team-.*"], [r".*-dev"], True, ["team-a-prod", "team-b-prod"]),
        ([r"x|internal"], [], True, ["internal", "x"]),
    ],
)
def test_matcher(include: list[str], skip: list[str], use_regex: bool, expected: list[str]) -> None:
    matcher = TenantMatcher(include, skip, use_regex=use_regex)
    assert [t for t in TENANTS if matcher.matches(t)] == expected
    mask = matcher.select(TENANTS)
    assert mask.dtype == np.bool_ and mask.shape == (len(TENANTS),)
    assert [t for t, keep in zip(TENANTS, mask, strict=True) if keep] == expected


def test_select_of_no_tenants_is_an_empty_mask() -> None:
    assert TenantMatcher(["*"]).select([]).shape == (0,)


def test_invalid_regex_names_the_pattern() -> None:
    with pytest.raises(TenantPatternError, match=r"'team-\('"):
        TenantMatcher(["team-("], use_regex=True)


TIERS = {"*": "default", "team-*": "team", "team-a-*": "team-a", "team-*-prod": "prod"}


@pytest.mark.parametrize(
    ("tenant", "mapping", "expected"),
    [
        ("unknown", TIERS, "default"),  # "*" is the catch-all
        ("team-b-dev", TIERS, "team"),
        ("team-a-dev", TIERS, "team-a"),  # longer literal prefix beats "team-*"
        ("team-a-prod", TIERS, "team-a"),  # prefix decides before literal count
        ("team-b-prod", TIERS, "prod"),  # same prefix as "team-*", more literal characters
        ("team-a-prod", {**TIERS, "team-a-prod": "exact"}, "exact"),
        ("team-a-prod", {"team-a-prod": "exact", **TIERS}, "exact"),
        ("gold", {"*": "default", "g*": "g", "gold": "exact"}, "exact"),
        ("x", {"a*": "a"}, None),
        ("x", {}, None),
        # Equal specificity: the first pattern in the mapping wins.
        ("ab", {"a?": "first", "a*": "second"}, "first"),
        ("ab", {"a*": "first", "a?": "second"}, "first"),
    ],
)
def test_first_match_precedence(tenant: str, mapping: dict[str, str], expected: str | None) -> None:
    assert first_match(tenant, mapping) == expected


def test_first_match_does_not_depend_on_mapping_order() -> None:
    reversed_tiers = dict(reversed(list(TIERS.items())))
    for tenant in ["team-a-dev", "team-b-prod", "other", "team-c-dev"]:
        assert first_match(tenant, TIERS) == first_match(tenant, reversed_tiers)
