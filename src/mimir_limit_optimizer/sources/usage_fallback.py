"""Fill the tenants a limit's usage query has no data for from the catalogue's fallback
query (`usage_fallback`, e.g. active series where the created/removed counters are missing),
and say which tenants were filled (the engine then gives the fallback's reason)."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine.usage import AnyFloatArray

FALLBACK_KIND = "usage_fallback"


def apply_fallbacks(
    usage: MutableMapping[str, AnyFloatArray], fallbacks: Mapping[str, AnyFloatArray]
) -> dict[str, npt.NDArray[np.bool_]]:
    """Per limit with a fallback: replace the rows of `usage[limit]` that hold no value at all
    with the fallback's rows where those hold data; returns the (N,) mask of filled tenants.
    A limit whose usage query failed stays as it is (its failure is reported, not hidden)."""
    filled: dict[str, npt.NDArray[np.bool_]] = {}
    for limit, fallback in fallbacks.items():
        primary = usage.get(limit)
        if primary is None:
            continue
        missing: npt.NDArray[np.bool_] = np.asarray(
            ~np.isfinite(primary).any(axis=1) & np.isfinite(fallback).any(axis=1)
        )
        if missing.any():
            merged = primary.copy()  # the primary array may be shared with another limit
            merged[missing] = fallback[missing]
            usage[limit] = merged
            filled[limit] = missing
    return filled
