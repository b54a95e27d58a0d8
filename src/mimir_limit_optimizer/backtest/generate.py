"""Scenario -> Case: the true demand arrays a scenario file describes.

Deterministic: every (tenant entry, replica, limit) draws from its own numpy Generator seeded
with (scenario seed, entry index, replica, limit name), so adding a tenant to a file leaves the
others' demand unchanged. No clock: time comes from the scenario's `start`.

Demand of one tenant for one limit, at the end of each step:
    base x spread x (1 + daily x cos(hour - peakHour)) x (1 - weekly on weekends)
         x (1 + growth) ** days-since-its-start x max(0.05, 1 + noise x z)
         x bursts x spikes x month-end x dormancy
NaN before the tenant's `start`; rounded to integers for count limits.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from mimir_limit_optimizer.backtest.case import Case
from mimir_limit_optimizer.backtest.scenario import Demand, Scenario, tenant_names
from mimir_limit_optimizer.catalogue import Catalogue, LimitType
from mimir_limit_optimizer.engine.postprocess import round_readable
from mimir_limit_optimizer.engine.usage import FloatArray

DAY = 86400.0
HOUR = 3600.0


def build_case(scenario: Scenario, catalogue: Catalogue) -> Case:
    history, evaluation = scenario.points
    step = float(scenario.step)
    origin = scenario.start.timestamp()
    timestamps = origin + step * np.arange(1, history + evaluation + 1, dtype=np.float64)
    names = tenant_names(scenario)
    n, t = len(names), len(timestamps)
    used = {name for tenant in scenario.tenants for name in tenant.limits}
    specs = tuple(spec for name, spec in catalogue.limits.items() if name in used)
    demand = {spec.name: np.full((n, t), np.nan) for spec in specs}
    current = {spec.name: np.full(n, spec.default) for spec in specs}

    row = 0
    for entry_index, tenant in enumerate(scenario.tenants):
        for replica in range(tenant.count):
            size_rng = np.random.default_rng([scenario.seed, entry_index, replica])
            scale = math.exp(size_rng.normal(0.0, tenant.spread)) if tenant.spread else 1.0
            shift = size_rng.normal(0.0, 1.0) if tenant.count > 1 else 0.0
            for name, described in tenant.limits.items():
                spec = catalogue.limits[name]
                rng = np.random.default_rng(
                    [scenario.seed, entry_index, replica, zlib.crc32(name.encode())]
                )
                values = demand_series(
                    described.demand,
                    timestamps - origin,
                    timestamps,
                    step=step,
                    rng=rng,
                    scale=scale,
                    hour_shift=shift,
                )
                if spec.type is not LimitType.RATE:
                    values = np.rint(values)
                demand[name][row] = values
                relative = described.relative_current()
                if relative is not None:
                    peak = np.nanmax(values[:history]) if np.isfinite(values[:history]).any() else 0
                    if peak > 0:  # a tenant with no history keeps Mimir's default
                        current[name][row] = _written(relative * float(peak), spec.type)
                elif described.current is not None:
                    current[name][row] = float(described.current)
            row += 1
    return Case(
        name=scenario.name,
        description=scenario.description,
        tenants=tuple(names),
        timestamps=timestamps,
        step=step,
        evaluation_start=history,
        cycle=float(scenario.cycle),
        limits=specs,
        demand=demand,
        current=current,
    )


def _written(value: float, kind: LimitType) -> float:
    """Up to 2 significant digits, as an operator writes a limit."""
    rounded = round_readable(
        np.array([value]),
        np.array([np.nan]),
        digits=2,
        minimum=0.0,
        maximum=math.inf,
        integer=kind is not LimitType.RATE,
    )
    return float(rounded[0])


def demand_series(
    demand: Demand,
    elapsed: FloatArray,
    timestamps: FloatArray,
    *,
    step: float,
    rng: np.random.Generator,
    scale: float = 1.0,
    hour_shift: float = 0.0,
) -> FloatArray:
    """One tenant's demand at `timestamps` (unix seconds, each closing a step);
    `elapsed` = seconds since the history started."""
    t = len(timestamps)
    mid = timestamps - step / 2.0  # calendar facts are taken at the middle of each step
    hours = (mid % DAY) / HOUR
    shape = np.full(t, demand.base * scale)
    if demand.daily:
        peak = demand.peak_hour + hour_shift
        shape *= 1.0 + demand.daily * np.cos(2.0 * np.pi * (hours - peak) / 24.0)
    if demand.weekly:
        weekday = ((mid // DAY).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        shape *= np.where(weekday >= 5, 1.0 - demand.weekly, 1.0)
    if demand.growth:
        days = np.maximum(elapsed - demand.start, 0.0) / DAY
        shape *= (1.0 + demand.growth) ** days
    if demand.noise:
        window = max(1, round(demand.noise_window / step))
        white = rng.standard_normal(t + window)
        summed = np.cumsum(white)
        z = (summed[window:] - summed[:-window]) / math.sqrt(window)
        shape *= np.maximum(0.05, 1.0 + demand.noise * z)
    if demand.bursts is not None and demand.bursts.probability > 0:
        shape *= _bursts(demand, t, step, rng)
    for spike in demand.spikes:
        inside = (elapsed > spike.at) & (elapsed <= spike.at + spike.duration)
        shape *= np.where(inside, spike.factor, 1.0)
    if demand.month_end is not None:
        days = mid.astype("datetime64[s]").astype("datetime64[D]")
        next_month = (days.astype("datetime64[M]") + 1).astype("datetime64[D]")
        left = (next_month - days).astype(np.int64)  # 1 on the last day of the month
        shape *= np.where(left <= demand.month_end.days, demand.month_end.factor, 1.0)
    if demand.dormant is not None:
        quiet = elapsed > demand.dormant.at
        if demand.dormant.until is not None:
            quiet &= elapsed <= demand.dormant.until
        shape *= np.where(quiet, demand.dormant.level, 1.0)
    if demand.start:
        shape[elapsed <= demand.start] = np.nan
    return shape


def _bursts(demand: Demand, t: int, step: float, rng: np.random.Generator) -> FloatArray:
    bursts = demand.bursts
    assert bursts is not None
    starts = np.flatnonzero(rng.random(t) < bursts.probability)
    longest = max(1, round(bursts.length / step))
    lengths = rng.integers(1, longest + 1, size=len(starts))
    heights = rng.uniform(bursts.height[0], bursts.height[1], size=len(starts))
    factor = np.ones(t)
    for first, length, height in zip(starts, lengths, heights, strict=True):
        segment = factor[first : first + length]
        np.maximum(segment, height, out=segment)
    return factor
