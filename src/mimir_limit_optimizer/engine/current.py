"""Which limit is in force: the runtime overrides file wins over what the source reported
(the overrides-exporter's `cortex_limits_overrides`/`cortex_limits_defaults`, or the synthetic
cluster), which wins over the configured and catalogue defaults (applied in recommend)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from mimir_limit_optimizer.engine.usage import FloatArray, Observation


def merge_current(obs: Observation, from_file: Mapping[str, FloatArray]) -> Observation:
    """`obs` with current limits from the overrides file where the file sets them."""
    merged: dict[str, FloatArray] = dict(obs.current)
    for name, values in from_file.items():
        reported = merged.get(name)
        if reported is None:
            merged[name] = values.copy()
        else:
            merged[name] = np.where(np.isfinite(values), values, reported)
    return dataclasses.replace(obs, current=merged)
