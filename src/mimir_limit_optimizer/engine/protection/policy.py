"""Per-tenant protection settings resolved once per tenant set: who may be touched, which
thresholds apply (auto, manual, hybrid) and with which safety margin.

Resolving globs costs a Python loop over tenants; callers cache the TenantPolicy while the
config and the tenant list stay the same (the step itself is vectorised).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.protection.model import KINDS, BoolArray, Kind
from mimir_limit_optimizer.engine.tenants import TenantMatcher, first_match
from mimir_limit_optimizer.engine.usage import FloatArray

MODE_AUTO, MODE_MANUAL, MODE_HYBRID = 0, 1, 2
_MODES = MappingProxyType({"auto": MODE_AUTO, "manual": MODE_MANUAL, "hybrid": MODE_HYBRID})


@dataclass(frozen=True)
class TenantPolicy:
    tenants: tuple[str, ...]
    # Safety margin as a fraction (0.25 for 25%).
    margin: FloatArray
    # Effective threshold mode per tenant (MODE_*).
    mode: np.ndarray
    # Manual thresholds per kind (NaN: none for that tenant).
    manual: dict[Kind, FloatArray]
    # Breakers may open (in scope, not pinned, perTenantConfig.enabled).
    breaker_enabled: BoolArray
    # Emergency actions may touch the tenant (in scope, not pinned, not exempt).
    emergency_eligible: BoolArray


def resolve_policy(config: Config, tenants: Sequence[str]) -> TenantPolicy:
    breaker = config.circuit_breaker
    scoping = config.tenant_scoping
    scope = TenantMatcher(
        scoping.include_list, scoping.skip_list, use_regex=scoping.use_regex
    ).select(tenants)
    if config.safety.pinned_tenants:
        scope &= ~TenantMatcher(config.safety.pinned_tenants).select(tenants)
    exempt = (
        TenantMatcher(config.emergency.exempt_tenants).select(tenants)
        if config.emergency.exempt_tenants
        else np.zeros(len(tenants), dtype=bool)
    )
    margins = breaker.auto_config.safety_margins
    n = len(tenants)
    margin = np.full(n, margins.default_margin / 100.0)
    mode = np.full(n, _MODES[breaker.mode], dtype=np.int64)
    enabled = np.ones(n, dtype=bool)
    manual = {kind: np.full(n, np.nan) for kind in KINDS}
    globals_ = breaker.thresholds
    for kind, value in (
        (Kind.INGESTION, globals_.ingestion),
        (Kind.SERIES, globals_.series),
        (Kind.QUERY, globals_.query),
    ):
        if value is not None:
            manual[kind][:] = value
    per_tenant = breaker.per_tenant_config
    overrides = breaker.blast_protection.tenant_overrides
    tenant_margins = margins.tenant_margins
    if per_tenant or overrides or tenant_margins:
        for i, tenant in enumerate(tenants):
            own_margin = first_match(tenant, tenant_margins) if tenant_margins else None
            if own_margin is not None:
                margin[i] = own_margin / 100.0
            spike = first_match(tenant, overrides) if overrides else None
            if spike is not None:
                for kind, value in (
                    (Kind.INGESTION, spike.ingestion_spike_threshold),
                    (Kind.SERIES, spike.series_spike_threshold),
                    (Kind.QUERY, spike.query_spike_threshold),
                ):
                    if value is not None:
                        manual[kind][i] = value
            entry = first_match(tenant, per_tenant) if per_tenant else None
            if entry is None:
                continue
            enabled[i] = entry.enabled
            if entry.mode is not None:
                mode[i] = _MODES[entry.mode]
            for kind, value in (
                (Kind.INGESTION, entry.thresholds.ingestion),
                (Kind.SERIES, entry.thresholds.series),
                (Kind.QUERY, entry.thresholds.query),
            ):
                if value is not None:
                    manual[kind][i] = value
    return TenantPolicy(
        tenants=tuple(tenants),
        margin=margin,
        mode=mode,
        manual=manual,
        breaker_enabled=scope & enabled,
        emergency_eligible=scope & ~exempt,
    )
