"""Per-tenant, per-limit policy resolved from config: tier, buffer, floors, ceilings, caps.

Precedence (most specific first), documented in docs/engine.md:
- buffer: the tenant's tier `bufferPercentage` > `dynamicLimits.limitOverrides.<limit>.bufferFactor`
  > `dynamicLimits.defaultBuffer` > `bufferPercentage` when set in config > the catalogue's buffer.
- min/max: `limitOverrides.<limit>.minValue/maxValue` > `limits.minLimits/maxLimits` > catalogue.
- tier cap: `limits.tenantTiers.<tier>.limits.<limit>` caps the recommendation (and is the value
  of policy-only limits for that tier).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mimir_limit_optimizer.catalogue import LimitSpec
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.tenants import first_match
from mimir_limit_optimizer.engine.usage import FloatArray


def tenant_tiers(config: Config, tenants: Sequence[str]) -> list[str | None]:
    """Tier name per tenant from `tenantTierMapping` globs (None: no tier)."""
    mapping = config.tenant_tier_mapping
    if not mapping:
        return [None] * len(tenants)
    return [first_match(tenant, mapping) for tenant in tenants]


@dataclass(frozen=True)
class LimitPolicy:
    buffer_percent: FloatArray  # (N,)
    minimum: float
    maximum: float
    cap: FloatArray  # (N,) tier cap, +inf when none
    tier_value: FloatArray  # (N,) tier value for policy-only limits, NaN when none
    default_value: float | None  # limitOverrides.<limit>.defaultValue


def resolve_policy(config: Config, spec: LimitSpec, tiers: Sequence[str | None]) -> LimitPolicy:
    override = config.dynamic_limits.limit_overrides.get(spec.name)
    if override is not None and override.buffer_factor is not None:
        base_buffer = override.buffer_factor
    elif config.dynamic_limits.default_buffer is not None:
        base_buffer = config.dynamic_limits.default_buffer
    elif config.buffer_percentage is not None:
        base_buffer = config.buffer_percentage
    else:
        base_buffer = spec.buffer_percent

    minimum = spec.min_value
    maximum = spec.max_value
    if spec.name in config.limits.min_limits:
        minimum = config.limits.min_limits[spec.name]
    if spec.name in config.limits.max_limits:
        maximum = config.limits.max_limits[spec.name]
    if override is not None and override.min_value is not None:
        minimum = override.min_value
    if override is not None and override.max_value is not None:
        maximum = override.max_value

    n = len(tiers)
    buffer = np.full(n, base_buffer, dtype=np.float64)
    cap = np.full(n, np.inf)
    tier_value = np.full(n, np.nan)
    for tier_name, tier in config.limits.tenant_tiers.items():
        rows = np.fromiter((t == tier_name for t in tiers), dtype=bool, count=n)
        if not rows.any():
            continue
        if tier.buffer_percentage is not None:
            buffer[rows] = tier.buffer_percentage
        if spec.name in tier.limits:
            cap[rows] = tier.limits[spec.name]
            tier_value[rows] = tier.limits[spec.name]
    default_value = override.default_value if override is not None else None
    return LimitPolicy(buffer, minimum, max(maximum, minimum), cap, tier_value, default_value)
