"""Plain views the read model builds from engine results: one limit of a tenant, chart
series (downsampled), cycle totals."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mimir_limit_optimizer.catalogue import SignalKind
from mimir_limit_optimizer.engine.results import Reason, Recommendations, render_value
from mimir_limit_optimizer.web.ui.model import LimitView

MAX_CHART_POINTS = 600


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def totals(recs: Recommendations) -> tuple[float, float, float]:
    """Total demand and total limit of the ingestion rate (samples/s); throttled tenants are
    counted from the tenant index."""
    result = recs.results.get("ingestion_rate")
    throttled = 0.0
    if result is None:
        return 0.0, 0.0, throttled
    demand = float(np.nansum(np.asarray(result.demand, dtype=np.float64)))
    limit = float(np.nansum(np.asarray(result.current, dtype=np.float64)))
    return demand, limit, throttled


def limit_view(result: Any, i: int, target: str, planned: Mapping[str, Any] | None) -> LimitView:
    """One limit of a tenant; `planned` is its item of the cycle's stored plan (target, next
    step and why it is held), when there is one."""
    spec = result.spec
    flags = Reason(int(result.flags[i]))
    current = float(result.current[i])
    nxt = float(result.recommended[i])
    estimate = nxt
    demand = float(result.demand[i])
    if (Reason.RAISE_LIMITED in flags or Reason.LOWER_LIMITED in flags) and math.isfinite(demand):
        # Where it is heading before the per-cycle step cap: demand + buffer, within min/max.
        estimate = min(
            max(demand * (1 + float(result.buffer_percent[i]) / 100), result.minimum),
            result.maximum_allowed,
        )
    if planned is not None and isinstance(planned.get("target"), int | float):
        estimate = float(planned["target"])
    origin = "default (no override)" if Reason.CURRENT_DEFAULT in flags else f"override in {target}"
    held = planned.get("held") if planned is not None else None
    confidence = float(result.confidence[i])
    return LimitView(
        limit=spec.name,
        unit=spec.unit,
        usage_driven=spec.signal is SignalKind.USAGE,
        current=render_value(current, spec),
        current_value=_finite(current),
        origin=origin,
        target=render_value(estimate, spec),
        next_step=render_value(nxt, spec),
        next_value=_finite(nxt),
        status=result.status_of(i).value,
        reasons=tuple(result.reasons(i)),
        confidence=confidence if math.isfinite(confidence) else None,
        held=str(held) if held else None,
    )


def downsample(x: Any, *arrays: Any) -> tuple[Any, ...]:
    """At most MAX_CHART_POINTS points: the maximum of each bucket (peaks stay visible)."""
    n = len(x)
    if n <= MAX_CHART_POINTS:
        return (x, *arrays)
    size = -(-n // MAX_CHART_POINTS)
    cut = n - n % size if n % size else n
    out = [x[:cut:size]]
    for a in arrays:
        body = a[:cut].reshape(-1, size)
        with np.errstate(all="ignore"):
            peak = np.where(
                np.isnan(body).all(axis=1),
                np.nan,
                np.nanmax(np.where(np.isnan(body), -np.inf, body), axis=1),
            )
        out.append(peak)
    return tuple(out)


def plain(values: Any) -> tuple[float | None, ...]:
    return tuple(None if not math.isfinite(v) else float(v) for v in np.asarray(values).tolist())
