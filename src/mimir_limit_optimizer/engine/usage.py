"""What a source hands the engine: usage per limit as tenant x time arrays.

Everything past the source sees numpy arrays, never JSON or PromQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
# float32 or float64: the engine computes in float32 after the source boundary.
AnyFloatArray = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True)
class Observation:
    """Usage of N tenants over T timestamps, and their current limits.

    - `usage[limit]`: (N, T) accepted usage in the limit's base unit (samples/s, series, ...);
      NaN where the tenant had no data at that time. Limits sharing a signal may share arrays.
    - `discards[limit]`: (N, T) rate of samples/series rejected for the limit's discard reasons
      (demand the limit hid); absent when the limit has no discard signal.
    - `current[limit]`: (N,) the limit in force per tenant; NaN when unknown.
    - `unavailable[limit]`: why a limit's signal could not be collected (then the engine
      reports every tenant "undefined" for that limit with this reason).
    - `tenant_problems[limit][tenant]`: why that tenant's data for the limit is incomplete
      (e.g. invalid values dropped, engine/validity.py); the engine makes no recommendation
      for it, with this reason.
    """

    tenants: tuple[str, ...]
    timestamps: FloatArray  # (T,) unix seconds, ascending, evenly spaced by `step`
    step: float  # seconds
    usage: Mapping[str, FloatArray]
    discards: Mapping[str, FloatArray] = field(default_factory=dict)
    current: Mapping[str, FloatArray] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)
    # Where each current value came from: "tenant override (overrides.yaml)", ... (see
    # engine/current.py); "" where unknown.
    current_origin: Mapping[str, list[str]] = field(default_factory=dict)
    tenant_problems: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # (N,) True where `usage[limit]` came from the catalogue's fallback measure
    # (LimitSpec.usage_fallback_query) because the first had no data for the tenant.
    usage_fallback: Mapping[str, npt.NDArray[np.bool_]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, t = len(self.tenants), len(self.timestamps)
        for name, array in (*self.usage.items(), *self.discards.items()):
            if array.shape != (n, t):
                raise ValueError(f"{name}: expected shape {(n, t)}, got {array.shape}")
        for name, array in self.current.items():
            if array.shape != (n,):
                raise ValueError(f"current {name}: expected shape {(n,)}, got {array.shape}")

    @property
    def window(self) -> tuple[float, float]:
        if len(self.timestamps) == 0:
            return (0.0, 0.0)
        return (float(self.timestamps[0]), float(self.timestamps[-1]))
