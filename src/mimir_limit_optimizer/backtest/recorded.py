"""A case from recorded history: two Observations a source collected from a real Prometheus,
one over the history window and one over the window that followed it.

Method (docs/benchmarks.md, "Quality backtest"):
- true demand = accepted usage + discards, as recorded: where Mimir throttled and counted the
  discards, this is what the tenant sent; where a limit hid demand without a discard signal,
  the recorded demand is a lower bound (every strategy is scored against the same bound);
- the limits in force during the history are the ones the overrides exporter reported at the
  end of the history window (`cortex_limits_overrides`, else `cortex_limits_defaults`, else
  Mimir's default from the catalogue), taken as constant over the history;
- the following window is the evaluation: every strategy is replayed over it cycle by cycle,
  as for a scenario file.
Tenants present in only one window are kept; they have no demand (NaN) in the other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mimir_limit_optimizer.backtest.case import Case
from mimir_limit_optimizer.catalogue import LimitSpec
from mimir_limit_optimizer.engine.usage import FloatArray, Observation


class RecordedDataError(ValueError):
    """The recorded windows cannot form a case (no tenants, no points, misaligned steps)."""


def case_from_observations(
    history: Observation,
    evaluation: Observation,
    limits: Sequence[LimitSpec],
    *,
    cycle: float,
    name: str = "recorded",
    description: str = "",
) -> Case:
    if history.step != evaluation.step:
        raise RecordedDataError(
            f"history and evaluation steps differ ({history.step:g}s, {evaluation.step:g}s)"
        )
    if len(history.timestamps) < 2 or len(evaluation.timestamps) < 1:
        raise RecordedDataError(
            "the history needs at least 2 points and the evaluation 1: widen the windows"
        )
    if evaluation.timestamps[0] <= history.timestamps[-1]:
        raise RecordedDataError("the evaluation window must start after the history window")
    tenants = tuple(sorted(set(history.tenants) | set(evaluation.tenants)))
    if not tenants:
        raise RecordedDataError(
            "no tenant in the recorded data (no series with a `user` label): check the URL, "
            "selectors and that Mimir is scraped"
        )
    timestamps = np.concatenate([history.timestamps, evaluation.timestamps])
    split = len(history.timestamps)
    n, t = len(tenants), len(timestamps)
    demand: dict[str, FloatArray] = {}
    current: dict[str, FloatArray] = {}
    notes: list[str] = []
    for spec in limits:
        full = np.full((n, t), np.nan)
        for part, columns in ((history, slice(0, split)), (evaluation, slice(split, t))):
            rows = _rows(tenants, part.tenants)
            values = _demand(part, spec.name)
            if values is None:
                why = part.unavailable.get(spec.name, "no data")
                notes.append(f"{spec.name}: {why}")
                continue
            full[rows, columns] = values
        demand[spec.name] = full
        in_force = np.full(n, np.nan)
        recorded = history.current.get(spec.name)
        if recorded is not None:
            in_force[_rows(tenants, history.tenants)] = recorded
        in_force[~np.isfinite(in_force)] = spec.default
        current[spec.name] = in_force
    return Case(
        name=name,
        description=description,
        tenants=tenants,
        timestamps=timestamps,
        step=history.step,
        evaluation_start=split,
        cycle=cycle,
        limits=tuple(limits),
        demand=demand,
        current=current,
        notes=tuple(notes),
    )


def _rows(tenants: tuple[str, ...], names: tuple[str, ...]) -> FloatArray:
    index = {tenant: i for i, tenant in enumerate(tenants)}
    rows: FloatArray = np.array([index[name] for name in names], dtype=np.int64)
    return rows


def _demand(obs: Observation, limit: str) -> FloatArray | None:
    """Accepted + discarded; missing discard points count as 0, missing usage stays NaN."""
    found = obs.usage.get(limit)
    if found is None:
        return None
    usage = np.asarray(found, dtype=np.float64)  # sources may hand float32
    discards = obs.discards.get(limit)
    if discards is None:
        return usage
    summed: FloatArray = usage + np.nan_to_num(np.maximum(discards, 0.0))
    return summed
