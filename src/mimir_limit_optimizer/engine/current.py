"""Which limit is in force for each tenant, and where that value comes from.

Mimir resolves a tenant's limit in this order, and so does `resolve_current`:

1. **Tenant override**: the runtime files, merged as Mimir merges them. `-runtime-config.file`
   takes a comma-separated list; dskit's `runtimeconfig` manager decodes each file to a map and
   merges them left to right, map by map, so a later file wins per tenant per limit and a limit
   only an earlier file sets stays in force. A key written with no value (null) keeps the
   default: Mimir copies the `limits:` defaults into the tenant before decoding its entry, and
   yaml.v3 leaves a field untouched on null; in a list, a later null therefore also hides an
   earlier file's value. When no file is known, the overrides exporter's
   `cortex_limits_overrides` (or another source's report) stands in.
2. **Cluster default**: the cluster's own `limits:` block (Mimir's `/config`, a copy of its
   config file, `cortex_limits_defaults`, or `limitOverrides.defaultValue` that the operator
   declares), in that order of trust.
3. **Flag default**: Mimir's built-in default (the catalogue's). Only a guess: a cluster whose
   config sets `request_rate: 100` is not unlimited. `resolve_current` leaves these NaN; the
   recommendation pass fills them in and says that the cluster default is unknown.

Pure: documents and defaults are read by the caller (sources/current_limits.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.catalogue.model import LimitSpec
from mimir_limit_optimizer.engine.overrides import OverridesDocument
from mimir_limit_optimizer.engine.usage import FloatArray, Observation

__all__ = [
    "ClusterDefaults",
    "Origin",
    "merge_current",
    "merged_overrides",
    "origin_kind",
    "origin_text",
    "resolve_current",
]


class Origin(StrEnum):
    """Kind of source of a current value (the first words of every origin text)."""

    TENANT = "tenant override"
    CLUSTER = "cluster default"
    FLAG = "flag default"


def origin_text(kind: Origin, where: str) -> str:
    """`tenant override (overrides.yaml)`: the kind, then where it was read."""
    return f"{kind.value} ({where})" if where else kind.value


def origin_kind(text: str) -> Origin | None:
    """The kind an origin text starts with; None for "" (unknown) or a foreign text."""
    for kind in Origin:
        if text.startswith(kind.value):
            return kind
    return None


@dataclass(frozen=True)
class ClusterDefaults:
    """The cluster's `limits:` block, as far as one source knows it.

    `values`: limit name -> value in base units (seconds, 1.0/0.0 for booleans), only the
    limits this source knows. `where`: how origins name the source ("Mimir /config")."""

    values: Mapping[str, float]
    where: str


def merged_overrides(
    documents: Sequence[OverridesDocument], tenants: Sequence[str], specs: Sequence[LimitSpec]
) -> tuple[dict[str, FloatArray], dict[str, list[str]]]:
    """Per limit, what the merged runtime files set for each tenant (NaN: not set, or null)
    and the origin text naming the file that decided it ("" when none did).

    `documents` are in `-runtime-config.file` order; the last one that has the key (null
    included) decides. Cost: the files' own entries, not tenants x files. Raises
    OverridesValueError on a value of a type Mimir rejects."""
    row_of = {tenant: i for i, tenant in enumerate(tenants)}
    values = {spec.name: np.full(len(tenants), np.nan, dtype=np.float64) for spec in specs}
    origins = {spec.name: [""] * len(tenants) for spec in specs}
    for document in documents:  # left to right: a later file overwrites, key by key
        where = origin_text(Origin.TENANT, document.source_name)
        for tenant in document.tenants():
            row = row_of.get(tenant)
            if row is None:
                continue
            for spec in specs:
                if not document.sets(tenant, spec.name):
                    continue
                number = document.number(tenant, spec)
                found = number is not None
                values[spec.name][row] = number if found else np.nan
                origins[spec.name][row] = where if found else ""
    return values, origins


def _kinds(texts: npt.NDArray[np.object_]) -> npt.NDArray[np.int8]:
    """Per origin text: 0 none or foreign, 1 tenant override, 2 cluster default, 3 flag
    default. A source uses a few distinct texts: each is classified once, then compared in C."""
    code = {Origin.TENANT: 1, Origin.CLUSTER: 2, Origin.FLAG: 3}
    out = np.zeros(len(texts), dtype=np.int8)
    for text in set(texts.tolist()):
        kind = origin_kind(text)
        if kind is not None:
            out[texts == text] = code[kind]
    return out


def resolve_current(
    obs: Observation,
    specs: Sequence[LimitSpec],
    *,
    documents: Sequence[OverridesDocument] = (),
    cluster_defaults: Sequence[ClusterDefaults] = (),
    declared_defaults: Mapping[str, float] | None = None,
) -> Observation:
    """`obs` with `current[limit]` and `current_origin[limit]` resolved for every spec.

    Precedence per tenant and limit: the merged runtime `documents`, then a tenant override
    the source reported (`cortex_limits_overrides`: it may come from a runtime file the
    optimizer was not given; a value without an origin counts as one), then the cluster
    defaults in the order given (each source only for the limits it knows), then a default the
    source reported (`cortex_limits_defaults`), then `declared_defaults`
    (limitOverrides.defaultValue). What is still unknown stays NaN with origin ""."""
    n = len(obs.tenants)
    current: dict[str, FloatArray] = dict(obs.current)
    origins: dict[str, list[str]] = {k: list(v) for k, v in obs.current_origin.items()}
    from_files, file_origins = (
        merged_overrides(documents, obs.tenants, specs) if documents else ({}, {})
    )
    declared = declared_defaults or {}
    for spec in specs:
        name = spec.name
        told = obs.current.get(name)
        told = np.full(n, np.nan) if told is None else np.asarray(told, dtype=np.float64)
        told_origin = np.asarray(obs.current_origin.get(name, [""] * n), dtype=object)
        kinds = _kinds(told_origin)
        known = np.isfinite(told)
        told_override = known & ((kinds == 1) | (kinds == 0))
        told_default = known & (kinds == 2)

        values = np.full(n, np.nan, dtype=np.float64)
        origin = np.full(n, "", dtype=object)
        # Lowest precedence first; each step overwrites where it applies.
        if name in declared:
            values[:] = float(declared[name])
            origin[:] = origin_text(Origin.CLUSTER, "limitOverrides.defaultValue")
        values = np.where(told_default, told, values)
        origin = np.where(told_default, told_origin, origin)
        for source in cluster_defaults:  # the first source that knows the limit
            if name in source.values:
                values[:] = float(source.values[name])
                origin[:] = origin_text(Origin.CLUSTER, source.where)
                break
        values = np.where(told_override, told, values)
        reported_text = told_origin.copy()
        reported_text[reported_text == ""] = origin_text(Origin.TENANT, "reported")
        origin = np.where(told_override, reported_text, origin)
        file_values = from_files.get(name)
        if file_values is not None:
            in_file = np.isfinite(file_values)
            values = np.where(in_file, file_values, values)
            origin = np.where(in_file, np.asarray(file_origins[name], dtype=object), origin)
        current[name] = values
        origins[name] = origin.tolist()  # the texts themselves (an object array of str)
    return dataclasses.replace(obs, current=current, current_origin=origins)


def merge_current(obs: Observation, from_file: Mapping[str, FloatArray]) -> Observation:
    """`obs` with current limits from the overrides file where the file sets them (kept for
    callers that have one file and no origins; `resolve_current` is the full resolution)."""
    merged: dict[str, FloatArray] = dict(obs.current)
    for name, values in from_file.items():
        reported = merged.get(name)
        if reported is None:
            merged[name] = values.copy()
        else:
            merged[name] = np.where(np.isfinite(values), values, reported)
    return dataclasses.replace(obs, current=merged)
