"""Tenant ids: Mimir's validity rule, include/skip selection and tier-mapping lookup.

The id rule is dskit's `tenant.ValidTenantID` (grafana/dskit `tenant/tenant.go`): every byte
in `[0-9a-zA-Z]` or one of ``!-_.*'()``, at most `MaxTenantIDLength` = 150 bytes, and not
`.` or `..`. Mimir's docs (`docs/sources/mimir/configure/about-tenant-ids.md`) add
`__mimir_cluster`, a name Mimir uses internally. An empty id never reaches a tenant: dskit's
`user.ExtractOrgID` rejects a request without `X-Scope-OrgID`.

Mimir does not validate the tenant keys of a runtime overrides file; an entry with an invalid
id is accepted and simply never applies, which is why the validator reports it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

MAX_TENANT_ID_LENGTH = 150  # dskit tenant.MaxTenantIDLength (bytes; valid ids are ASCII)
TENANT_ID_SPECIAL_CHARACTERS = "!-_.*'()"
RESERVED_TENANT_IDS = frozenset({".", "..", "__mimir_cluster"})

_VALID_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + TENANT_ID_SPECIAL_CHARACTERS
)
_GLOB_WILDCARDS = "*?["

V = TypeVar("V")


def tenant_id_problem(tenant: str) -> str | None:
    """Why Mimir would never serve `tenant`, or None when the id is valid.

    Checked in dskit's order: characters first, then length, then reserved names."""
    if tenant == "":
        return "empty tenant id: Mimir rejects requests without an X-Scope-OrgID"
    for position, char in enumerate(tenant):
        if char not in _VALID_CHARACTERS:
            return (
                f"tenant id {tenant!r} contains unsupported character {char!r} at position "
                f"{position}: Mimir allows only 0-9, a-z, A-Z and {TENANT_ID_SPECIAL_CHARACTERS}"
            )
    if len(tenant) > MAX_TENANT_ID_LENGTH:
        return (
            f"tenant id is {len(tenant)} characters long: Mimir allows at most "
            f"{MAX_TENANT_ID_LENGTH}"
        )
    if tenant in (".", ".."):
        return f"tenant id {tenant!r} is unsafe: Mimir rejects '.' and '..'"
    if tenant in RESERVED_TENANT_IDS:
        return f"tenant id {tenant!r} is reserved: Mimir uses it internally"
    return None


class TenantPatternError(ValueError):
    """A tenant include/skip pattern that does not compile."""


def _compile(pattern: str, *, use_regex: bool) -> re.Pattern[str]:
    source = pattern if use_regex else fnmatch.translate(pattern)
    try:
        return re.compile(source)
    except re.error as exc:
        kind = "regular expression" if use_regex else "glob"
        raise TenantPatternError(
            f"tenant pattern {pattern!r} is not a valid {kind}: {exc}"
        ) from exc


class TenantMatcher:
    """Selects tenants by include and skip patterns.

    Patterns are globs (`fnmatch.fnmatchcase`: `*`, `?`, `[...]`, case-sensitive) or, with
    `use_regex`, regular expressions that must match the WHOLE id (`re.fullmatch`). An empty
    include list selects every tenant; a tenant matching any skip pattern is never selected,
    even when an include pattern names it exactly (skip wins).
    """

    def __init__(
        self, include: Iterable[str] = (), skip: Iterable[str] = (), *, use_regex: bool = False
    ) -> None:
        self.include: tuple[str, ...] = tuple(include)
        self.skip: tuple[str, ...] = tuple(skip)
        self.use_regex = use_regex
        self._include = [_compile(p, use_regex=use_regex) for p in self.include]
        self._skip = [_compile(p, use_regex=use_regex) for p in self.skip]

    def __repr__(self) -> str:
        return (
            f"TenantMatcher(include={self.include!r}, skip={self.skip!r}, "
            f"use_regex={self.use_regex!r})"
        )

    def matches(self, tenant: str) -> bool:
        if any(p.fullmatch(tenant) for p in self._skip):
            return False
        return not self._include or any(p.fullmatch(tenant) for p in self._include)

    def select(self, tenants: Sequence[str]) -> npt.NDArray[np.bool_]:
        """Boolean mask over `tenants` (shape (N,)), aligned with the engine's tenant axis."""
        return np.fromiter((self.matches(t) for t in tenants), dtype=np.bool_, count=len(tenants))


def _specificity(pattern: str) -> tuple[int, int, int]:
    """Sort key, larger = more specific: (no wildcard, literal prefix length, literal chars)."""
    wildcard_at = [pattern.index(c) for c in _GLOB_WILDCARDS if c in pattern]
    if not wildcard_at:
        return (1, len(pattern), len(pattern))
    literal = sum(1 for c in pattern if c not in _GLOB_WILDCARDS)
    return (0, min(wildcard_at), literal)


def first_match(tenant: str, mapping: Mapping[str, V]) -> V | None:
    """Value of the most specific glob in `mapping` that matches `tenant` (for
    tenantTierMapping); None when nothing matches.

    Precedence, first difference decides:
    1. a pattern without wildcards (`*`, `?`, `[`) that equals the tenant beats any glob;
    2. the longer literal prefix before the first wildcard (`team-a-*` beats `team-*`,
       which beats `*`, the usual catch-all);
    3. more literal characters overall (`team-*-prod` beats `team-*`);
    4. the pattern that comes first in the mapping.
    """
    best: tuple[tuple[int, int, int], int] | None = None
    best_value: V | None = None
    for order, (pattern, value) in enumerate(mapping.items()):
        if not fnmatch.fnmatchcase(tenant, pattern):
            continue
        rank = (_specificity(pattern), -order)
        if best is None or rank > best:
            best, best_value = rank, value
    return best_value
