"""Cluster pressure levels (normal < warning < emergency < panic), their targeted actions and
the gradual recovery.

A pressure signal counts for a level once it has stayed at or above the level's threshold for
its sustained-for duration (CPU 2m, memory 1m, ... as the Go tool). CPU and memory have their own
panic thresholds (panicMode.cpuThreshold / memoryThreshold). Components down and runtime
config reload failures raise the level configured for them. The cluster level is the highest.

Actions never cut every tenant by default:
- freeze_series_growth: every eligible tenant's series limit is capped at its in-memory
  series + freezeMarginPercent (once per incident; growth stops, nobody loses series);
- reduce_top_contributors (the Go optimizer's reduce_limits) and throttle_ingestion: the pressure is
  brought toward reduceToPercent by lowering the limits of the tenants above their own
  baseline, each in proportion to its share of the total excess, never below its baseline,
  its floor or the maximum clamp depth (pressure nobody caused is alerted, not "fixed");
- blanket_cut (explicit opt-in only): every eligible tenant x (1 - blanketCutPercent).
Recovery: when every signal stays under the recovery conditions for stableFor, the emergency
caps rise by stepPercent of their pre-cap value every stepInterval; a relapse halts it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

from mimir_limit_optimizer.engine.protection.clamps import set_cap, step_up
from mimir_limit_optimizer.engine.protection.model import (
    BURST_LIMIT,
    RES_DISTRIBUTOR_CPU,
    RES_DISTRIBUTOR_MEMORY,
    RES_INGESTER_CPU,
    RES_INGESTER_MEMORY,
    RES_INGESTER_SERIES,
    RES_INGESTION,
    RESOURCES,
    SIG_INGESTION,
    SIG_SERIES,
    Event,
    Kind,
    Level,
)
from mimir_limit_optimizer.engine.protection.tick import Tick, fmt

SERIES_LIMIT = "max_global_series_per_user"
RATE_LIMIT = "ingestion_rate"
# Resource -> (sustained-for key, panic-threshold override, lever of reduce_top_contributors)
_RESOURCE_KIND: Mapping[str, tuple[str, str | None, str]] = MappingProxyType(
    {
        RES_INGESTER_SERIES: ("series", None, "series"),
        RES_INGESTER_MEMORY: ("memory", "memory", "series"),
        RES_INGESTER_CPU: ("cpu", "cpu", "ingestion"),
        RES_DISTRIBUTOR_MEMORY: ("memory", "memory", "ingestion"),
        RES_DISTRIBUTOR_CPU: ("cpu", "cpu", "ingestion"),
        RES_INGESTION: ("ingestion", None, "ingestion"),
    }
)
_LEVELS = (Level.WARNING, Level.EMERGENCY, Level.PANIC)
# A reduction smaller than this share of a tenant's usage is not worth a write.
_MIN_REDUCTION = 0.005


def level_thresholds(tick: Tick, resource: str) -> dict[Level, float]:
    settings = tick.config.emergency
    panic = settings.thresholds.panic
    override = _RESOURCE_KIND[resource][1]
    if override == "cpu":
        panic = settings.panic_mode.cpu_threshold
    elif override == "memory":
        panic = settings.panic_mode.memory_threshold
    emergency = min(settings.thresholds.emergency, panic)
    warning = min(settings.thresholds.warning, emergency)
    return {Level.WARNING: warning, Level.EMERGENCY: emergency, Level.PANIC: panic}


def _sustained_for(tick: Tick, key: str) -> float:
    value: float = getattr(tick.config.emergency.sustained_for, key)
    return value


def _assess(tick: Tick) -> tuple[Level, dict[str, Level]]:
    """The cluster level and each contributing signal's level; updates the run timers."""
    ps = tick.state.pressure
    now = tick.now
    per_signal: dict[str, Level] = {}
    for resource in RESOURCES:
        value = float(tick.obs.pressure.get(resource, math.nan))
        ps.last[resource] = value
        timers = ps.above_since.setdefault(resource, {})
        reached = Level.NORMAL
        for level, threshold in level_thresholds(tick, resource).items():
            key = level.label
            if math.isfinite(value) and value >= threshold:
                since = timers.setdefault(key, now)
                if now - since >= _sustained_for(tick, _RESOURCE_KIND[resource][0]):
                    reached = level
            else:
                timers.pop(key, None)
        if reached > Level.NORMAL:
            per_signal[resource] = reached
    settings = tick.config.emergency
    down = sum(tick.obs.components_down.values())
    if down > 0:
        ps.down_since = now if math.isnan(ps.down_since) else ps.down_since
        if now - ps.down_since >= settings.sustained_for.components:
            per_signal["components_down"] = Level[settings.component_down_level.upper()]
    else:
        ps.down_since = math.nan
    if tick.obs.reload_ok is False:
        ps.reload_since = now if math.isnan(ps.reload_since) else ps.reload_since
        if now - ps.reload_since >= settings.sustained_for.reload:
            per_signal["runtime_config_reload"] = Level[settings.reload_failure_level.upper()]
    else:
        ps.reload_since = math.nan
    level = max(per_signal.values(), default=Level.NORMAL)
    return level, per_signal


def _actions(tick: Tick, level: Level) -> Sequence[str]:
    settings = tick.config.emergency
    if level is Level.PANIC and settings.panic_mode.enabled:
        return settings.panic_mode.actions
    if level >= Level.EMERGENCY:
        return settings.emergency_actions
    if level is Level.WARNING:
        return settings.warning_actions
    return ()


def _freeze(tick: Tick) -> list[dict[str, object]]:
    """Cap every eligible tenant's series limit at in-memory series + margin (once)."""
    series = tick.obs.signal(SIG_SERIES)
    margin = tick.config.circuit_breaker.freeze_margin_percent / 100.0
    reason = "emergency: series growth frozen (freeze_series_growth)"
    changes = []
    for i in np.flatnonzero(tick.policy.emergency_eligible & np.isfinite(series)):
        clamp = tick.state.clamps.get((tick.state.tenants[i], SERIES_LIMIT))
        if clamp is not None and clamp.emergency is not None:
            continue  # frozen already: a freeze never ratchets down
        wanted = float(series[i]) * (1 + margin)
        change = tick.cap(int(i), SERIES_LIMIT, "emergency", wanted, reason, depth=False)
        if change:
            changes.append({"tenant": tick.state.tenants[i], **change})
    return changes


def _reduce(
    tick: Tick, lever: str, fraction: float, why: str
) -> tuple[list[dict[str, object]], bool]:
    """Lower the limits of the tenants above their baselines so that `fraction` of the lever's
    total usage is shed, each in proportion to its excess (never below its baseline).
    Returns (changes, attributable)."""
    if lever == "series":
        usage, baseline, limit = (
            tick.obs.signal(SIG_SERIES),
            tick.state.baselines[Kind.SERIES.value],
            SERIES_LIMIT,
        )
    else:
        usage = tick.obs.signal(SIG_INGESTION)
        baseline, limit = tick.state.baselines[Kind.INGESTION.value], RATE_LIMIT
    known = np.isfinite(usage)
    shed = fraction * float(np.nansum(usage)) if known.any() else 0.0
    excess = np.where(
        tick.policy.emergency_eligible & known & np.isfinite(baseline),
        np.maximum(usage - baseline, 0.0),
        0.0,
    )
    total = float(excess.sum())
    if shed <= 0 or total <= 0:
        return [], total > 0
    cut = np.minimum(excess, shed * excess / total)
    reason = f"emergency: {why}; reduced in proportion to the excess above baseline"
    changes = []
    for i in np.flatnonzero(cut > _MIN_REDUCTION * np.where(known, usage, 0.0)):
        index = int(i)
        target = float(usage[index] - cut[index])
        change = tick.cap(index, limit, "emergency", target, reason)
        if change is None:
            continue
        changes.append({"tenant": tick.state.tenants[index], **change})
        if limit == RATE_LIMIT:
            changes += _burst_follows(tick, index, change, reason)
    return changes, True


def _burst_follows(
    tick: Tick, i: int, change: dict[str, object], reason: str
) -> list[dict[str, object]]:
    old, new = float(change["old"]), float(change["new"])  # type: ignore[arg-type]
    burst_target = tick.target_of(i, BURST_LIMIT)
    if not (old > 0 and math.isfinite(old) and math.isfinite(burst_target)):
        return []
    burst = tick.cap(i, BURST_LIMIT, "emergency", burst_target * new / old, reason)
    return [{"tenant": tick.state.tenants[i], **burst}] if burst else []


def _blanket(tick: Tick) -> list[dict[str, object]]:
    """The explicit opt-in: every eligible tenant's ingestion rate and series limit cut."""
    keep = 1 - tick.config.emergency.panic_mode.blanket_cut_percent / 100.0
    reason = "panic: blanket cut (explicit opt-in action blanket_cut)"
    changes = []
    usage = {SERIES_LIMIT: tick.obs.signal(SIG_SERIES), RATE_LIMIT: tick.obs.signal(SIG_INGESTION)}
    for i in np.flatnonzero(tick.policy.emergency_eligible):
        index = int(i)
        for limit in (RATE_LIMIT, SERIES_LIMIT):
            clamp = tick.state.clamps.get((tick.state.tenants[index], limit))
            if clamp is not None and clamp.emergency is not None:
                continue
            target = tick.target_of(index, limit)
            base = target if target > 0 else float(usage[limit][index])
            change = tick.cap(index, limit, "emergency", base * keep, reason)
            if change:
                changes.append({"tenant": tick.state.tenants[index], **change})
    return changes


def _act(tick: Tick, level: Level, per_signal: dict[str, Level]) -> None:
    settings = tick.config.emergency
    actions = set(_actions(tick, level))
    pressured = {
        r: float(tick.state.pressure.last[r])
        for r, lv in per_signal.items()
        if r in _RESOURCE_KIND and lv >= Level.EMERGENCY
    }
    if "freeze_series_growth" in actions:
        changes = _freeze(tick)
        tick.events.append(_action_event("freeze_series_growth", level, changes))
    levers: dict[str, float] = {}
    for resource, value in pressured.items():
        fraction = max(0.0, 1.0 - settings.reduce_to_percent / value) if value > 0 else 0.0
        lever = _RESOURCE_KIND[resource][2]
        if actions & {"reduce_top_contributors", "reduce_limits"}:
            levers[lever] = max(levers.get(lever, 0.0), fraction)
        if "throttle_ingestion" in actions:
            levers["ingestion"] = max(levers.get("ingestion", 0.0), fraction)
    for lever, fraction in levers.items():
        why = (
            ", ".join(f"{r} at {fmt(v)}%" for r, v in pressured.items() if fraction > 0)
            + f"; target {settings.reduce_to_percent:g}%"
        )
        changes, attributable = _reduce(tick, lever, fraction, why)
        name = (
            "throttle_ingestion"
            if lever == "ingestion" and "throttle_ingestion" in actions
            else "reduce_top_contributors"
        )
        event = _action_event(name, level, changes)
        if not attributable:
            event = Event(
                event.action,
                None,
                {
                    **event.details,
                    "note": "no tenant is above its baseline: the pressure is not a blast; "
                    "the cluster needs capacity (nothing reduced)",
                },
                level="warning",
            )
        tick.events.append(event)
    if "blanket_cut" in actions:
        tick.events.append(_action_event("blanket_cut", level, _blanket(tick)))


def _action_event(action: str, level: Level, changes: list[dict[str, object]]) -> Event:
    return Event(
        "emergency_action",
        None,
        {
            "action": action,
            "level": level.label,
            "tenants": len({c["tenant"] for c in changes}),
            "changes": changes,
        },
        level="warning",
    )


def _recovery_conditions(tick: Tick) -> bool:
    """The Go tool's recovery conditions: CPU under cpuBelow, memory under memoryBelow, the other
    signals under the warning threshold, nothing down, the runtime config loading."""
    recovery = tick.config.emergency.recovery
    for resource in RESOURCES:
        value = tick.state.pressure.last.get(resource, math.nan)
        if not math.isfinite(value):
            continue
        kind = _RESOURCE_KIND[resource][0]
        bound = (
            recovery.cpu_below
            if kind == "cpu"
            else recovery.memory_below
            if kind == "memory"
            else level_thresholds(tick, resource)[Level.WARNING]
        )
        if value >= bound:
            return False
    return sum(tick.obs.components_down.values()) == 0 and tick.obs.reload_ok is not False


def _recover(tick: Tick, level: Level) -> None:
    ps = tick.state.pressure
    settings = tick.config.emergency.recovery
    capped = [(key, c) for key, c in tick.state.clamps.items() if c.emergency is not None]
    if not _recovery_conditions(tick):
        if capped and not math.isnan(ps.stable_since) and not math.isnan(ps.last_step_at):
            tick.events.append(
                Event("emergency_recovery_halted", None, {"level": level.label}, level="warning")
            )
        ps.stable_since = math.nan
        ps.last_step_at = math.nan
        return
    if math.isnan(ps.stable_since):
        ps.stable_since = tick.now
    if not capped or level >= Level.EMERGENCY:
        return
    if tick.now - ps.stable_since < settings.stable_for:
        return
    if not math.isnan(ps.last_step_at) and tick.now - ps.last_step_at < settings.step_interval:
        return
    changes = []
    for (tenant, limit), clamp in capped:
        before = clamp.desired()
        new, _ = step_up(clamp, "emergency", limit, settings.step_percent, tick.catalogue)
        set_cap(clamp, "emergency", new)
        changes.append({"tenant": tenant, "limit": limit, "old": before, "new": clamp.desired()})
    ps.last_step_at = tick.now
    left = sum(1 for c in tick.state.clamps.values() if c.emergency is not None)
    tick.events.append(
        Event(
            "emergency_recovery_step",
            None,
            {"step_percent": settings.step_percent, "changes": changes, "remaining": left},
        )
    )
    if left == 0:
        ps.last_step_at = math.nan
        ps.peak = int(level)
        tick.events.append(Event("emergency_recovery_complete", None, {"level": level.label}))


def release_emergency(tick: Tick, why: str) -> None:
    """Emergency disabled: every emergency cap goes (its limits are restored)."""
    changes = []
    for (tenant, limit), clamp in tick.state.clamps.items():
        if clamp.emergency is not None:
            changes.append({"tenant": tenant, "limit": limit, "old": clamp.emergency})
            set_cap(clamp, "emergency", None)
    ps = tick.state.pressure
    if changes or ps.level != Level.NORMAL:
        tick.events.append(
            Event(
                "emergency_level_changed",
                None,
                {
                    "from": Level(ps.level).label,
                    "to": "normal",
                    "reason": why,
                    "changes": changes,
                    "alert": True,
                },
            )
        )
    ps.level, ps.peak = int(Level.NORMAL), int(Level.NORMAL)
    ps.level_since = tick.now
    ps.above_since.clear()


def step_pressure(tick: Tick) -> None:
    settings = tick.config.emergency
    ps = tick.state.pressure
    if not settings.enabled:
        release_emergency(tick, "emergency.enabled is false")
        return
    level, per_signal = _assess(tick)
    previous = Level(ps.level)
    escalated = level > previous
    if level != previous:
        ps.level, ps.level_since = int(level), tick.now
        tick.events.append(
            Event(
                "emergency_level_changed",
                None,
                {
                    "from": previous.label,
                    "to": level.label,
                    "signals": {name: lv.label for name, lv in per_signal.items()},
                    "pressure": {r: v for r, v in ps.last.items() if math.isfinite(v)},
                    "alert": "alert" in _actions(tick, max(level, previous)),
                },
                level="warning" if level > Level.NORMAL else "info",
            )
        )
        if level > ps.peak:
            ps.peak = int(level)
    if level >= Level.EMERGENCY:
        due = (
            math.isnan(ps.last_action_at)
            or tick.now - ps.last_action_at >= settings.action_interval
        )
        if escalated or due:
            _act(tick, level, per_signal)
            ps.last_action_at = tick.now
    else:
        ps.last_action_at = math.nan
    _recover(tick, level)
