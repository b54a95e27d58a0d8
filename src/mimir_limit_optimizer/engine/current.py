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
    included) decides. Raises OverridesValueError on a value of a type Mimir rejects."""
    values: dict[str, FloatArray] = {}
    origins: dict[str, list[str]] = {}
    for spec in specs:
        column = np.full(len(tenants), np.nan, dtype=np.float64)
        origin = [""] * len(tenants)
        for index, tenant in enumerate(tenants):
            for document in reversed(documents):
                if not document.sets(tenant, spec.name):
                    continue
                number = document.number(tenant, spec)
                if number is not None:
                    column[index] = number
                    origin[index] = origin_text(Origin.TENANT, document.source_name)
                break
        values[spec.name] = column
        origins[spec.name] = origin
    return values, origins


def _reported_kind(text: str) -> Origin | None:
    """The kind of an origin a source reported; None when it says nothing (a value without
    an origin is then taken as a tenant override, the conservative reading)."""
    return origin_kind(text) if text else None


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
    optimizer was not given), then the cluster
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
        reported = obs.current.get(name)
        reported_origin = obs.current_origin.get(name, [""] * n)
        values = np.full(n, np.nan, dtype=np.float64)
        origin = [""] * n
        file_values = from_files.get(name)
        file_origin = file_origins.get(name, [""] * n)
        cluster: tuple[float, str] | None = None
        for source in cluster_defaults:
            if name in source.values:
                cluster = (float(source.values[name]), origin_text(Origin.CLUSTER, source.where))
                break
        for i in range(n):
            if file_values is not None and np.isfinite(file_values[i]):
                values[i], origin[i] = file_values[i], file_origin[i]
                continue
            told = float(reported[i]) if reported is not None else float("nan")
            kind = _reported_kind(reported_origin[i]) if np.isfinite(told) else None
            if np.isfinite(told) and kind in (Origin.TENANT, None):
                values[i] = told
                origin[i] = reported_origin[i] or origin_text(Origin.TENANT, "reported")
            elif cluster is not None:
                values[i], origin[i] = cluster
            elif np.isfinite(told) and kind is Origin.CLUSTER:
                values[i], origin[i] = told, reported_origin[i]
            elif name in declared:
                values[i] = declared[name]
                origin[i] = origin_text(Origin.CLUSTER, "limitOverrides.defaultValue")
        current[name] = values
        origins[name] = origin
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
