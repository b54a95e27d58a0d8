"""What a source hands the engine: usage per limit as tenant x time arrays.

Everything past the source sees numpy arrays, never JSON or PromQL. Arrays may be float32 or
float64; the engine computes in float32. A source that streams hands over `LazyArrays`: each
limit's array is produced when the engine asks for it and dropped when the engine is done with
it, so a pass over 100,000 tenants never holds every limit's (N, T) array at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
# float32 or float64: the engine computes in float32 after the source boundary.
AnyFloatArray = npt.NDArray[np.floating[Any]]


class LazyArrays(Mapping[str, AnyFloatArray]):
    """A read-only mapping whose arrays are produced on access by `load(name)` and never
    cached: the caller's reference is the only one, so memory is freed as soon as the engine
    moves on to the next limit. Every access loads again (the engine reads each limit once).
    An array that `load` returns and nothing else holds is the engine's to reuse as working
    memory (demand is written in place of the discards); one that `load` also keeps, or a
    view of another array, is only read."""

    def __init__(
        self,
        names: Sequence[str],
        load: Callable[[str], AnyFloatArray],
        *,
        shape: tuple[int, int],
    ) -> None:
        self._names = tuple(dict.fromkeys(names))
        self._load = load
        self.shape = shape

    def __getitem__(self, name: str) -> AnyFloatArray:
        if name not in self._names:
            raise KeyError(name)
        array = self._load(name)
        if array.shape != self.shape:
            raise ValueError(f"{name}: expected shape {self.shape}, got {array.shape}")
        return array

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@dataclass(frozen=True)
class Observation:
    """Usage of N tenants over T timestamps, and their current limits.

    - `usage[limit]`: (N, T) accepted usage in the limit's base unit (samples/s, series, ...);
      NaN where the tenant had no data at that time. Limits sharing a signal may share arrays.
      float32 or float64; a `LazyArrays` when the source streams.
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
    usage: Mapping[str, AnyFloatArray]
    discards: Mapping[str, AnyFloatArray] = field(default_factory=dict)
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
        for arrays in (self.usage, self.discards):
            if isinstance(arrays, LazyArrays):  # checked on each load; loading now would
                if arrays.shape != (n, t):  # defeat the streaming
                    raise ValueError(f"expected shape {(n, t)}, got {arrays.shape}")
                continue
            for name, array in arrays.items():
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
