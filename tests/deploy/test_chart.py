"""The Helm chart, rendered by the real Helm library for the default values and for the
production example: every manifest is valid for the two newest Kubernetes versions
kubernetes-validate knows and for the chart's minimum (Chart.yaml kubeVersion); RBAC is
exactly the least privilege that works (namespaced, by name, no Secrets, no ClusterRole); the
pod passes the restricted Pod Security profile; the rendered optimizer configuration passes
the optimizer's own strict loader; ports and probes match that configuration; secrets are
only references; and a typo in values fails."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.loader import load_config
from tests.conftest import require_binary
from tests.deploy.chart import (
    ALERTS,
    CHART,
    DASHBOARD,
    NAMESPACE,
    by_kind,
    one,
    production_values,
    render,
)

helm = pytest.importorskip("helm_python")
kv = pytest.importorskip("kubernetes_validate.utils")

# Kinds installed by CRDs (prometheus-operator): no schema in kubernetes-validate; checked
# below by their own tests (promtool for the rules).
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip


@pytest.fixture(scope="module")
def default_objects() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def prod_objects() -> list[dict[str, Any]]:
    return render(production_values())


@pytest.fixture(params=["default", "production"])
def objects(
    request: pytest.FixtureRequest,
    default_objects: list[dict[str, Any]],
    prod_objects: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    return default_objects if request.param == "default" else prod_objects


def supported_versions() -> list[str]:
    """The two newest Kubernetes versions kubernetes-validate knows, and the chart's floor
    (Chart.yaml kubeVersion)."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    floor = re.match(r">=\s*(\d+\.\d+)", chart["kubeVersion"])
    assert floor, chart["kubeVersion"]
    return sorted({f"{floor[1]}.0", *newest_versions()})


def newest_versions(count: int = 2) -> list[str]:
    minors = sorted(
        {kv.major_minor(v) for v in kv.all_versions()}, key=lambda v: tuple(map(int, v.split(".")))
    )
    return [f"{m}.0" for m in minors[-count:]]


def test_every_manifest_validates_against_supported_kubernetes_versions(
    objects: list[dict[str, Any]],
) -> None:
    versions = supported_versions()
    assert len(versions) == 3
    checked = 0
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        for version in versions:
            kv.validate(obj, version, strict=True)  # raises with the path of the problem
            checked += 1
    assert checked >= 3 * 8  # Deployment, SA, Role, RoleBinding, 2 Services, ConfigMap, PDB


def test_a_broken_manifest_is_caught_by_the_validator(
    default_objects: list[dict[str, Any]],
) -> None:
    deployment = json.loads(json.dumps(one(default_objects, "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = (
        "/"
    )
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, newest_versions()[-1], strict=True)


def test_helm_lint_is_clean() -> None:
    for values in ({}, production_values()):
        report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not problems and not report["errors"], report


def test_no_cluster_scoped_rbac(objects: list[dict[str, Any]]) -> None:
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    role = one(objects, "Role")
    binding = one(objects, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    sa = one(objects, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert (
        one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
        == (sa["metadata"]["name"])
    )


def _rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in rule.items() if k in {"apiGroups", "resources", "resourceNames", "verbs"}}
        for rule in one(objects, "Role")["rules"]
    ]


def test_default_rbac_is_exactly_the_configmap_by_name_plus_create(
    default_objects: list[dict[str, Any]],
) -> None:
    # One replica, no leader election: no Lease rules at all; createIfMissing is on by default.
    assert _rules(default_objects) == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["mimir-limit-optimizer-overrides"],
            "verbs": ["get", "update", "patch"],
        },
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
    ]


def test_production_rbac_adds_the_lease_and_drops_configmap_create(
    prod_objects: list[dict[str, Any]],
) -> None:
    lease = one(prod_objects, "Deployment")["metadata"]["name"]
    assert _rules(prod_objects) == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["mimir-limit-optimizer-overrides"],
            "verbs": ["get", "update", "patch"],
        },
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [lease],
            "verbs": ["get", "update"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]


def test_secrets_are_only_references(
    default_objects: list[dict[str, Any]], prod_objects: list[dict[str, Any]]
) -> None:
    assert not by_kind(default_objects, "Secret")
    assert not by_kind(prod_objects, "Secret")
    assert _secret_names(default_objects) == set()
    refs = dict(production_values()["secrets"])
    refs.update(refs.pop("webhookURLs"))
    named = {ref["secretName"] for ref in refs.values()}
    assert _secret_names(prod_objects) == named


def _secret_names(objects: list[dict[str, Any]]) -> set[str]:
    """Secrets the pod refers to (mounted or as env); also checks nothing else reads one."""
    rules = one(objects, "Role")["rules"]
    assert all("secrets" not in r["resources"] for r in rules)
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    mounted = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    from_env = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in spec["containers"][0]["env"]
        if "valueFrom" in e
    }
    config = yaml.safe_load(_config_text(objects))
    prometheus = config["source"]["prometheus"]
    assert "bearerToken" not in prometheus
    assert "password" not in prometheus.get("basicAuth", {})
    assert "apiToken" not in config.get("circuitBreaker", {})
    alerting = config.get("alerting", {})
    assert "webhookURL" not in alerting.get("slack", {})
    assert all("url" not in hook for hook in alerting.get("webhooks", {}).values())
    return mounted | from_env


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """The checks of the `restricted` Pod Security Standard (v1.29+) that a pod template can
    fail, each violation as text."""
    found: list[str] = []
    pod_sc = pod_spec.get("securityContext", {})
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            found.append(f"{field} is set")
    for volume in pod_spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']} uses {sorted(kinds)}")
    if pod_sc.get("runAsUser") == 0:
        found.append("pod runAsUser 0")
    for sysctl in pod_sc.get("sysctls", []):
        found.append(f"sysctl {sysctl['name']}")
    all_containers = [*pod_spec.get("initContainers", []), *pod_spec["containers"]]
    for c in all_containers:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            found.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities {caps['add']}")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            found.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile is {seccomp}")
        if sc.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            found.append(f"{name}: hostPort")
        apparmor = sc.get("appArmorProfile", {}).get("type")
        if apparmor == "Unconfined":
            found.append(f"{name}: AppArmor unconfined")
    return found


def test_pod_passes_the_restricted_profile(objects: list[dict[str, Any]]) -> None:
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert restricted_violations(spec) == []
    sc = _container(objects)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert _container(objects)["resources"]["requests"]
    assert _container(objects)["resources"]["limits"]["memory"]


def test_the_restricted_check_catches_a_weakened_pod(default_objects: list[dict[str, Any]]) -> None:
    spec = json.loads(json.dumps(one(default_objects, "Deployment")["spec"]["template"]["spec"]))
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    spec["containers"][0]["securityContext"]["capabilities"] = {"add": ["NET_ADMIN"]}
    spec["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    del spec["securityContext"]["seccompProfile"]
    del spec["containers"][0]["securityContext"]["seccompProfile"]
    assert len(restricted_violations(spec)) == 5


def _config_text(objects: list[dict[str, Any]]) -> str:
    maps = [o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith("-config")]
    assert len(maps) == 1
    text: str = maps[0]["data"]["config.yaml"]
    return text


def test_rendered_config_passes_the_strict_loader_and_matches_the_pod(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(_config_text(objects), encoding="utf-8")
    loaded = load_config(path, env={}, cli={}, catalogue=load_catalogue())
    assert loaded.warnings == ()
    config = loaded.config
    deployment = one(objects, "Deployment")
    container = _container(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "http-metrics": config.server.metrics_port,
        "http-health": config.server.health_port,
        "http-ui": config.server.ui_port,
    }
    assert config.server.host == "0.0.0.0"  # probes and scrapes come from outside the pod
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-health"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLO_CONFIG"] == f"{mounts['config']}/config.yaml"
    assert config.data_dir == mounts["data"]
    # The target and the Lease are the names the Role grants, in the Role's namespace.
    role = one(objects, "Role")
    granted = {
        (rule["resources"][0], name)
        for rule in role["rules"]
        for name in rule.get("resourceNames", [])
    }
    assert ("configmaps", config.target.config_map.name) in granted
    assert config.target.kind == "configmap"
    assert config.target.config_map.namespace == role["metadata"]["namespace"]
    replicas = deployment["spec"]["replicas"]
    assert config.leader_election.enabled is (replicas > 1)
    if config.leader_election.enabled:
        assert ("leases", config.leader_election.lease_name) in granted
        assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    else:
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
    # Every file the config names is mounted (and, for the chart's Secrets, by that Secret).
    alerting = config.alerting
    files = [
        config.circuit_breaker.api_token_file,
        config.source.prometheus.bearer_token_file,
        config.source.prometheus.basic_auth.password_file
        if config.source.prometheus.basic_auth
        else None,
        alerting.slack.webhook_url_file if alerting.slack else None,
        alerting.pagerduty.integration_key_file if alerting.pagerduty else None,
        alerting.email.password_file if alerting.email else None,
        *(hook.url_file for hook in alerting.webhooks.values()),
    ]
    for file in filter(None, files):
        assert any(file.startswith(m + "/") for m in mounts.values()), file
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    target_ports = {p["targetPort"] for s in services.values() for p in s["spec"]["ports"]}
    assert target_ports == set(ports)


def test_replicas_above_one_switch_leader_election_on_and_require_it() -> None:
    objects = render({"replicas": 3})
    config = yaml.safe_load(_config_text(objects))
    assert config["leaderElection"]["enabled"] is True
    with pytest.raises(helm.HelmRenderError, match="needs leader election"):
        render({"replicas": 2, "leaderElection": {"enabled": False}})


@pytest.mark.parametrize(
    "values",
    [
        {"replicsa": 2},
        {"ingress": {"enabeld": True}},
        {"config": {"mode": "production"}},
        {"ports": {"metrics": 0, "health": 8081, "ui": 8082}},
    ],
)
def test_a_typo_in_values_fails(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        render(values)


def test_chart_owned_config_keys_are_refused() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"config\.server is set by the chart"):
        render({"config": {"server": {"host": "127.0.0.1"}}})


def test_optional_objects_are_off_by_default(default_objects: list[dict[str, Any]]) -> None:
    kinds = {o["kind"] for o in default_objects}
    assert kinds == {
        "ConfigMap", "Deployment", "PodDisruptionBudget", "Role", "RoleBinding", "Service",
        "ServiceAccount",
    }  # fmt: skip


def test_production_turns_on_ingress_networkpolicy_and_monitoring(
    prod_objects: list[dict[str, Any]],
) -> None:
    ingress = one(prod_objects, "Ingress")
    assert ingress["spec"]["tls"][0]["secretName"] == "limits-example-com-tls"
    annotations = ingress["metadata"]["annotations"]
    assert "X-Frame-Options" in json.dumps(annotations)
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    ui = [s for s in by_kind(prod_objects, "Service") if s["metadata"]["name"] == backend["name"]]
    assert ui and ui[0]["spec"]["ports"][0]["name"] == backend["port"]["name"]
    policy = one(prod_objects, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    monitor = one(prod_objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "http-metrics"
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    dashboards = [
        o
        for o in by_kind(prod_objects, "ConfigMap")
        if o["metadata"]["name"].endswith("-dashboard")
    ]
    assert len(dashboards) == 1
    assert dashboards[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboards[0]["metadata"]["namespace"] == "monitoring"
    shipped = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert json.loads(dashboards[0]["data"]["mimir-limit-optimizer.json"]) == shipped


def test_prometheus_rule_is_the_shipped_rule_file_and_passes_promtool(
    prod_objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    promtool = require_binary("promtool", "apt-get install -y prometheus")
    rule = one(prod_objects, "PrometheusRule")
    groups = rule["spec"]["groups"]
    shipped = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    assert [r["alert"] for g in groups for r in g["rules"]] == [
        r["alert"] for g in shipped for r in g["rules"]
    ]
    base = production_values()["prometheusRule"]["runbookBaseUrl"]
    for r in (r for g in groups for r in g["rules"]):
        assert r["annotations"]["runbook_url"] == base + r["annotations"]["runbook"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_job_and_breaker_delay_come_from_values() -> None:
    objects = render(
        {"prometheusRule": {"enabled": True, "job": "mlo-prod", "breakerOpenFor": "45m"}}
    )
    rules = {
        r["alert"]: r for g in one(objects, "PrometheusRule")["spec"]["groups"] for r in g["rules"]
    }
    assert 'job="mlo-prod"' in rules["MimirLimitOptimizerDown"]["expr"]
    assert "mimir-limit-optimizer" not in rules["MimirLimitOptimizerDown"]["expr"]
    assert rules["MimirLimitOptimizerBreakerOpen"]["for"] == "45m"
    assert "runbook_url" not in rules["MimirLimitOptimizerDown"]["annotations"]


def test_notes_say_how_to_make_the_configmap_mimirs_second_runtime_source() -> None:
    chart = helm.Chart.load(str(CHART))
    rendered = chart.render({"overridesConfigMap": {"name": "limits", "key": "o.yaml",
                                                    "createIfMissing": False}},
                            name="mlo", namespace=NAMESPACE, is_install=True)  # fmt: skip
    notes = next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))
    assert "file: /var/mimir/runtime.yaml,/etc/mimir-limit-optimizer/o.yaml" in notes
    assert "name: limits" in notes and "optional: true" in notes
    assert f"kubectl -n {NAMESPACE} create configmap limits --from-literal=o.yaml=" in notes
    assert "Dry-run" in notes


def test_mimirs_runtime_configmap_is_mounted_read_only_as_the_planners_base_file() -> None:
    objects = render({"mimirRuntimeConfigMap": {"name": "mimir-runtime", "key": "runtime.yaml"}})
    config = yaml.safe_load(_config_text(objects))
    container = _container(objects)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "mimir-runtime")
    assert mount["readOnly"] is True
    assert config["target"]["baseFiles"] == [f"{mount['mountPath']}/runtime.yaml"]
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "mimir-runtime", "configMap": {"name": "mimir-runtime"}} in volumes
    assert _rules(objects) == _rules(render())  # a mount needs no RBAC
    for version in newest_versions():
        kv.validate(one(objects, "Deployment"), version, strict=True)
    # A pod mounts ConfigMaps of its own namespace only.
    with pytest.raises(helm.HelmRenderError, match="in Mimir's namespace"):
        render({"mimirNamespace": "other", "mimirRuntimeConfigMap": {"name": "x", "key": "y"}})
    # Off by default: no base file, no mount.
    assert "baseFiles" not in yaml.safe_load(_config_text(render()))["target"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_selectors_and_port_names_line_up(prod_objects: list[dict[str, Any]]) -> None:
    """Objects refer to each other by labels and port names; a typo there is valid YAML and a
    silent outage (no scrape, no traffic), so check every reference."""
    pod = one(prod_objects, "Deployment")["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    container_ports = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    services = by_kind(prod_objects, "Service")
    for service in services:
        assert _selects(service["spec"]["selector"], pod_labels)
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
    monitor = one(prod_objects, "ServiceMonitor")
    scraped = [s for s in services if _selects(monitor["spec"]["selector"]["matchLabels"],
                                               s["metadata"]["labels"])]  # fmt: skip
    assert [s["metadata"]["name"] for s in scraped] == ["mlo-mimir-limit-optimizer-metrics"]
    assert monitor["spec"]["endpoints"][0]["port"] in {
        p["name"] for p in scraped[0]["spec"]["ports"]
    }
    assert scraped[0]["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "mimir-limit-optimizer"
    policy = one(prod_objects, "NetworkPolicy")
    assert _selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
    policy_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert policy_ports == container_ports
    pdb = one(prod_objects, "PodDisruptionBudget")
    assert _selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
