"""The Kubernetes boundary: client construction, error translation, Lease leader election.

Only this package and `targets/configmap.py` import the `kubernetes` library; everything else
sees `KubeApi`, the `KubeError` hierarchy and `LeaderElector`.
"""

from mimir_limit_optimizer.k8s.client import KubeApi
from mimir_limit_optimizer.k8s.errors import (
    KubeConfigError,
    KubeConflictError,
    KubeError,
    KubeForbiddenError,
    KubeInvalidError,
    KubeNotFoundError,
    KubeUnavailableError,
)
from mimir_limit_optimizer.k8s.lease import LeaderElector
from mimir_limit_optimizer.k8s.lease_decision import Decision, LeaseRecord, decide

__all__ = [
    "Decision",
    "KubeApi",
    "KubeConfigError",
    "KubeConflictError",
    "KubeError",
    "KubeForbiddenError",
    "KubeInvalidError",
    "KubeNotFoundError",
    "KubeUnavailableError",
    "LeaderElector",
    "LeaseRecord",
    "decide",
]
