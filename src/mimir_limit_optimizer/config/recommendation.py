"""Configuration of what the optimizer recommends and how far one cycle may move a limit:
tenant scoping, trend analysis (percentile or histogram, the per-tenant adaptive rules), event
spikes, the managed limits with their bounds and tiers, the change policy and the safety caps.
camelCase keys in files, snake_case attributes; durations in seconds, percentages 0-100."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from mimir_limit_optimizer.config.types import Duration, HourRange


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


# A limit value in base units (per second, count, bytes, seconds): Mimir has no negative limits.
LimitValue = Annotated[float, Field(ge=0)]


class TenantScoping(_Section):
    skip_list: list[str] = Field(default_factory=list)
    include_list: list[str] = Field(default_factory=list)
    # False: shell globs (`internal-*`); True: Python regular expressions (full match).
    use_regex: bool = False


class HistogramSettings(_Section):
    """VPA-like decaying histogram."""

    half_life: Duration = Field(86400.0, gt=0)
    target_percentile: float = Field(95.0, gt=0, le=100)
    lower_percentile: float = Field(50.0, gt=0, le=100)
    upper_percentile: float = Field(99.0, gt=0, le=100)
    # History (seconds) at which confidence reaches 1.
    full_confidence_after: Duration = Field(7 * 86400.0, gt=0)


class AdaptiveSettings(_Section):
    """Per-tenant rules read from the tenant's own history (docs/engine.md, "Memory, growth
    and variability"). Each can be turned off: variabilityReference 0, quietShare 0,
    longTermWindow 0, growthHorizon 0, safeLoweringPercent 0."""

    # The buffer is scaled by (the tenant's short-term coefficient of variation / this),
    # within [bufferScaleMin, bufferScaleMax]: a steady tenant carries less, a noisy one more.
    variability_reference: float = Field(0.10, ge=0, le=10)
    buffer_scale_min: float = Field(1.0, gt=0, le=1)
    buffer_scale_max: float = Field(3.0, ge=1, le=20)
    # A tenant whose day level (a day's 70th percentile) fell below this share of its highest
    # day level in the window went quiet (or had part of its load moved away): it is not
    # lowered for quietHold, then only down to quietKeep x its remembered level (its highest
    # hour in the window) + the full buffer, while that hour is in the window.
    quiet_share: float = Field(0.75, ge=0, lt=1)
    quiet_hold: Duration = Field(2 * 86400.0, ge=0)
    quiet_keep: float = Field(1.0, ge=0, le=1)
    # Long-term peak memory (engine/peak_memory.py): each tenant's highest day level (a
    # day's 70th percentile of hourly means) is remembered for longTermWindow after the last
    # cycle whose analysis window held it (0: off, the engine remembers only its window). A
    # tenant whose window's highest day level is below 90% of it (quiet for as long as the
    # window) is lowered only down to longTermKeep x that level + the buffer until then.
    long_term_window: Duration = Field(30 * 86400.0, ge=0, le=365 * 86400.0)
    long_term_keep: float = Field(1.0, ge=0, le=1)
    # A throttled tenant that grew day over day is raised to its level projected this far
    # ahead (the time it is not lowered after throttling).
    growth_horizon: Duration = Field(86400.0, ge=0)
    # For a tenant whose short-term variation is above variabilityReference, the percentile
    # strategy's estimate is at least this percentile of the window (before the buffer): a
    # noisy or bursty tenant's tail held steady (0: off).
    tail_percentile: float = Field(99.0, ge=0, le=100)
    # Spikes (eventSpike) that recur this often per day of history are bursts the tenant
    # sends routinely: kept in its demand instead of excluded (0: always excluded).
    recurring_spikes_per_day: float = Field(1.0, ge=0)
    # A lowering of a usage-driven limit never goes below the highest hourly level of the
    # last max(quietHold, 1 day) (it waits), and then steps down by up to this percent per
    # cycle instead of changePolicy.maxDecreasePercent: fewer, larger steps (0: off).
    safe_lowering_percent: float = Field(75.0, ge=0, le=100)


class TrendAnalysis(_Section):
    analysis_window: Duration = Field(7 * 86400.0, gt=0)
    strategy: Literal["percentile", "histogram"] = "percentile"
    percentile: float = Field(95.0, gt=0, le=100)
    use_moving_average: bool = False
    moving_average_window: Duration = Field(900.0, gt=0)
    # Also cover the highest sustained (moving-average) peak, not only the percentile.
    include_peaks: bool = False
    # "startHour-endHour" (UTC, inclusive) -> factor on the buffered value in those hours.
    time_of_day_buffers: dict[HourRange, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict
    )
    min_history: Duration = Field(86400.0, ge=0)
    histogram: HistogramSettings = Field(default_factory=HistogramSettings)
    adaptive: AdaptiveSettings = Field(default_factory=AdaptiveSettings)


class EventSpike(_Section):
    enabled: bool = True
    # A point is a spike when above threshold x the moving baseline.
    threshold: float = Field(2.0, gt=1)
    baseline_window: Duration = Field(6 * 3600.0, gt=0)
    # Elevations longer than this are a new level, not a spike.
    max_duration: Duration = Field(3 * 3600.0, gt=0)
    # Seed options of the fast loop: accepted with a warning, not used (the fast loop has
    # its own: circuitBreaker.detectionWindow, cooldown, autoConfig.limitMultipliers).
    detection_window: Duration = Field(300.0, gt=0)
    cooldown_period: Duration = Field(1800.0, ge=0)
    max_spike_multiplier: float = Field(5.0, gt=1)


class TierSettings(_Section):
    buffer_percentage: float | None = Field(None, ge=0, le=1000)
    # Per-limit caps for the tier (and the value of policy-only limits).
    limits: dict[str, LimitValue] = Field(default_factory=dict)


class LimitsSettings(_Section):
    model_config = ConfigDict(extra="allow")  # legacy shorthand keys, see loader
    min_limits: dict[str, LimitValue] = Field(default_factory=dict)
    max_limits: dict[str, LimitValue] = Field(default_factory=dict)
    tenant_tiers: dict[str, TierSettings] = Field(default_factory=dict)


class LimitOverride(_Section):
    # The limit a tenant without an override gets: your cluster's global default (Mimir's
    # `limits` block). Read as the current value; never written (tiers set policy values).
    default_value: LimitValue | None = None
    min_value: LimitValue | None = None
    max_value: LimitValue | None = None
    # Buffer in percent for this limit.
    buffer_factor: float | None = Field(None, ge=0, le=1000)
    enabled: bool = True


DEFAULT_ENABLED_LIMITS = (
    "ingestion_rate",
    "ingestion_burst_size",
    "max_global_series_per_user",
    "max_global_exemplars_per_user",
    "max_global_metadata_per_user",
    "request_rate",
    "request_burst_size",
    "max_label_names_per_series",
    "max_label_name_length",
    "max_label_value_length",
)


class DynamicLimits(_Section):
    enabled: bool = True
    default_buffer: float | None = Field(None, ge=0, le=1000)
    # Seed option ("automated limit discovery"): accepted with a warning, not used; the
    # catalogue decides which limits exist.
    auto_detect: bool = True
    enabled_limits: list[str] = Field(default_factory=lambda: list(DEFAULT_ENABLED_LIMITS))
    limit_overrides: dict[str, LimitOverride] = Field(default_factory=dict)


class ChangePolicy(_Section):
    """How far one cycle may move a limit."""

    # No change when the new value is within this percent of the current one.
    deadband_percent: float = Field(5.0, ge=0, le=100)
    # Raise fast, lower slowly.
    max_increase_percent: float = Field(100.0, gt=0)
    max_decrease_percent: float = Field(10.0, gt=0, le=100)
    # Significant digits kept when rounding recommendations up (2: 12,345 -> 13,000).
    rounding_digits: int = Field(2, ge=1, le=6)
    # Discard-driven limits are raised by this percent when their discards are seen.
    discard_raise_percent: float = Field(25.0, gt=0)
    # When a limit is 0 and 0 means "unlimited", recommend a finite limit (a tightening nobody
    # asked for). Off by default: the reasons still show the value it would recommend.
    tighten_unlimited: bool = False
    # A tenant x limit changed less than this long ago is not changed again (no flapping; a
    # second run right after an apply changes nothing).
    cooldown: Duration = Field(1800.0, ge=0)


class SafetySettings(_Section):
    """Caps on what one cycle may apply (dry-run reports what they would hold back)."""

    max_tenants_per_cycle: int = Field(50, ge=0)
    # Changes moving a limit by more than this percent are held back (engine steps are
    # usually smaller; this is the last line).
    max_change_percent: float = Field(200.0, gt=0)
    # Pause applying entirely (plans are still computed and audited).
    freeze: bool = False
    # Tenants (globs) the optimizer never touches.
    pinned_tenants: list[str] = Field(default_factory=list)
