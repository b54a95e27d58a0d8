"""Typed settings of the protection features: the Go optimizer's `circuitBreaker` (with its nested
`blastProtection`) and `emergency` sections.

The optimizer is not in Mimir's data path: every protective action is a tightening of some
per-tenant limits in the overrides it manages (with a reason, a floor and a way back) and an
alert. So the Go optimizer's request-level breaker knobs (`failureThreshold`,
`requestVolumeThreshold`, `rateLimit`) are accepted with a warning and not used.

Defaults follow the seed: detection, thresholds and reporting always run; acting needs
`mode: prod` (in dry-run every action is reported as "would ...", nothing is written).
Durations are seconds (files accept `30s`, `5m`); percentages are 0-100.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.alias_generators import to_camel

from mimir_limit_optimizer.config.errors import Findings, KeyPath
from mimir_limit_optimizer.config.types import Duration, OpaqueSection


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


# The limits protection may write. Each breaker kind and emergency action names the limit it
# tightens; floors may be set for these only.
ProtectedLimit = Literal[
    "ingestion_rate", "ingestion_burst_size", "max_global_series_per_user", "max_query_parallelism"
]
PROTECTED_LIMITS: tuple[ProtectedLimit, ...] = (
    "ingestion_rate",
    "ingestion_burst_size",
    "max_global_series_per_user",
    "max_query_parallelism",
)

BreakerMode = Literal["auto", "manual", "hybrid"]
LevelName = Literal["warning", "emergency", "panic"]
# Emergency actions. `reduce_limits` (Go tool's name) is `reduce_top_contributors`: it never
# means a blanket cut. `blanket_cut` (every tenant's limits cut by blanketCutPercent, floors
# kept) happens only when listed explicitly.
EmergencyAction = Literal[
    "alert",
    "freeze_series_growth",
    "reduce_top_contributors",
    "reduce_limits",
    "throttle_ingestion",
    "blanket_cut",
]
Percent = float


def _actions(*names: EmergencyAction) -> Callable[[], list[EmergencyAction]]:
    return lambda: list(names)


# --- circuitBreaker -----------------------------------------------------------------------
class LimitMultipliers(_Section):
    """Auto thresholds: multiplier x the tenant's limit in force x (1 + safety margin)."""

    # Ingestion demand (accepted + rate-limited samples/s) vs ingestion_rate.
    ingestion_rate_multiplier: float = Field(1.5, ge=1.0, le=100.0)
    # Query rate vs the tenant's adapted query baseline (Mimir has no per-tenant query-rate
    # limit, so this one is always traffic-based).
    query_rate_multiplier: float = Field(2.0, ge=1.0, le=100.0)
    # In-memory series demand (in memory + the estimate of series rejected by the limit) vs
    # max_global_series_per_user, and vs the adapted series baseline.
    series_multiplier: float = Field(1.2, ge=1.0, le=100.0)
    # Ingestion demand vs what the tenant's token bucket passes in one rate window
    # (ingestion_rate + ingestion_burst_size / rateWindow); trips at once, no detection window.
    burst_multiplier: float = Field(1.2, ge=1.0, le=100.0)


class SafetyMargins(_Section):
    # Percent added on top of every auto threshold (fewer false positives).
    default_margin: Percent = Field(25.0, ge=0, le=1000)
    # Tenant glob -> margin in percent (most specific glob wins).
    tenant_margins: dict[str, Percent] = Field(default_factory=dict)


class RealtimeAdaptation(_Section):
    """Moves each tenant's auto thresholds toward its observed traffic, bounded per cycle,
    never above the limit-based threshold. Only samples of CLOSED, non-breaching tenants
    count, so a blast never becomes the baseline."""

    enabled: bool = True
    # One adaptation cycle.
    interval: Duration = Field(300.0, gt=0)
    # Share of the gap between the threshold and the traffic-based target closed per cycle.
    learning_rate: float = Field(0.1, gt=0, le=1)
    # A threshold moves by at most this percent per cycle.
    max_change_percent: Percent = Field(20.0, gt=0, le=100)
    # Percentile of the cycle's samples the target is computed from.
    percentile: Percent = Field(95.0, gt=0, le=100)
    # History read once at start-up (per signal, one query for all tenants) to seed the
    # baselines; 0 disables it (baselines then start from the first observation).
    warmup_window: Duration = Field(3600.0, ge=0)


class AutoConfig(_Section):
    # False: no auto thresholds; only manual thresholds are checked.
    enabled: bool = True
    limit_multipliers: LimitMultipliers = Field(default_factory=LimitMultipliers)
    safety_margins: SafetyMargins = Field(default_factory=SafetyMargins)
    realtime_adaptation: RealtimeAdaptation = Field(default_factory=RealtimeAdaptation)


class Thresholds(_Section):
    """Manual thresholds, absolute; unset = not checked in manual mode."""

    ingestion: float | None = Field(None, gt=0)  # samples/s (demand)
    series: float | None = Field(None, gt=0)  # in-memory series (demand)
    query: float | None = Field(None, gt=0)  # queries/s


class TenantBreakerConfig(_Section):
    """`circuitBreaker.perTenantConfig.<tenant glob>` (most specific glob wins)."""

    # False: the tenant's breakers never open (it is still reported).
    enabled: bool = True
    # Overrides `circuitBreaker.mode` for this tenant (hybrid is not a per-tenant mode).
    mode: Literal["auto", "manual"] | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)


class TenantSpikeOverride(_Section):
    """`blastProtection.tenantOverrides.<tenant glob>`: manual per-tenant thresholds."""

    ingestion_spike_threshold: float | None = Field(None, gt=0)  # samples/s
    query_spike_threshold: float | None = Field(None, gt=0)  # queries/s
    series_spike_threshold: float | None = Field(None, gt=0)  # in-memory series


class BlastProtection(_Section):
    """Cluster-wide blast detectors. A detection sustained for the detection window opens the
    breakers of the tenants that cause it: those furthest above their own baseline, until
    `topContributorShare` of the excess is covered (at most `maxTenantsPerEvent`)."""

    enabled: bool = True
    # Total ingestion demand over all tenants, samples/s.
    ingestion_spike_threshold: float = Field(1_000_000.0, gt=0)
    # Total query rate, queries/s.
    query_spike_threshold: float = Field(10_000.0, gt=0)
    # Total new series created per second.
    series_spike_threshold: float = Field(100_000.0, gt=0)
    # Hybrid mode: tenants without manual thresholds use auto thresholds (false: unchecked).
    use_auto_thresholds: bool = True
    tenant_overrides: dict[str, TenantSpikeOverride] = Field(default_factory=dict)
    top_contributor_share: Percent = Field(80.0, gt=0, le=100)
    max_tenants_per_event: int = Field(5, ge=1, le=1000)
    # Seed option: accepted with a warning, not used (the optimizer cannot shut Mimir down).
    auto_emergency_shutdown: bool = False


class BreakerRecovery(_Section):
    """HALF-OPEN: the clamp is raised by stepPercent of the value in force before the clamp,
    every stepInterval, while traffic stays under the threshold."""

    step_percent: Percent = Field(20.0, gt=0, le=100)
    step_interval: Duration = Field(120.0, gt=0)


class FastLoop(_Section):
    """The fast loop (blast protection and cluster pressure) and how its signals are read."""

    # Seconds between two fast-loop ticks.
    interval: Duration = Field(15.0, ge=1, le=300)
    # rate() window of the fast signals; must cover at least two scrapes.
    rate_window: Duration = Field(60.0, gt=0)
    # Label identifying one Mimir process (per-instance ratios of instance limits).
    instance_label: str = "instance"
    # Container names in cAdvisor / kube-state-metrics series.
    ingester_container: str = "ingester"
    distributor_container: str = "distributor"
    # `up == 0` of jobs matching this regular expression counts as a Mimir component down.
    mimir_jobs: str = ".*(mimir|cortex).*"


class CircuitBreakerSettings(_Section):
    """Per-tenant circuit breakers: CLOSED -> OPEN (offending limit clamped) -> HALF-OPEN
    (raised step by step) -> CLOSED (restored); a relapse goes back to OPEN."""

    # False: no per-tenant breakers at all (global detectors: blastProtection.enabled).
    enabled: bool = True
    # Runtime switch of every protective write (breakers and emergency actions), changed by
    # editing the file (hot reload) or over the API; detection and reports keep running.
    runtime_enabled: bool = True
    mode: BreakerMode = "auto"
    fast_loop: FastLoop = Field(default_factory=FastLoop)
    # A threshold must be breached this long before the breaker opens.
    detection_window: Duration = Field(30.0, ge=0)
    # OPEN lasts at least this long (doubled per relapse, up to 8x) before HALF-OPEN.
    cooldown: Duration = Field(300.0, ge=0)
    recovery: BreakerRecovery = Field(default_factory=BreakerRecovery)
    # Manual thresholds (mode manual; hybrid for tenants that have them).
    thresholds: Thresholds = Field(default_factory=Thresholds)
    auto_config: AutoConfig = Field(default_factory=AutoConfig)
    per_tenant_config: dict[str, TenantBreakerConfig] = Field(default_factory=dict)
    blast_protection: BlastProtection = Field(default_factory=BlastProtection)
    # Series clamp: current in-memory series + this percent (freezes growth).
    freeze_margin_percent: Percent = Field(5.0, ge=0, le=100)
    # A reduction never goes below (100 - this) percent of the value in force before it.
    # Series freezes (usage + freezeMarginPercent) never cut into usage: only floors bound them.
    max_clamp_depth_percent: Percent = Field(90.0, gt=0, le=100)
    # Absolute floors per limit (the catalogue's minimum applies anyway).
    floors: dict[ProtectedLimit, float] = Field(default_factory=dict)
    # Query breaker: max_query_parallelism x this factor.
    query_clamp_factor: float = Field(0.5, gt=0, lt=1)
    # Bearer token for POST /api/v1/circuit-breaker/enable|disable (unset: the mutating
    # endpoints answer 403). apiTokenFile is read at each request (rotation-friendly).
    api_token: SecretStr | None = None
    api_token_file: str | None = None
    # Seed options of a request-level breaker: accepted with a warning, not used.
    failure_threshold: float | None = None
    request_volume_threshold: int | None = None
    rate_limit: OpaqueSection | None = None

    @model_validator(mode="after")
    def _one_token(self) -> CircuitBreakerSettings:
        if self.api_token is not None and self.api_token_file is not None:
            raise ValueError("set either apiToken or apiTokenFile, not both")
        return self


# --- emergency ----------------------------------------------------------------------------
class LevelThresholds(_Section):
    """Pressure (percent of a capacity) at which each level starts."""

    warning: Percent = Field(75.0, gt=0, le=1000)
    emergency: Percent = Field(90.0, gt=0, le=1000)
    panic: Percent = Field(95.0, gt=0, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> LevelThresholds:
        if not self.warning <= self.emergency <= self.panic:
            raise ValueError("levels out of order: use warning <= emergency <= panic")
        return self


class SustainedFor(_Section):
    """How long a pressure signal must stay above a level's threshold to count."""

    cpu: Duration = Field(120.0, ge=0)  # seed: CPU > 90% for 2 minutes
    memory: Duration = Field(60.0, ge=0)  # seed: memory > 85% for 1 minute
    series: Duration = Field(60.0, ge=0)  # ingester in-memory series vs max_series
    ingestion: Duration = Field(60.0, ge=0)  # distributor ingestion vs max_ingestion_rate
    components: Duration = Field(60.0, ge=0)  # Mimir jobs down (`up == 0`)
    reload: Duration = Field(0.0, ge=0)  # runtime config reload failing


class PanicMode(_Section):
    # False: panic is reported and alerted, its actions are not taken.
    enabled: bool = True
    # Panic thresholds of CPU and memory (other signals: emergency.thresholds.panic).
    cpu_threshold: Percent = Field(90.0, gt=0, le=1000)
    memory_threshold: Percent = Field(85.0, gt=0, le=1000)
    actions: list[EmergencyAction] = Field(
        default_factory=_actions("alert", "freeze_series_growth", "reduce_top_contributors")
    )
    # Only with `blanket_cut` in actions: every tenant's limits x (1 - this/100), floors kept.
    blanket_cut_percent: Percent = Field(50.0, gt=0, lt=100)


class EmergencyRecovery(_Section):
    """Auto-recovery: when every signal stays under these for stableFor, emergency clamps
    come back by stepPercent of the value in force before them every stepInterval; any
    relapse stops the recovery."""

    cpu_below: Percent = Field(70.0, gt=0, le=1000)
    memory_below: Percent = Field(75.0, gt=0, le=1000)
    stable_for: Duration = Field(600.0, ge=0)
    step_percent: Percent = Field(10.0, gt=0, le=100)
    step_interval: Duration = Field(300.0, gt=0)


class EmergencySettings(_Section):
    """Cluster pressure levels normal < warning < emergency < panic and their actions."""

    enabled: bool = True
    thresholds: LevelThresholds = Field(default_factory=LevelThresholds)
    sustained_for: SustainedFor = Field(default_factory=SustainedFor)
    warning_actions: list[EmergencyAction] = Field(default_factory=_actions("alert"))
    emergency_actions: list[EmergencyAction] = Field(
        default_factory=_actions("alert", "freeze_series_growth")
    )
    panic_mode: PanicMode = Field(default_factory=PanicMode)
    # Level reached when a Mimir job has instances down for sustainedFor.components.
    component_down_level: LevelName = "warning"
    # Level reached when Mimir's runtime config reload fails (our writes are not loaded).
    reload_failure_level: LevelName = "warning"
    # Reductions aim to bring the pressure down to this percent.
    reduce_to_percent: Percent = Field(85.0, gt=0, le=100)
    # While at emergency or panic, actions are re-evaluated this often (clamps only tighten).
    action_interval: Duration = Field(60.0, gt=0)
    recovery: EmergencyRecovery = Field(default_factory=EmergencyRecovery)
    # Tenant globs emergency actions never touch (critical services).
    exempt_tenants: list[str] = Field(default_factory=list)


# --- loader step ----------------------------------------------------------------------------
def move_blast_protection(data: dict[str, Any], findings: Findings) -> None:
    """A top-level `blastProtection` section (as some seed snippets write it) is read as
    `circuitBreaker.blastProtection`, with a warning; both set is an error naming both."""
    if "blastProtection" not in data:
        return
    old: KeyPath = ("blastProtection",)
    new: KeyPath = ("circuitBreaker", "blastProtection")
    breaker = data.get("circuitBreaker")
    if breaker is None:
        breaker = data["circuitBreaker"] = {}
    if not isinstance(breaker, dict):
        return  # the model reports circuitBreaker's wrong type
    if "blastProtection" in breaker:
        other = findings.origins.line_of(new)
        findings.error(
            old,
            "also set as circuitBreaker.blastProtection" + (f" (line {other})" if other else ""),
            "keep only circuitBreaker.blastProtection",
            (other,) if other else (),
        )
        return
    breaker["blastProtection"] = data.pop("blastProtection")
    findings.origins.move(old, new)
    findings.warn(new, "read from top-level blastProtection; move it under circuitBreaker")
