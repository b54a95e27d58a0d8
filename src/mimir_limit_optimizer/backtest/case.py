"""A backtest case: true demand per tenant over a history and an evaluation window, and the
limits in force during the history. Built from a scenario file (`generate.build_case`) or
from recorded Prometheus data (`recorded.case_from_observations`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from mimir_limit_optimizer.catalogue import LimitSpec
from mimir_limit_optimizer.engine.usage import FloatArray


@dataclass(frozen=True)
class Case:
    """Arrays over N tenants and T timestamps.

    - `timestamps[i]` closes the step `(timestamps[i] - step, timestamps[i]]`; demand is the
      step's average. Points `[0, evaluation_start)` are the history, the rest the evaluation.
    - `demand[limit]`: (N, T) TRUE demand in the limit's unit; NaN where the tenant does not
      exist (or the case says nothing about that limit for the tenant).
    - `current[limit]`: (N,) the limit in force during the history.
    - `cycle`: seconds between recommendation cycles in the evaluation window.
    """

    name: str
    tenants: tuple[str, ...]
    timestamps: FloatArray
    step: float
    evaluation_start: int
    cycle: float
    limits: tuple[LimitSpec, ...]
    demand: Mapping[str, FloatArray]
    current: Mapping[str, FloatArray]
    description: str = ""
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        n, t = len(self.tenants), len(self.timestamps)
        if not 0 < self.evaluation_start < t:
            raise ValueError(
                f"{self.name}: the evaluation must start inside the timestamps (1..{t - 1}), "
                f"got {self.evaluation_start}"
            )
        for spec in self.limits:
            if self.demand[spec.name].shape != (n, t):
                raise ValueError(f"{self.name}: demand of {spec.name} is not ({n}, {t})")
            if self.current[spec.name].shape != (n,):
                raise ValueError(f"{self.name}: current {spec.name} is not ({n},)")

    @property
    def history_end(self) -> float:
        """The time of the first recommendation cycle: the last history timestamp."""
        return float(self.timestamps[self.evaluation_start - 1])

    def cycle_times(self) -> FloatArray:
        """Times of the recommendation cycles: from the end of the history, every `cycle`,
        while the evaluation window lasts."""
        span = float(self.timestamps[-1]) - self.history_end
        count = max(1, int(np.ceil(span / self.cycle - 1e-9)))
        times: FloatArray = self.history_end + self.cycle * np.arange(count, dtype=np.float64)
        return times
