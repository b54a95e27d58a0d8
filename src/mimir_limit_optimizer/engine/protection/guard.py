"""Protection's decisions about limits, pure: which value is in force for each protected limit,
which writes the clamps ask of the overrides, and how active caps hold the slow cycle's plan.

The controller reads the target and the checkpoint, calls these, and does the writing and the
reporting (controller/protection.py); nothing here mutates a clamp or touches I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.config.protection import PROTECTED_LIMITS
from mimir_limit_optimizer.engine.overrides import OverridesDocument, OverridesValueError
from mimir_limit_optimizer.engine.plan import Change, Plan
from mimir_limit_optimizer.engine.protection.clamps import effective
from mimir_limit_optimizer.engine.protection.state import Clamp
from mimir_limit_optimizer.engine.usage import FloatArray

Key = tuple[str, str]  # (tenant, limit)


@dataclass(frozen=True)
class ProtectionCap:
    """An active cap the slow cycle must hold: the value and why it is there."""

    value: float
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClampWrite:
    """A write a clamp asks for; `ours` when the value in force is the one protection wrote."""

    key: Key
    change: Change
    tightening: bool


@dataclass(frozen=True)
class ClampWrites:
    """What the clamps ask of the overrides: the writes, and the clamps whose written value is
    no longer protection's (restored already, or changed by someone else): forget it."""

    writes: tuple[ClampWrite, ...]
    forget: tuple[Key, ...]

    @property
    def plan(self) -> Plan:
        return Plan(tuple(w.change for w in self.writes))


def override_value(doc: OverridesDocument | None, tenant: str, spec_name: str,
                   catalogue: Catalogue) -> float | None:  # fmt: skip
    """What the overrides document sets for `tenant`'s `spec_name` (None: not set, or not a
    number this tool can read)."""
    if doc is None:
        return None
    try:
        return doc.number(tenant, catalogue.limits[spec_name])
    except OverridesValueError:
        return None


def file_limits(doc: OverridesDocument | None, catalogue: Catalogue) -> dict[str, dict[str, float]]:
    """tenant -> protected limit -> the value the overrides set."""
    out: dict[str, dict[str, float]] = {}
    if doc is None:
        return out
    for tenant in doc.tenants():
        for limit in PROTECTED_LIMITS:
            value = override_value(doc, tenant, limit, catalogue)
            if value is not None:
                out.setdefault(tenant, {})[limit] = value
    return out


def configured_default(config: Config, limit: str, catalogue: Catalogue) -> float:
    """The default a tenant without an override gets, as far as the config knows
    (limitOverrides.<limit>.defaultValue), else Mimir's flag default from the catalogue."""
    override = config.dynamic_limits.limit_overrides.get(limit)
    if override is not None and override.default_value is not None:
        return float(override.default_value)
    return float(catalogue.limits[limit].default)


def in_force(
    config: Config,
    catalogue: Catalogue,
    tenants: Sequence[str],
    reported: Mapping[str, FloatArray],
    overrides: Mapping[str, Mapping[str, float]],
) -> dict[str, FloatArray]:
    """Per protected limit, (N,) aligned to `tenants`: the overrides, else what the source
    reported, else the configured default, else Mimir's (the same order as engine/current.py
    uses for the slow cycle)."""
    out: dict[str, FloatArray] = {}
    for limit in PROTECTED_LIMITS:
        seen = reported.get(limit)
        values = (
            seen.astype(np.float64, copy=True)
            if seen is not None
            else np.full(len(tenants), np.nan)
        )
        values[np.isnan(values)] = configured_default(config, limit, catalogue)
        for i, tenant in enumerate(tenants):
            own = overrides.get(tenant, {}).get(limit)
            if own is not None:
                values[i] = own
        out[limit] = values
    return out


def clamp_writes(
    clamps: Mapping[Key, Clamp],
    doc: OverridesDocument | None,
    catalogue: Catalogue,
    *,
    acting: bool,
) -> ClampWrites:
    """The changes the clamps ask of `doc`: tightenings (when acting), and raises of values
    protection wrote itself (recovery steps, restores). A value someone else changed since
    protection wrote it is theirs: never raised back."""
    writes: list[ClampWrite] = []
    forget: list[Key] = []
    for key, clamp in sorted(clamps.items()):
        tenant, limit = key
        file_value = override_value(doc, tenant, limit, catalogue)
        current = file_value if file_value is not None else clamp.target
        ours = clamp.written is not None and file_value == clamp.written
        if clamp.active and acting:
            want = clamp.desired()
            tighter = effective(want, limit, catalogue) < effective(current, limit, catalogue)
            if not (tighter or (ours and want != current)):
                continue
            why = tuple(clamp.reasons) or ("protection",)
        else:
            if clamp.written is None:
                continue
            if not ours:
                forget.append(key)
                continue
            want = clamp.target
            if want == current:
                forget.append(key)
                continue
            why = (
                "protection released: back to the value in force before it"
                if acting
                else "protection disabled at runtime: restoring the value in force before it",
            )
        tightening = effective(want, limit, catalogue) < effective(current, limit, catalogue)
        writes.append(ClampWrite(key, Change(tenant, limit, current, want, why), tightening))
    return ClampWrites(tuple(writes), tuple(forget))


def active_caps(clamps: Mapping[Key, Clamp]) -> dict[Key, ProtectionCap]:
    """The caps the slow cycle must hold (every active clamp)."""
    return {
        key: ProtectionCap(clamp.desired(), tuple(clamp.reasons))
        for key, clamp in clamps.items()
        if clamp.active
    }


def hold_caps(plan: Plan, caps: Mapping[Key, ProtectionCap], catalogue: Catalogue) -> Plan:
    """The plan with every active cap held: a change may end at or below its cap, never above
    it; one that would end where the limit already is goes."""
    if not caps:
        return plan
    kept: list[Change] = []
    for change in plan.changes:
        held = caps.get((change.tenant, change.limit))
        if held is None:
            kept.append(change)
            continue
        cap = held.value
        if effective(change.new, change.limit, catalogue) <= effective(
            cap, change.limit, catalogue
        ):
            kept.append(change)
            continue
        if cap == change.old:
            continue  # the limit stays at the cap: no change at all
        why = f"held at {cap:g} by protection" + (f" ({held.reasons[-1]})" if held.reasons else "")
        kept.append(dataclasses.replace(change, new=cap, reasons=(*change.reasons, why)))
    return Plan(tuple(kept))
