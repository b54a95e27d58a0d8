"""Typed view of a limit catalogue file (see data/mimir.yaml for the data itself)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class LimitType(StrEnum):
    """How a limit's value is typed in the runtime overrides file."""

    RATE = "rate"  # float per second (YAML float or int)
    COUNT = "count"  # int
    BYTES = "bytes"  # int, plain bytes
    DURATION = "duration"  # Prometheus duration string, handled in seconds
    BOOL = "bool"


class SignalKind(StrEnum):
    """Where a recommendation for the limit comes from."""

    USAGE = "usage-driven"  # measured usage (+ discards) -> percentile + buffer
    DERIVED = "derived"  # computed from another limit's recommendation (burst from rate)
    DISCARD = "discard-driven"  # only discards reveal a need: raise when they happen
    POLICY = "policy-only"  # no signal; set from tiers / limitOverrides.defaultValue


class ValueKind(StrEnum):
    """YAML value shape of any key Mimir accepts under a tenant (for validation)."""

    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DURATION = "duration"
    STRING = "string"
    LIST = "list"
    MAP = "map"
    ANY = "any"


_KIND_OF_TYPE = MappingProxyType(
    {
        LimitType.RATE: ValueKind.FLOAT,
        LimitType.COUNT: ValueKind.INT,
        LimitType.BYTES: ValueKind.INT,
        LimitType.DURATION: ValueKind.DURATION,
        LimitType.BOOL: ValueKind.BOOL,
    }
)


@dataclass(frozen=True)
class LimitSpec:
    """One managed per-tenant limit. Numbers are in base units: per second, count, bytes,
    seconds for durations, 1.0/0.0 for booleans."""

    name: str
    type: LimitType
    default: float
    unit: str
    signal: SignalKind
    category: str
    description: str
    checked_against: str
    zero_means_unlimited: bool = False
    # PromQL templates returning one series per tenant (`by (user)`). Placeholders:
    # ${sel} extra label matchers (may be empty), ${rate} rate window, ${rf} replication factor.
    usage_query: str | None = None
    discard_query: str | None = None
    discard_reasons: tuple[str, ...] = ()
    derived_from: str | None = None
    derive_factor: float | None = None
    buffer_percent: float = 20.0
    min_value: float = 0.0
    max_value: float = float("inf")
    # False when the measure cannot show the true maximum (per-query averages): never lower.
    may_lower: bool = True
    notes: str = ""
    # When the measure is only an estimate of what the limit counts: one sentence saying how,
    # added to the reasons of every recommendation of the limit.
    estimate: str = ""
    # A second usage measure for tenants the first one has no data for, and the reason shown
    # for those tenants (e.g. active series where the created/removed counters are missing).
    usage_fallback_query: str | None = None
    usage_fallback_reason: str = ""

    @property
    def value_kind(self) -> ValueKind:
        return _KIND_OF_TYPE[self.type]


@dataclass(frozen=True)
class KnownKey:
    """A per-tenant key Mimir accepts but the optimizer does not manage."""

    name: str
    kind: ValueKind


@dataclass(frozen=True)
class Catalogue:
    flavour: str
    checked_against: str
    limits: dict[str, LimitSpec]
    known: dict[str, KnownKey]
    top_level_keys: frozenset[str]
    # Names people use that are not limits of this flavour -> why, and what to use instead.
    not_limits: dict[str, str] = field(default_factory=dict)
    # Deprecated shorthands accepted in config -> real limit name.
    aliases: dict[str, str] = field(default_factory=dict)

    def kind_of(self, key: str) -> ValueKind | None:
        """Value kind of any tenant key Mimir accepts; None for unknown keys."""
        if key in self.limits:
            return self.limits[key].value_kind
        known = self.known.get(key)
        return known.kind if known else None

    def suggest(self, name: str) -> str:
        """A fix for a name that is not a managed limit: the reason it is not one, the
        alias target, or the closest real names."""
        if name in self.not_limits:
            return self.not_limits[name]
        if name in self.aliases:
            return f"use {self.aliases[name]!r} ({name!r} is a deprecated shorthand for it)"
        close = difflib.get_close_matches(name, [*self.limits, *self.known], n=3, cutoff=0.6)
        if close:
            return "did you mean " + " or ".join(repr(c) for c in close) + "?"
        return "run `mlo limits` to list the limits this version knows"
