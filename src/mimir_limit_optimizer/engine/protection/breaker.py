"""Per-tenant circuit breakers and the cluster-wide blast detectors.

Per tenant and kind (ingestion, series, query):

  CLOSED --threshold breached for detectionWindow (a burst: at once)--> OPEN
      the kind's limits are capped: series at in-memory series + freezeMarginPercent (growth
      frozen), ingestion_rate at the tenant's baseline x ingestionRateMultiplier (and the burst
      in proportion), max_query_parallelism x queryClampFactor; within floors and depth.
  OPEN --cooldown (x2 per relapse, up to x8) passed and no breach--> HALF_OPEN
      the caps rise by recovery.stepPercent of the pre-cap value every recovery.stepInterval
      while the tenant stays under its threshold (a breach pauses the steps)
  HALF_OPEN --caps back at the pre-cap values--> CLOSED (limits restored)
  HALF_OPEN --breach sustained for detectionWindow--> OPEN (relapse; caps only tighten)

A cluster-wide detector sustained for the detection window opens the breakers of the tenants
furthest above their own baselines, covering topContributorShare of the excess.
Everything is vectorised; only tenants that change state are visited one by one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from mimir_limit_optimizer.engine.protection.clamps import (
    effective,
    set_cap,
    step_up,
)
from mimir_limit_optimizer.engine.protection.model import (
    BURST_LIMIT,
    KIND_LIMITS,
    KINDS,
    SIG_NEW_SERIES,
    SIG_SERIES,
    BreakerState,
    Event,
    Kind,
)
from mimir_limit_optimizer.engine.protection.tick import Tick, fmt

CLOSED, OPEN, HALF_OPEN = (int(s) for s in BreakerState)
MAX_COOLDOWN_DOUBLINGS = 3
# Global detector -> the breaker kind it opens and the per-tenant signal it attributes by.
GLOBAL_DETECTORS: Mapping[str, tuple[Kind, str]] = MappingProxyType(
    {
        "ingestion": (Kind.INGESTION, Kind.INGESTION.value),
        "query": (Kind.QUERY, Kind.QUERY.value),
        "series": (Kind.SERIES, SIG_NEW_SERIES),
    }
)


def _why(tick: Tick, kind: Kind, i: int, burst: bool) -> str:
    th = tick.thresholds[kind]
    value = float(tick.demand[kind.value][i])
    margin = float(tick.policy.margin[i]) * 100
    multipliers = tick.config.circuit_breaker.auto_config.limit_multipliers
    if burst:
        return (
            f"{kind.value} burst: demand {fmt(value)}/s > {fmt(float(th.burst[i]))}/s "
            f"({multipliers.burst_multiplier:g} x (ingestion_rate + ingestion_burst_size / "
            f"rate window) + {margin:g}% margin)"
        )
    threshold = float(th.value[i])
    if threshold == float(th.limit_based[i]):
        limit = float(tick.limits[KIND_LIMITS[kind][0]][i])
        source = f"limit-based: multiplier x limit {fmt(limit)} + {margin:g}% margin"
    elif threshold == float(th.traffic_based[i]):
        source = (
            f"traffic-based: multiplier x baseline "
            f"{fmt(float(tick.state.baselines[kind.value][i]))} + {margin:g}% margin"
        )
    else:
        source = "manual threshold"
    return f"{kind.value} demand {fmt(value)} > threshold {fmt(threshold)} ({source})"


def _caps_for_open(tick: Tick, kind: Kind, i: int, reason: str) -> list[dict[str, object]]:
    """Cap the limits of `kind` for tenant i (OPEN or relapse); returns the changes."""
    settings = tick.config.circuit_breaker
    changes: list[dict[str, object]] = []
    if kind is Kind.SERIES:
        series = float(tick.obs.signal(SIG_SERIES)[i])
        wanted = series * (1 + settings.freeze_margin_percent / 100.0)
        change = tick.cap(i, "max_global_series_per_user", "breaker", wanted, reason, depth=False)
        changes += [change] if change else []
    elif kind is Kind.INGESTION:
        baseline = float(tick.state.baselines[Kind.INGESTION.value][i])
        multiplier = settings.auto_config.limit_multipliers.ingestion_rate_multiplier
        change = tick.cap(i, "ingestion_rate", "breaker", baseline * multiplier, reason)
        if change:
            changes.append(change)
            old, new = float(change["old"]), float(change["new"])  # type: ignore[arg-type]
            rate_top = effective(old, "ingestion_rate", tick.catalogue)
            burst_target = tick.target_of(i, BURST_LIMIT)
            if math.isfinite(rate_top) and rate_top > 0 and math.isfinite(burst_target):
                burst = tick.cap(i, BURST_LIMIT, "breaker", burst_target * new / rate_top, reason)
                changes += [burst] if burst else []
    else:
        limit = KIND_LIMITS[Kind.QUERY][0]
        target = tick.target_of(i, limit)
        change = tick.cap(i, limit, "breaker", target * settings.query_clamp_factor, reason)
        changes += [change] if change else []
    return changes


def _open(tick: Tick, kind: Kind, i: int, reason: str, *, relapse: bool) -> None:
    table = tick.state.breakers[kind.value]
    previous = BreakerState(int(table.state[i]))
    table.state[i] = OPEN
    table.opened_at[i] = tick.now
    table.step_at[i] = np.nan
    if relapse:
        table.relapses[i] += 1
    changes = _caps_for_open(tick, kind, i, reason)
    tick.events.append(
        Event(
            "circuit_breaker_relapse" if relapse else "circuit_breaker_open",
            tick.state.tenants[i],
            {
                "kind": kind.value,
                "from": previous.name.lower(),
                "to": "open",
                "value": float(tick.demand[kind.value][i]),
                "threshold": float(tick.thresholds[kind].value[i]),
                "reason": reason,
                "changes": changes,
                "relapses": int(table.relapses[i]),
            },
            level="warning",
        )
    )


def _recover_step(tick: Tick, kind: Kind, i: int) -> None:
    """One HALF-OPEN step of tenant i's caps of `kind`; CLOSED when all are back."""
    table = tick.state.breakers[kind.value]
    tenant = tick.state.tenants[i]
    step = tick.config.circuit_breaker.recovery.step_percent
    changes: list[dict[str, object]] = []
    done = True
    for limit in KIND_LIMITS[kind]:
        clamp = tick.state.clamps.get((tenant, limit))
        if clamp is None or clamp.breaker is None:
            continue
        before = clamp.breaker
        new, finished = step_up(clamp, "breaker", limit, step, tick.catalogue)
        set_cap(clamp, "breaker", new)
        changes.append({"limit": limit, "old": before, "new": clamp.desired()})
        done = done and finished
    table.step_at[i] = tick.now
    if changes:
        tick.events.append(
            Event(
                "circuit_breaker_recovery_step",
                tenant,
                {"kind": kind.value, "changes": changes, "step_percent": step},
            )
        )
    if done:
        table.state[i] = CLOSED
        table.opened_at[i] = np.nan
        table.step_at[i] = np.nan
        table.relapses[i] = 0
        tick.events.append(
            Event(
                "circuit_breaker_closed",
                tenant,
                {"kind": kind.value, "from": "half_open", "to": "closed", "changes": changes},
            )
        )


def _release(tick: Tick, kind: Kind, i: int, why: str) -> None:
    """Close tenant i's breaker of `kind` at once (disabled, out of scope)."""
    table = tick.state.breakers[kind.value]
    tenant = tick.state.tenants[i]
    previous = BreakerState(int(table.state[i])).name.lower()
    changes = []
    for limit in KIND_LIMITS[kind]:
        clamp = tick.state.clamps.get((tenant, limit))
        if clamp is not None and clamp.breaker is not None:
            changes.append({"limit": limit, "old": clamp.breaker, "new": clamp.target})
            set_cap(clamp, "breaker", None)
    table.state[i] = CLOSED
    table.opened_at[i] = table.step_at[i] = table.breach_since[i] = np.nan
    table.relapses[i] = 0
    tick.events.append(
        Event(
            "circuit_breaker_closed",
            tenant,
            {
                "kind": kind.value,
                "from": previous,
                "to": "closed",
                "reason": why,
                "changes": changes,
            },
        )
    )


def step_breakers(tick: Tick) -> dict[Kind, np.ndarray]:
    """Advance every tenant's breakers; returns per kind the tenants breaching now (their
    samples must not teach the baselines)."""
    settings = tick.config.circuit_breaker
    enabled = tick.policy.breaker_enabled & settings.enabled
    now = tick.now
    breaching: dict[Kind, np.ndarray] = {}
    for kind in KINDS:
        table = tick.state.breakers[kind.value]
        value = tick.demand[kind.value]
        th = tick.thresholds[kind]
        finite = np.isfinite(value)
        safe = np.where(finite, value, -np.inf)
        over = safe > th.value
        burst = safe > th.burst
        breach = over | burst
        breaching[kind] = breach
        table.breach_since = np.where(
            breach, np.where(np.isnan(table.breach_since), now, table.breach_since), np.nan
        )
        sustained = burst | (over & (now - table.breach_since >= settings.detection_window))
        state = table.state.copy()
        cooldown = settings.cooldown * 2.0 ** np.minimum(table.relapses, MAX_COOLDOWN_DOUBLINGS)
        for i in np.flatnonzero((state != CLOSED) & ~enabled):
            _release(tick, kind, int(i), "breaker disabled for this tenant (or out of scope)")
        for i in np.flatnonzero((state == CLOSED) & sustained & enabled):
            _open(tick, kind, int(i), _why(tick, kind, int(i), bool(burst[i])), relapse=False)
        for i in np.flatnonzero((state == HALF_OPEN) & sustained & enabled):
            _open(tick, kind, int(i), _why(tick, kind, int(i), bool(burst[i])), relapse=True)
        cooled = (state == OPEN) & enabled & ~breach & (now - table.opened_at >= cooldown)
        for i in np.flatnonzero(cooled):
            table.state[i] = HALF_OPEN
            tick.events.append(
                Event(
                    "circuit_breaker_half_open",
                    tick.state.tenants[int(i)],
                    {"kind": kind.value, "from": "open", "to": "half_open"},
                )
            )
            _recover_step(tick, kind, int(i))
        due = (
            (state == HALF_OPEN)
            & enabled
            & ~breach
            & (now - table.step_at >= settings.recovery.step_interval)
        )
        for i in np.flatnonzero(due):
            _recover_step(tick, kind, int(i))
    return breaching


def step_global(tick: Tick) -> None:
    """The cluster-wide detectors (blastProtection)."""
    settings = tick.config.circuit_breaker
    blast = settings.blast_protection
    state = tick.state
    thresholds = {
        "ingestion": blast.ingestion_spike_threshold,
        "query": blast.query_spike_threshold,
        "series": blast.series_spike_threshold,
    }
    enabled = tick.policy.breaker_enabled & settings.enabled
    for name, (kind, signal) in GLOBAL_DETECTORS.items():
        values = tick.demand[signal]
        total = float(np.nansum(values)) if np.isfinite(values).any() else math.nan
        since = state.global_since.get(name, math.nan)
        detected_key = f"{name}:detected"
        if not blast.enabled or not (total > thresholds[name]):
            if detected_key in state.global_since:
                tick.events.append(
                    Event(
                        "blast_cleared",
                        None,
                        {"detector": name, "total": total, "threshold": thresholds[name]},
                    )
                )
            state.global_since.pop(name, None)
            state.global_since.pop(detected_key, None)
            continue
        if math.isnan(since):
            since = state.global_since[name] = tick.now
        if tick.now - since < settings.detection_window:
            continue
        baseline = state.baselines[signal]
        excess = np.where(
            enabled & np.isfinite(values) & np.isfinite(baseline),
            np.maximum(values - baseline, 0.0),
            0.0,
        )
        total_excess = float(excess.sum())
        chosen: list[int] = []
        if total_excess > 0:
            order = np.argsort(-excess, kind="stable")
            covered = 0.0
            for i in order[: blast.max_tenants_per_event]:
                if excess[i] <= 0 or covered >= blast.top_contributor_share / 100 * total_excess:
                    break
                chosen.append(int(i))
                covered += float(excess[i])
        table = state.breakers[kind.value]
        opened = []
        for i in chosen:
            share = float(excess[i]) / total_excess
            reason = (
                f"cluster {name} {fmt(total)} > {fmt(thresholds[name])} "
                f"(blastProtection): this tenant is {share:.0%} of the excess above baselines"
            )
            if table.state[i] == CLOSED:
                _open(tick, kind, i, reason, relapse=False)
                opened.append(state.tenants[i])
            elif table.state[i] == HALF_OPEN:
                _open(tick, kind, i, reason, relapse=True)
                opened.append(state.tenants[i])
        if detected_key not in state.global_since:
            state.global_since[detected_key] = tick.now
            tick.events.append(
                Event(
                    "blast_detected",
                    None,
                    {
                        "detector": name,
                        "total": total,
                        "threshold": thresholds[name],
                        "contributors": [state.tenants[i] for i in chosen],
                        "opened": opened,
                        "attributable": total_excess > 0,
                    },
                    level="warning",
                )
            )


def learning_samples(tick: Tick, breaching: dict[Kind, np.ndarray]) -> dict[str, np.ndarray]:
    """This tick's demand where it may teach the baselines: CLOSED and not breaching."""
    out: dict[str, np.ndarray] = {}
    for kind in KINDS:
        quiet = (tick.state.breakers[kind.value].state == CLOSED) & ~breaching[kind]
        out[kind.value] = np.where(quiet, tick.demand[kind.value], np.nan)
    series_quiet = (tick.state.breakers[Kind.SERIES.value].state == CLOSED) & ~breaching[
        Kind.SERIES
    ]
    out[SIG_NEW_SERIES] = np.where(series_quiet, tick.demand[SIG_NEW_SERIES], np.nan)
    return out
