"""The optimizer's own telemetry: Prometheus metrics on an injected registry, loop health."""

from mimir_limit_optimizer.observability.health import ROLES, HealthState
from mimir_limit_optimizer.observability.metrics import (
    PHASES,
    RECONCILE_RESULTS,
    ControllerMetrics,
)

__all__ = ["PHASES", "RECONCILE_RESULTS", "ROLES", "ControllerMetrics", "HealthState"]
