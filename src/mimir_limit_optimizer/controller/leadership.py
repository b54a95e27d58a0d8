"""Whether this replica leads: always, without leader election; otherwise while it holds the
Kubernetes Lease (k8s/lease.py, its elector on its own thread). Losing the lease stops
applying at once; the role and the leader go to /healthz and the leader gauge."""

from __future__ import annotations

import socket
import threading
import time

from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.observability.health import HealthState
from mimir_limit_optimizer.observability.metrics import ControllerMetrics


class Leadership:
    def __init__(self, *, metrics: ControllerMetrics, health: HealthState) -> None:
        self.metrics = metrics
        self.health = health
        self.elector: object | None = None
        self._leader = threading.Event()
        self._identity: str | None = None

    def start(self, config: Config, stop: threading.Event) -> None:
        settings = config.leader_election
        if not settings.enabled:
            self._leader.set()
            self.metrics.leader.set(1)
            self.health.set_role("standalone")
            return
        from mimir_limit_optimizer.k8s.client import KubeApi
        from mimir_limit_optimizer.k8s.lease import LeaderElector

        cm = config.target.config_map
        identity = settings.identity or socket.gethostname()
        self._identity = identity
        elector = LeaderElector(
            KubeApi.from_settings(cm.kubeconfig, cm.context),
            namespace=settings.namespace,
            name=settings.lease_name,
            identity=identity,
            lease_duration=settings.lease_duration,
            renew_deadline=settings.renew_deadline,
            retry_period=settings.retry_period,
            on_started_leading=lambda: self._set_leader(True),
            on_stopped_leading=lambda: self._set_leader(False),
        )
        self.elector = elector
        self.health.set_role("follower")
        threading.Thread(
            target=elector.run, args=(stop,), name="leader-election", daemon=True
        ).start()

    def await_election(self, config: Config, stop: threading.Event) -> None:
        """--once with leader election: give the election one lease duration to settle, so the
        single cycle runs as leader when this replica can lead (a follower still only audits)."""
        settings = config.leader_election
        if not settings.enabled:
            return
        deadline = time.monotonic() + settings.lease_duration + settings.retry_period
        while not self.is_leader() and time.monotonic() < deadline and not stop.is_set():
            stop.wait(0.05)

    def _set_leader(self, leading: bool) -> None:
        elector = self.elector
        holder = getattr(elector, "leader_identity", None) if elector is not None else None
        if leading:
            self._leader.set()
            self.health.set_role("leader", leader=self._identity)
        else:
            self._leader.clear()  # stop applying at once
            self.health.set_role("follower", leader=holder)
        self.metrics.leader.set(1 if leading else 0)

    def is_leader(self) -> bool:
        elector = self.elector
        if elector is not None and not getattr(elector, "is_leader", False):
            return False
        return self._leader.is_set()
