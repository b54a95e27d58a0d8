"""Demand and throttling for one limit of a recommendation pass: accepted + discarded usage,
what a throttled tenant sends now, and the discard-driven limits' raise (engine/recommend.py
calls these; docs/engine.md explains the rules)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.catalogue import LimitSpec, LimitType
from mimir_limit_optimizer.engine import adaptive, hourly
from mimir_limit_optimizer.engine import compiled as compiled_passes
from mimir_limit_optimizer.engine import postprocess as pp
from mimir_limit_optimizer.engine.policy import LimitPolicy
from mimir_limit_optimizer.engine.recommend_pass import Pass, extra_references, undefined
from mimir_limit_optimizer.engine.results import LimitResult, Reason
from mimir_limit_optimizer.engine.spikes import Cleaned, as_slice
from mimir_limit_optimizer.engine.usage import AnyFloatArray, FloatArray

# A day holds a whole daily cycle: the shortest window whose percentile describes the level a
# tenant runs at now (the percentile strategy raises to it when it is above the window's), and
# how long a throttled tenant is protected from being lowered again.
RECENT_LEVEL_SECONDS = 86400.0
# Discard-driven limits look only at recent discards, so one old burst of discards does not
# raise the limit again on every cycle.
DISCARD_LOOKBACK_SECONDS = 3600.0
# Retried 429s: a client that retries a rate-limited batch is counted again in the
# `rate_limited` discards (each try), so accepted + discarded overstates demand by up to the
# number of tries. Per point the discards count at most this many times the accepted rate
# (demand at most 2x what got in): a tenant that really sends more is still throttled after
# the raise, and the next cycle raises again. An honest bound, not an exact correction.
RETRY_DEMAND_BOUND = 1.0
_RETRIED_REASON = "rate_limited"

NO_ROWS: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)


def demand(
    state: Pass,
    spec: LimitSpec,
    result: LimitResult,
    usage: npt.NDArray[np.float32],
    *,
    compiled: bool = True,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Demand = accepted + discarded, and the rows where discards were seen (where demand
    differs from usage). Without a discard signal, demand is `usage` itself (no copy).

    A chunk of rows at a time (hourly.CHUNK_POINTS): every step is row by row, and on
    chunks the temporaries (the bounded discards) stay in cache and are never (N, T). Rows
    with missing usage points are the exception (a few): their sums come out NaN and are done
    again at the end, without those points, in one batch; the others never look for gaps.

    Demand is written in place of the discards when they are the engine's own: a streamed
    array nobody else holds (`LazyArrays` hands each load to the engine alone), or the copy
    that scoping to some tenants made. Otherwise into the pass's demand buffer. At 100,000
    tenants that is 800 MB less memory, and no new memory to touch.

    `compiled`: in one sweep per row by the compiled demand pass (engine/compiled.py) when it
    is there and the arrays are float32 with contiguous rows (the same bits)."""
    discards_full = state.obs.discards.get(spec.name)
    if discards_full is None:
        return usage, NO_ROWS
    # A streamed array nobody else holds (not the observation's dict, not a view's base).
    alone = extra_references(discards_full) == 0 and discards_full.base is None
    discards = state.take_window(discards_full)
    del discards_full
    n, t = usage.shape
    writable = discards.dtype == np.float32 and discards.flags.writeable
    if writable and discards.flags.c_contiguous and (alone or not state.all_rows):
        demand: npt.NDArray[np.float32] = discards  # read a chunk ahead of each write
    else:
        demand = state.buffer("demand", (n, t))
    # Sums in float32 (numpy's pairwise sums: ~1e-6 relative over a week of points, for a
    # share that is reported in percent); a float64 sum casts every point and costs 2x.
    total_d, total = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
    bounded = np.zeros(n, dtype=bool)
    throttled_now = np.zeros(n, dtype=bool)
    throttled_recently = np.zeros(n, dtype=bool)
    # Column runs as slices: views, where a mask would copy the columns of every chunk.
    recent = as_slice(state.timestamps > state.now - DISCARD_LOOKBACK_SECONDS)
    last_day = as_slice(state.timestamps > state.now - RECENT_LEVEL_SECONDS)
    retried = _RETRIED_REASON in spec.discard_reasons
    kernel = compiled_passes.point_passes() if compiled else None
    spans = _spans(recent, t), _spans(last_day, t)
    if (
        kernel is not None
        and spans[0] is not None
        and spans[1] is not None
        and compiled_passes.fits(usage, discards, demand)
    ):
        kernel.demand_pass(
            usage,
            discards,
            demand,
            retried,
            RETRY_DEMAND_BOUND,
            *spans[0],
            *spans[1],
            total_d,
            total,
            throttled_now,
            throttled_recently,
            bounded,
        )
        gappy = np.flatnonzero(np.isnan(total))  # the discard sums are done without gaps
        if len(gappy):
            total[gappy] = demand[gappy].sum(axis=1, where=~np.isnan(usage[gappy]))
    else:
        _numpy_demand(
            usage,
            discards,
            demand,
            retried=retried,
            columns=(recent, last_day),
            out=(total_d, total, throttled_now, throttled_recently, bounded),
        )
    if retried:
        result.flags |= np.where(bounded, int(Reason.RETRIES_BOUNDED), 0)
    result.extra["throttled_now"] = throttled_now
    result.extra["throttled_recently"] = throttled_recently
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, total_d.astype(np.float64) / total, 0.0)
    result.discard_share = share
    result.flags |= np.where(share > 0, int(Reason.DISCARDS_ADDED), 0)
    return demand, np.flatnonzero(total_d > 0)


def _spans(columns: slice | npt.NDArray[np.bool_], t: int) -> tuple[int, int] | None:
    """A run of columns as (start, stop) for the compiled pass; None: not one run."""
    if isinstance(columns, slice):
        start, stop, step = columns.indices(t)
        return (start, stop) if step == 1 else None
    return (0, 0) if not columns.any() else None


def _numpy_demand(
    usage: npt.NDArray[np.float32],
    discards: AnyFloatArray,
    demand: npt.NDArray[np.float32],
    *,
    retried: bool,
    columns: tuple[slice | npt.NDArray[np.bool_], slice | npt.NDArray[np.bool_]],
    out: tuple[
        npt.NDArray[np.float32],
        npt.NDArray[np.float32],
        npt.NDArray[np.bool_],
        npt.NDArray[np.bool_],
        npt.NDArray[np.bool_],
    ],
) -> None:
    """demand's numpy path: a chunk of rows at a time, the rows with usage gaps again at the
    end. `columns`: the last hour's and the last day's; `out`: the discards' and demand's
    row sums, throttled now, throttled recently, and where the retry bound cut."""
    recent, last_day = columns
    total_d, total, throttled_now, throttled_recently, bounded = out
    n, t = usage.shape
    rows = max(1, hourly.CHUNK_POINTS // max(t, 1))
    chunk = np.empty((min(rows, n), t), dtype=np.float32)
    gappy_rows: list[npt.NDArray[np.int64]] = []
    gappy_discards: list[npt.NDArray[np.float32]] = []
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        d = _bounded_discards(
            discards[lo:hi], usage[lo:hi], retried, chunk[: hi - lo], bounded[lo:hi]
        )
        # A usage gap leaves its discard point in these sums: such rows are done again below.
        d.sum(axis=1, out=total_d[lo:hi])
        throttled_now[lo:hi] = d[:, recent].sum(axis=1) > 0
        throttled_recently[lo:hi] = d[:, last_day].sum(axis=1) > 0
        part = np.add(usage[lo:hi], d, out=demand[lo:hi])  # NaN where usage is missing
        part.sum(axis=1, out=total[lo:hi])
        nan_rows = np.flatnonzero(np.isnan(total[lo:hi]))  # (or inf - inf: done the same way)
        if len(nan_rows):
            gappy_rows.append(nan_rows + lo)
            gappy_discards.append(d[nan_rows])
    if gappy_rows:
        gappy = np.concatenate(gappy_rows)
        d = np.concatenate(gappy_discards)
        gaps = np.isnan(usage[gappy])
        d[gaps] = 0
        total_d[gappy] = d.sum(axis=1)
        throttled_now[gappy] = d[:, recent].sum(axis=1) > 0
        throttled_recently[gappy] = d[:, last_day].sum(axis=1) > 0
        total[gappy] = demand[gappy].sum(axis=1, where=~gaps)


def _bounded_discards(
    discards: AnyFloatArray,
    accepted: npt.NDArray[np.float32],
    retried: bool,
    out: npt.NDArray[np.float32],
    bounded: npt.NDArray[np.bool_],
) -> npt.NDArray[np.float32]:
    """Discards as float32, missing ones 0 (fmax), and with retried 429s at most
    RETRY_DEMAND_BOUND x the accepted rate (`bounded`: rows where that bound cut)."""
    d = np.fmax(np.asarray(discards, dtype=np.float32), np.float32(0), out=out)
    if retried:
        # x 1 is x itself (NaN included): no multiplication at the default bound.
        bound = accepted if RETRY_DEMAND_BOUND == 1.0 else accepted * np.float32(RETRY_DEMAND_BOUND)
        with np.errstate(invalid="ignore"):
            over = d > bound  # False where usage is NaN: nothing to bound against
        np.copyto(d, bound, where=over)
        over.any(axis=1, out=bounded)
    return d


def react_to_throttling(
    state: Pass,
    policy: LimitPolicy,
    result: LimitResult,
    value: FloatArray,
    *,
    cleaned: Cleaned,
    raw: AnyFloatArray,
    short: npt.NDArray[np.bool_],
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """What the discards say beyond the window's percentile. Returns the values and the
    short-history tenants that get a value anyway (they were throttled)."""
    rescued = np.zeros(state.n, dtype=bool)
    throttled = result.extra.get("throttled_now")
    if throttled is None:  # no discard signal: nothing to react to
        return value, rescued
    recent = state.timestamps > state.now - DISCARD_LOOKBACK_SECONDS
    # Rates only: for a count like in-memory series, "what it sends now" during a cardinality
    # blast is exactly what must not be granted at once (blast protection's call); sustained
    # growth still comes through the last day's level.
    is_rate = result.spec.type is LimitType.RATE
    if throttled.any() and recent.any() and is_rate:
        # Throttled right now: cover what the tenant sends now (spikes excluded) plus the
        # full buffer. A week's percentile notices a new level only once it fills 5% of the
        # window (8 hours), and the last day's only after an hour or so.
        sending = np.fmax.reduce(cleaned.columns(recent), axis=1).astype(np.float64)
        # A return to a level the tenant reached before the last hour (spikes excluded) is no
        # spike: covered at once, not after the spike filter's maxDuration.
        rows = np.flatnonzero(throttled)
        if (~recent).any() and len(rows):
            earlier = np.fmax.reduce(cleaned.rows_columns(rows, ~recent), axis=1)
            now = np.fmax.reduce(raw[:, recent][rows], axis=1)  # the hour first: few points
            back = np.fmin(now, earlier).astype(np.float64)
            sending[rows] = np.fmax(sending[rows], back)
        # What it sends, not what it burst to: the highest level held for SUSTAINED_SECONDS
        # within the last hour. A burst of a few minutes that is over by the cycle leaves no
        # level to cover (raising after it buys headroom for a day and no fewer throttled
        # minutes: the next burst comes at another time); a return or growth holds its level.
        held = adaptive.held_level(raw, recent, rows, step=state.obs.step)
        sending[rows] = np.fmin(sending[rows], held)
        value, raised = pp.throttle_floor(value, sending, throttled, policy.buffer_percent)
        result.extra["sending_now"] = sending
        result.flags |= np.where(raised, int(Reason.THROTTLE_FLOOR), 0)
    # Discards are evidence even in a short history: a tenant throttled during it is raised
    # to what it asked for (never lowered), not left undefined at a limit that keeps
    # rejecting it.
    rescued = short & (result.discard_share > 0) & np.isfinite(value)
    if rescued.any():
        value = np.where(rescued, np.fmax(value, result.current), value)
        result.flags |= np.where(rescued, int(Reason.SHORT_BUT_THROTTLED), 0)
    return value, rescued


def discard_value(state: Pass, spec: LimitSpec, result: LimitResult) -> FloatArray:
    discards_full = state.obs.discards.get(spec.name)
    if discards_full is None:
        undefined(
            result, np.ones(state.n, bool), f"the source returned no discards for {spec.name}"
        )
        return np.full(state.n, np.nan)
    discards = state.take_window(discards_full)
    recent = state.timestamps > state.now - DISCARD_LOOKBACK_SECONDS
    window = discards[:, recent]
    no_data = np.asarray(~np.isfinite(window).any(axis=1), dtype=bool)
    undefined(result, no_data, f"no discard data for {', '.join(spec.discard_reasons)}")
    seen = np.nansum(np.where(np.isfinite(window), window, 0.0), axis=1) > 0
    current = result.current
    # +25% of a guessed value could lower a throttled tenant: the value in force must be known.
    guessed = np.asarray(result.extra.get("current_guessed", np.zeros(state.n, bool)))
    undefined(
        result,
        guessed & seen,
        "discards seen, but the limit in force is unknown (no overrides file entry, no "
        f"overrides-exporter metric): set dynamicLimits.limitOverrides.{spec.name}."
        "defaultValue to the cluster's default",
    )
    no_data = no_data | (guessed & seen)
    raise_by = state.config.change_policy.discard_raise_percent / 100.0
    value = np.where(seen & (current > 0), current * (1.0 + raise_by), current)
    result.flags |= np.where(seen & (current > 0), int(Reason.DISCARD_RAISE), 0)
    result.flags |= np.where(~seen & ~no_data, int(Reason.NO_DISCARDS), 0)
    result.confidence = np.where(no_data, 0.0, 1.0)
    return np.where(no_data, np.nan, value)
