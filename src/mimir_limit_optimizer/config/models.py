"""Typed configuration. camelCase keys in files (as the Go optimizer's README documents them);
snake_case attributes in code. Every duration is seconds; every percentage is 0-100."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_camel

from mimir_limit_optimizer.config.alerting import AlertingSettings, Headers
from mimir_limit_optimizer.config.cost import CostControlSettings
from mimir_limit_optimizer.config.protection import CircuitBreakerSettings, EmergencySettings
from mimir_limit_optimizer.config.types import Duration, HourRange, OpaqueSection
from mimir_limit_optimizer.config.ui import UiSettings


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


# A limit value in base units (per second, count, bytes, seconds): Mimir has no negative limits.
LimitValue = Annotated[float, Field(ge=0)]


class Mode(StrEnum):
    DRY_RUN = "dry-run"  # compute, show, audit; never write
    PROD = "prod"  # apply plans


class MimirSettings(_Section):
    namespace: str = "mimir"
    config_map_name: str = "mimir-runtime"
    # Flavour of the limit catalogue (only `mimir` ships today).
    flavour: Literal["mimir"] = "mimir"
    # Used only when `cortex_distributor_replication_factor` is absent from the source.
    replication_factor: int = Field(3, ge=1, le=10)
    # The cluster's own `limits:` defaults (what a tenant without an override gets), read from
    # `<configUrl>/config` (any Mimir component; unset: verify.mimirUrl when that is set) and
    # from a copy of Mimir's config file. Without either, `cortex_limits_defaults` or
    # limitOverrides.defaultValue; else Mimir's flag defaults, and recommendations say so.
    config_url: str | None = None
    config_file: str | None = None
    # Seed option: accepted with a warning, not used (runtime overrides need no rollout).
    trigger_rollout: bool = False


class BasicAuth(_Section):
    username: str
    password: SecretStr | None = None
    password_file: str | None = None
    password_env: str | None = None


class PrometheusSettings(_Section):
    # Base URL of Prometheus, or of Mimir's query path (then set path_prefix and tenant).
    url: str = "http://127.0.0.1:9090"
    # Mimir serves the Prometheus API under `/prometheus`.
    path_prefix: str = ""
    # X-Scope-OrgID for Mimir (the meta-monitoring tenant); empty for plain Prometheus.
    tenant: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # Extra label matchers added to every query, e.g. {cluster: prod, namespace: mimir}.
    selectors: dict[str, str] = Field(default_factory=dict)
    bearer_token: SecretStr | None = None
    bearer_token_file: str | None = None
    bearer_token_env: str | None = None
    basic_auth: BasicAuth | None = None
    tls_verify: bool = True
    ca_file: str | None = None
    # Lower bounds on durations (here and below) keep a typo such as `1ms` from turning into
    # a busy loop or a request that can never succeed.
    timeout: Duration = Field(30.0, ge=0.1)
    # Most requests at the server at once. With adaptive_concurrency the source starts at one
    # and adds more only while throughput rises (a one-core Prometheus gains nothing from
    # more, a Mimir with many queriers does); without it, always this many.
    max_concurrency: int = Field(4, ge=1, le=64)
    adaptive_concurrency: bool = True
    retries: int = Field(3, ge=0, le=10)
    # Resolution of range queries (seconds); 5m gives 2016 points for 7 days.
    step: Duration = Field(300.0, ge=1)
    # Long ranges are split into chunks of this length (Mimir's query limits apply per query).
    chunk_length: Duration = Field(86400.0, ge=1)
    # Window of rate() in every query; must cover at least two scrapes.
    rate_interval: Duration = Field(300.0, ge=1)


class SourceSettings(_Section):
    kind: Literal["synthetic", "prometheus"] = "synthetic"
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)


class ConfigMapTarget(_Section):
    """The optimizer's own ConfigMap (listed second in Mimir's -runtime-config.file), or a key
    of Mimir's runtime ConfigMap (then a `helm upgrade` may overwrite it: see MIMIR_FACTS)."""

    namespace: str = "mimir"
    name: str = "mimir-limit-optimizer-overrides"
    key: str = "overrides.yaml"
    create_if_missing: bool = True
    # Auth: in-cluster service account when running in a pod, else this kubeconfig (or
    # $KUBECONFIG / ~/.kube/config) and context.
    kubeconfig: str | None = None
    context: str | None = None
    # Attempts on 409 Conflict (re-read, re-plan, retry with backoff).
    conflict_retries: int = Field(5, ge=0, le=50)


class TargetSettings(_Section):
    kind: Literal["file", "configmap"] = "file"
    # The runtime overrides file: current limits are read from it and, in prod, written to it.
    # Empty with the synthetic source: <dataDir>/overrides.yaml.
    path: str | None = None
    # Runtime files listed BEFORE the optimizer's in Mimir's `-runtime-config.file` (e.g. the
    # one the Helm chart renders). Read only: Mimir merges the list left to right, so a limit
    # set there is the current value unless the optimizer's own file overrides it.
    base_files: list[str] = Field(default_factory=list)
    # Seconds to wait for the write lock held by another writer.
    lock_timeout: Duration = Field(10.0, ge=0.1)
    config_map: ConfigMapTarget = Field(default_factory=ConfigMapTarget)


class VerifySettings(_Section):
    """After a write, prove Mimir loaded it (skipped when `mimirUrl` is empty)."""

    # Base URL of a Mimir (or Cortex) component serving /runtime_config and /metrics.
    mimir_url: str | None = None
    # Values under secret-looking names (Authorization, X-Api-Key) are SecretStr: redacted.
    headers: Headers = Field(default_factory=dict)
    # How long to wait for the new values to appear: Mimir reloads every 10 s, and a mounted
    # ConfigMap reaches the pods only after the kubelet's sync (about a minute or more).
    timeout: Duration = Field(180.0, ge=0.1)
    poll_interval: Duration = Field(2.0, ge=0.01)
    # Restore the previous revision when verification fails.
    rollback_on_failure: bool = True


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


class StoreSettings(_Section):
    # SQLAlchemy URL: sqlite:///path (default <dataDir>/mlo.db) or postgresql://...
    url: str | None = None
    audit_max_entries: int = Field(100_000, ge=1)
    audit_max_age: Duration = Field(90 * 86400.0, ge=60)


class TenantMetricsSettings(_Section):
    """Which tenants get per-tenant series on the optimizer's own /metrics. At 10,000 tenants
    every tenant x limit is ~200,000 series per scrape, weighing on the Prometheus the
    optimizer reads from; cluster totals are always exported."""

    # relevant: tenants whose series say something (a change planned this cycle or within
    # `recent`, throttled now, at a tier cap, an open circuit breaker) plus the `topN`
    # closest to their limits; all: every tenant (small clusters); none: totals only.
    mode: Literal["relevant", "all", "none"] = "relevant"
    # Also export the N tenants whose usage (p95) is closest to or above a limit in force.
    top_n: int = Field(10, ge=0)
    # A tenant that had a planned change keeps its series this long (seconds) afterwards.
    recent: Duration = Field(3600.0, ge=0)
    # Upper bound on per-tenant series per family (tenants x limits); 0 = no bound. Keeps a
    # scrape under ~20,000 series with the default families even when many tenants qualify.
    max_series: int = Field(4000, ge=0)


class ServerSettings(_Section):
    """HTTP endpoints; loopback unless configured otherwise."""

    host: str = "127.0.0.1"
    metrics_port: int = Field(8080, ge=0, le=65535)  # /metrics
    health_port: int = Field(8081, ge=0, le=65535)  # /healthz, /readyz
    ui_port: int = Field(8082, ge=0, le=65535)
    enabled: bool = True
    tenant_metrics: TenantMetricsSettings = Field(default_factory=TenantMetricsSettings)


class LeaderElectionSettings(_Section):
    """Kubernetes Lease (coordination.k8s.io/v1), timings as client-go's defaults."""

    enabled: bool = False
    namespace: str = "mimir"
    lease_name: str = "mimir-limit-optimizer"
    # Defaults to the hostname (the pod name in Kubernetes).
    identity: str | None = None
    lease_duration: Duration = Field(15.0, ge=1)
    renew_deadline: Duration = Field(10.0, ge=0.1)
    retry_period: Duration = Field(2.0, ge=0.05)


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


class SyntheticSettings(_Section):
    # Seed option: accepted with a warning, not used; `source.kind` selects the source.
    enabled: bool = True
    tenant_count: int = Field(24, ge=1, le=100_000)
    seed: int = 42
    # History generated up to "now" (seconds) and its resolution.
    history: Duration = Field(7 * 86400.0, gt=0)
    step: Duration = Field(300.0, ge=1)


# Sections the Go optimizer's README documents that this version accepts but does not act on yet.
UNUSED_SEED_SECTIONS = (
    "performance",
    "metricsDiscovery",
    "auditLog",
    "controller",
)


# Keys of used sections the Go optimizer documents, this version accepts but does not act on:
# (key path, why). Each one present in a file, the environment or the CLI gives one warning.
UNUSED_SEED_KEYS: tuple[tuple[str, str], ...] = (
    ("mimir.triggerRollout", "Mimir reloads runtime overrides without a rollout"),
    (
        "eventSpike.detectionWindow",
        "the fast loop uses circuitBreaker.detectionWindow, cooldown and limitMultipliers",
    ),
    (
        "eventSpike.cooldownPeriod",
        "the fast loop uses circuitBreaker.detectionWindow, cooldown and limitMultipliers",
    ),
    (
        "eventSpike.maxSpikeMultiplier",
        "the fast loop uses circuitBreaker.detectionWindow, cooldown and limitMultipliers",
    ),
    ("dynamicLimits.autoDetect", "the limit catalogue decides which limits exist"),
    ("synthetic.enabled", "source.kind selects the synthetic source"),
    ("ui.port", "server.uiPort is the UI's port"),
    ("ui.service", "the Kubernetes Service of the UI is the Helm chart's (values.yaml)"),
    ("ui.ingress", "the Ingress of the UI is the Helm chart's (values.yaml)"),
    ("circuitBreaker.failureThreshold", "a request-level breaker needs the data path"),
    ("circuitBreaker.requestVolumeThreshold", "a request-level breaker needs the data path"),
    ("circuitBreaker.rateLimit", "the optimizer cannot rate-limit requests itself"),
    (
        "circuitBreaker.blastProtection.autoEmergencyShutdown",
        "the optimizer cannot shut Mimir down; levels follow cluster pressure",
    ),
)


class Config(_Section):
    mode: Mode = Mode.DRY_RUN
    # Unset: each limit uses its catalogue buffer (20% for most); set: this buffer for all.
    buffer_percentage: float | None = Field(None, ge=0, le=1000)
    # At least one second: `1ms` would be a busy loop against Prometheus and the store.
    update_interval: Duration = Field(300.0, ge=1)
    mimir: MimirSettings = Field(default_factory=MimirSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    target: TargetSettings = Field(default_factory=TargetSettings)
    tenant_scoping: TenantScoping = Field(default_factory=TenantScoping)
    trend_analysis: TrendAnalysis = Field(default_factory=TrendAnalysis)
    event_spike: EventSpike = Field(default_factory=EventSpike)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    tenant_tier_mapping: dict[str, str] = Field(default_factory=dict)
    dynamic_limits: DynamicLimits = Field(default_factory=DynamicLimits)
    change_policy: ChangePolicy = Field(default_factory=ChangePolicy)
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings)
    # Where local state lives by default (SQLite store, overrides file of the embedded default).
    data_dir: str = ".data"
    verify: VerifySettings = Field(default_factory=VerifySettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    leader_election: LeaderElectionSettings = Field(default_factory=LeaderElectionSettings)
    # The web UI on server.uiPort (config/ui.py, docs/ui.md).
    ui: UiSettings = Field(default_factory=UiSettings)
    # Costs, budgets and their enforcement (config/cost.py); used, not opaque.
    cost_control: CostControlSettings = Field(default_factory=CostControlSettings)
    # Blast protection and panic mode (config/protection.py); used, not opaque. A top-level
    # `blastProtection` is read as circuitBreaker.blastProtection (with a warning).
    circuit_breaker: CircuitBreakerSettings = Field(default_factory=CircuitBreakerSettings)
    emergency: EmergencySettings = Field(default_factory=EmergencySettings)
    # Channels, routing and delivery (config/alerting.py); used, not opaque.
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    performance: OpaqueSection | None = None
    metrics_discovery: OpaqueSection | None = None
    audit_log: OpaqueSection | None = None
    controller: OpaqueSection | None = None
