"""Configuration of the running service: where it writes (the overrides target, load
verification), keeps its state (the store), serves (HTTP endpoints, which tenants get series
on /metrics) and coordinates replicas (leader election). camelCase keys in files, snake_case
attributes; durations in seconds."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from mimir_limit_optimizer.config.alerting import Headers
from mimir_limit_optimizer.config.types import Duration


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


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
