"""Protection's durable state: the engine's state machines in one checkpoint (`protection`),
so a restart resumes open breakers and caps, and the runtime switch the API sets
(`protection_runtime`). Also what a prod cycle's plan would hold, read from them (`mlo plan`)."""

from __future__ import annotations

import json
import logging

from mimir_limit_optimizer.config.models import Config, Mode
from mimir_limit_optimizer.engine.planning import GuardInputs
from mimir_limit_optimizer.engine.protection import Level, ProtectionState
from mimir_limit_optimizer.engine.protection.guard import active_caps
from mimir_limit_optimizer.store import Store

CHECKPOINT_KEY = "protection"
RUNTIME_KEY = "protection_runtime"


def load_state(store: Store, log: logging.Logger) -> ProtectionState:
    """The checkpointed state, or a fresh one (an unreadable checkpoint is logged)."""
    raw = store.load_checkpoint(CHECKPOINT_KEY)
    if raw is None:
        return ProtectionState()
    try:
        state = ProtectionState.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("protection checkpoint unreadable, starting afresh: %s", exc)
        return ProtectionState()
    log.info(
        "protection resumed: %d tenants, %d clamps, level %s",
        len(state.tenants),
        len(state.clamps),
        Level(state.pressure.level).label,
    )
    return state


def save_runtime_switch(store: Store, enabled: bool, config_value: bool | None, now: float) -> None:
    payload = {"enabled": enabled, "config_value": config_value, "at": now}
    store.save_checkpoint(RUNTIME_KEY, json.dumps(payload).encode(), at=now)


def load_runtime_switch(store: Store) -> tuple[bool, bool] | None:
    """(enabled, the config's runtimeEnabled when the API switched it) from the store; None
    when the API never switched protection. Raises ValueError/KeyError when unreadable."""
    raw = store.load_checkpoint(RUNTIME_KEY)
    if raw is None:
        return None
    data = json.loads(raw)
    return bool(data["enabled"]), bool(data["config_value"])


def runtime_switch(config: Config, override: bool | None, base: bool | None) -> tuple[bool, str]:
    """(enabled, where from): the API's last word, until the config file's runtimeEnabled
    changes (then the file's value wins: the latest change wins)."""
    configured = config.circuit_breaker.runtime_enabled
    if override is not None and base == configured:
        return override, "api"
    return configured, "config"


def acting(config: Config, enabled: bool) -> bool:
    """Protection writes (and holds its caps in the plan): prod, enabled, no safety.freeze."""
    return config.mode is Mode.PROD and enabled and not config.safety.freeze


def stored_caps(store: Store, config: Config) -> GuardInputs:
    """What the service's protection would hold in a prod cycle now, from its checkpoints
    (for `mlo plan`): every active cap, unless protection is switched off or frozen."""
    raw = store.load_checkpoint(CHECKPOINT_KEY)
    if raw is None:
        return GuardInputs()
    try:
        switch = load_runtime_switch(store)
        state = ProtectionState.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError):
        return GuardInputs()
    enabled = runtime_switch(config, *(switch or (None, None)))[0]
    if not acting(config, enabled):
        return GuardInputs()
    return GuardInputs(protection=active_caps(state.clamps))
