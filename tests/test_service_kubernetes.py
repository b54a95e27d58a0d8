"""Two `mlo run` services against the in-process fake Kubernetes API server (tests/kube_fake.py),
with the ConfigMap target and Lease leader election: only the Lease holder applies (the other
audits "not the leader"), the ConfigMap holds a valid runtime file with the other keys kept, the
two are never leaders at the same instant, and the follower takes over within the lease
duration when the leader stops."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import httpx

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.controller.config_provider import ConfigProvider
from mimir_limit_optimizer.controller.service import Service
from mimir_limit_optimizer.engine.overrides import validate_overrides
from tests.kube_fake import FakeKubeApiServer

CATALOGUE = load_catalogue()
LEASE = 2.0  # seconds; renew deadline 1.5, retry 0.2 (client-go's ratios, shrunk)


def kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        f"clusters:\n- name: fake\n  cluster:\n    server: {url}\n"
        "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n"
        "users:\n- name: fake\n  user: {}\n"
    )
    return path


def service(tmp: Path, name: str, config_path: Path) -> Service:
    file = tmp / f"{name}.yaml"
    file.write_text(
        f"mode: prod\nupdateInterval: 1s\ndataDir: {tmp / name}\n"
        "synthetic:\n  tenantCount: 6\n"
        "server:\n  enabled: false\n"
        "target:\n  kind: configmap\n  configMap:\n"
        f"    namespace: mimir\n    name: optimizer\n    key: overrides.yaml\n"
        f"    kubeconfig: {config_path}\n"
        "leaderElection:\n  enabled: true\n  namespace: mimir\n"
        f"  identity: {name}\n  leaseDuration: {int(LEASE)}s\n  renewDeadline: 1500ms\n"
        "  retryPeriod: 200ms\n"
    )
    provider = ConfigProvider(file, env={}, cli={}, catalogue=CATALOGUE)
    return Service(provider, CATALOGUE, logger=logging.getLogger(f"svc-{name}"))


def test_only_the_lease_holder_applies_and_the_follower_takes_over(tmp_path: Path) -> None:
    with FakeKubeApiServer() as api:
        config_path = kubeconfig(tmp_path / "kubeconfig", api.url)
        api_existing = {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "optimizer", "namespace": "mimir"},
                        "data": {"other.yaml": "keep: me\n"}}  # fmt: skip
        created = httpx.post(f"{api.url}/api/v1/namespaces/mimir/configmaps", json=api_existing)
        assert created.status_code == 201
        a, b = service(tmp_path, "a", config_path), service(tmp_path, "b", config_path)
        stops = {"a": threading.Event(), "b": threading.Event()}
        threads = [
            threading.Thread(target=s.run, args=(stops[n],), daemon=True)
            for n, s in (("a", a), ("b", b))
        ]
        for thread in threads:
            thread.start()
        both = 0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:  # bounded sampling: never two leaders at once
            both += a.is_leader() and b.is_leader()
            time.sleep(0.005)
        assert both == 0
        leader, follower = (a, b) if a.is_leader() else (b, a)
        assert leader.is_leader() and not follower.is_leader()
        name = "a" if leader is a else "b"
        body = leader.health.readyz(time.time())[1]
        assert body["role"] == "leader" and body["leader"] == name
        assert follower.health.readyz(time.time())[1]["role"] == "follower"
        configmap = api.get("configmaps", "mimir", "optimizer")
        assert configmap is not None and configmap["data"]["other.yaml"] == "keep: me\n"
        text = configmap["data"]["overrides.yaml"]
        assert text and validate_overrides(text, CATALOGUE, source_name="cm") == []
        assert any(e.action == "update_limits" for e in leader.store.audit(limit=5000))
        follower_events = follower.store.audit(limit=5000)
        assert not any(e.action == "update_limits" for e in follower_events)
        assert any(e.details.get("why") == "not the leader" for e in follower_events)

        stops["a" if leader is a else "b"].set()  # the leader stops (and releases the Lease)
        started = time.monotonic()
        while not follower.is_leader() and time.monotonic() - started < 3 * LEASE:
            time.sleep(0.02)
        assert follower.is_leader()
        assert time.monotonic() - started <= LEASE + 0.5
        for stop in stops.values():
            stop.set()
        for thread in threads:
            thread.join(timeout=20)
        assert not any(thread.is_alive() for thread in threads)
