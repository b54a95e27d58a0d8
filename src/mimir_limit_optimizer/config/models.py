"""Typed configuration: the top-level `Config`, its mode and where usage is read from (Mimir,
the source: Prometheus or the synthetic cluster). camelCase keys in files (as the Go
optimizer's README documents them); snake_case attributes in code. Every duration is seconds;
every percentage is 0-100.

Its sections live beside it: recommendation.py (analysis, limits, change policy, safety),
service.py (target, verify, store, server, leader election), alerting.py, cost.py,
protection.py (circuit breaker, emergency) and ui.py."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_camel

from mimir_limit_optimizer.config.alerting import AlertingSettings
from mimir_limit_optimizer.config.cost import CostControlSettings
from mimir_limit_optimizer.config.protection import CircuitBreakerSettings, EmergencySettings
from mimir_limit_optimizer.config.recommendation import (
    ChangePolicy,
    DynamicLimits,
    EventSpike,
    LimitsSettings,
    SafetySettings,
    TenantScoping,
    TrendAnalysis,
)
from mimir_limit_optimizer.config.service import (
    LeaderElectionSettings,
    ServerSettings,
    StoreSettings,
    TargetSettings,
    VerifySettings,
)
from mimir_limit_optimizer.config.types import Duration, OpaqueSection
from mimir_limit_optimizer.config.ui import UiSettings


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


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
    # Lower bounds on durations (here and in every section) keep a typo such as `1ms` from
    # turning into a busy loop or a request that can never succeed.
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
