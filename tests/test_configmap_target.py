"""The ConfigMap target reads and compare-and-swap writes one key against a fake API server
that speaks the real Kubernetes protocol: create when absent, read-modify-write keeps other
keys, labels and annotations, every API failure (stale version, 409 storm, deletion under us,
5xx, 422, 403, refused connection) becomes the right TargetError. Then: KubeApi finds its
credentials (kubeconfig file and context, $KUBECONFIG, in-cluster) or says what is missing;
and the fake's own protocol behaviour that the tests rely on.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import V1ConfigMap, V1ObjectMeta

from mimir_limit_optimizer.k8s import KubeApi, KubeConfigError, KubeConflictError, KubeInvalidError
from mimir_limit_optimizer.k8s.errors import kube_call
from mimir_limit_optimizer.targets.base import (
    ConflictError,
    PermanentTargetError,
    Target,
    TargetError,
)
from mimir_limit_optimizer.targets.configmap import ConfigMapTarget
from tests.kube_fake import FakeKubeApiServer

NS, NAME, KEY = "mimir", "mimir-limit-optimizer-overrides", "overrides.yaml"
OVERRIDES = "overrides:\n  tenant-a:\n    ingestion_rate: 20000\n"


@pytest.fixture
def server() -> Iterator[FakeKubeApiServer]:
    with FakeKubeApiServer() as fake:
        yield fake


@pytest.fixture
def api(server: FakeKubeApiServer) -> Iterator[KubeApi]:
    with KubeApi.for_url(server.url, request_timeout=5.0) as client:
        yield client


def make_target(api: KubeApi, **kwargs: Any) -> ConfigMapTarget:
    options: dict[str, Any] = {"namespace": NS, "name": NAME, "key": KEY}
    options.update(kwargs)
    return ConfigMapTarget(api, **options)


def seed(api: KubeApi, data: dict[str, str], **meta: Any) -> str:
    """Create the ConfigMap as another writer (a Helm chart, a human) would."""
    body = V1ConfigMap(metadata=V1ObjectMeta(name=NAME, **meta), data=data)
    created = api.core.create_namespaced_config_map(NS, body)
    assert created.metadata is not None
    return str(created.metadata.resource_version)


def test_implements_the_target_protocol(api: KubeApi) -> None:
    target: Target = make_target(api)
    assert target.describe() == f"configmap {NS}/{NAME} key {KEY}"


def test_absent_configmap_reads_empty_and_is_created_on_first_write(
    api: KubeApi, server: FakeKubeApiServer
) -> None:
    target = make_target(api)
    content = target.read()
    assert (content.text, content.version, content.exists) == ("", None, False)

    version = target.write(OVERRIDES, expected_version=None)

    stored = server.get("configmaps", NS, NAME)
    assert stored is not None
    assert stored["data"] == {KEY: OVERRIDES}
    assert stored["metadata"]["resourceVersion"] == version
    assert stored["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "mimir-limit-optimizer"}
    again = target.read()
    assert (again.text, again.version, again.exists) == (OVERRIDES, version, True)
    assert [r.method for r in server.requests[-3:]] == ["GET", "POST", "GET"]


def test_absent_configmap_without_create_if_missing_is_permanent(api: KubeApi) -> None:
    target = make_target(api, create_if_missing=False)
    with pytest.raises(PermanentTargetError, match="createIfMissing") as info:
        target.write(OVERRIDES, expected_version=None)
    assert not info.value.retryable


def test_read_modify_write_keeps_other_keys_labels_and_annotations(
    api: KubeApi, server: FakeKubeApiServer
) -> None:
    seed(
        api,
        {"runtime.yaml": "multi_kv_config: {}\n", KEY: "overrides: {}\n"},
        labels={"app": "mimir"},
        annotations={"meta.helm.sh/release-name": "mimir"},
    )
    target = make_target(api)
    content = target.read()
    assert (content.text, content.exists) == ("overrides: {}\n", True)

    version = target.write(OVERRIDES, expected_version=content.version)

    stored = server.get("configmaps", NS, NAME)
    assert stored is not None
    assert stored["data"] == {"runtime.yaml": "multi_kv_config: {}\n", KEY: OVERRIDES}
    assert stored["metadata"]["labels"] == {"app": "mimir"}
    assert stored["metadata"]["annotations"] == {"meta.helm.sh/release-name": "mimir"}
    assert version == stored["metadata"]["resourceVersion"] != content.version
    put = server.requests[-1]
    assert (put.method, put.status) == ("PUT", 200)
    assert put.body["metadata"]["resourceVersion"] == content.version  # the CAS precondition


def test_existing_configmap_without_the_key_gets_it_added(
    api: KubeApi, server: FakeKubeApiServer
) -> None:
    seed(api, {"other": "x"})
    target = make_target(api)
    content = target.read()
    assert (content.text, content.exists) == ("", True)
    target.write(OVERRIDES, expected_version=content.version)
    stored = server.get("configmaps", NS, NAME)
    assert stored is not None
    assert stored["data"] == {"other": "x", KEY: OVERRIDES}


def test_unchanged_text_is_not_written(api: KubeApi, server: FakeKubeApiServer) -> None:
    version = seed(api, {KEY: OVERRIDES})
    assert make_target(api).write(OVERRIDES, expected_version=version) == version
    assert [r.method for r in server.requests] == ["POST", "GET"]


def test_stale_version_is_a_conflict_and_changes_nothing(
    api: KubeApi, server: FakeKubeApiServer
) -> None:
    seed(api, {KEY: "overrides: {}\n"})
    target = make_target(api)
    stale = target.read()
    other = target.write("overrides:\n  someone: {}\n", expected_version=stale.version)

    with pytest.raises(ConflictError, match="changed since it was read") as info:
        target.write(OVERRIDES, expected_version=stale.version)
    assert info.value.retryable
    assert target.read().text == "overrides:\n  someone: {}\n"
    assert target.read().version == other


def test_created_by_someone_else_after_an_absent_read_is_a_conflict(api: KubeApi) -> None:
    target = make_target(api)
    assert not target.read().exists
    seed(api, {KEY: "overrides: {}\n"})
    with pytest.raises(ConflictError, match="created by someone else"):
        target.write(OVERRIDES, expected_version=None)


def test_create_race_lost_to_another_writer_is_a_conflict(
    api: KubeApi, server: FakeKubeApiServer
) -> None:
    server.fail_next(1, 409, method="POST")
    with pytest.raises(ConflictError):
        make_target(api).write(OVERRIDES, expected_version=None)
    assert server.get("configmaps", NS, NAME) is None


def test_409_storm_is_a_conflict_every_time_and_leaves_the_content(
    api: KubeApi, server: FakeKubeApiServer
) -> None:
    seed(api, {KEY: "overrides: {}\n"})
    target = make_target(api)
    server.fail_next(5, 409, method="PUT")
    for _ in range(5):
        content = target.read()
        with pytest.raises(ConflictError, match="409"):
            target.write(OVERRIDES, expected_version=content.version)
        assert target.read().text == "overrides: {}\n"
    content = target.read()
    target.write(OVERRIDES, expected_version=content.version)  # the storm is over
    assert target.read().text == OVERRIDES


def test_deleted_before_the_write_is_a_conflict(api: KubeApi, server: FakeKubeApiServer) -> None:
    seed(api, {KEY: "overrides: {}\n"})
    target = make_target(api)
    content = target.read()
    server.delete("configmaps", NS, NAME)
    with pytest.raises(ConflictError, match="deleted since it was read"):
        target.write(OVERRIDES, expected_version=content.version)
    assert server.get("configmaps", NS, NAME) is None  # not silently re-created


def test_deleted_between_get_and_put_is_a_conflict(api: KubeApi, server: FakeKubeApiServer) -> None:
    seed(api, {KEY: "overrides: {}\n"})
    target = make_target(api)
    content = target.read()
    server.fail_next(1, 404, method="PUT")  # the API's answer when it vanished mid-write
    with pytest.raises(ConflictError, match="deleted while being updated"):
        target.write(OVERRIDES, expected_version=content.version)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_retryable(api: KubeApi, server: FakeKubeApiServer, status: int) -> None:
    version = seed(api, {KEY: "overrides: {}\n"})
    target = make_target(api)
    server.fail_next(1, status, method="PUT")
    with pytest.raises(TargetError) as info:
        target.write(OVERRIDES, expected_version=version)
    assert type(info.value) is TargetError
    assert info.value.retryable
    assert str(status) in str(info.value)
    assert target.read().text == "overrides: {}\n"
    server.fail_next(1, status, method="GET")
    with pytest.raises(TargetError) as info:
        target.read()
    assert info.value.retryable


def test_unreachable_api_server_is_retryable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        KubeApi.for_url(f"http://127.0.0.1:{port}", request_timeout=2.0) as api,
        pytest.raises(TargetError) as info,
    ):
        make_target(api).read()
    assert type(info.value) is TargetError
    assert info.value.retryable


def test_invalid_object_is_permanent_with_the_api_message(api: KubeApi) -> None:
    target = make_target(api, name="Not_A_Valid_Name")
    with pytest.raises(PermanentTargetError, match="RFC 1123 subdomain") as info:
        target.write(OVERRIDES, expected_version=None)
    assert not info.value.retryable
    assert "422" in str(info.value)


def test_invalid_key_on_update_is_permanent(api: KubeApi) -> None:
    version = seed(api, {"runtime.yaml": "{}\n"})
    target = make_target(api, key="bad key!")
    with pytest.raises(PermanentTargetError, match="valid config key"):
        target.write(OVERRIDES, expected_version=version)


@pytest.mark.parametrize(("status", "verb"), [(403, "update"), (401, "update")])
def test_forbidden_is_permanent_and_names_the_rbac_grant(
    api: KubeApi, server: FakeKubeApiServer, status: int, verb: str
) -> None:
    version = seed(api, {KEY: "overrides: {}\n"})
    server.fail_next(1, status, method="PUT")
    with pytest.raises(PermanentTargetError) as info:
        make_target(api).write(OVERRIDES, expected_version=version)
    message = str(info.value)
    assert f'verb "{verb}" on "configmaps"' in message
    assert 'verbs ["get", "update", "create"]' in message
    assert f"namespace {NS!r}" in message


def test_key_held_in_binary_data_is_permanent(api: KubeApi) -> None:
    api.core.create_namespaced_config_map(
        NS, V1ConfigMap(metadata=V1ObjectMeta(name=NAME), binary_data={KEY: "AAEC"})
    )
    with pytest.raises(PermanentTargetError, match="binaryData"):
        make_target(api).read()


# --- client construction ----------------------------------------------------------------

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {{server: "{url}"}}
- name: elsewhere
  cluster: {{server: "http://127.0.0.1:9"}}
contexts:
- name: fake
  context: {{cluster: fake, user: nobody}}
- name: elsewhere
  context: {{cluster: elsewhere, user: nobody}}
current-context: elsewhere
users:
- name: nobody
  user: {{}}
"""


def test_from_settings_uses_the_kubeconfig_file_and_context(
    server: FakeKubeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.format(url=server.url))
    with KubeApi.from_settings(str(path), "fake") as api:
        assert api.host == server.url
        assert not make_target(api).read().exists
    monkeypatch.setenv("KUBECONFIG", str(path))  # no explicit file: $KUBECONFIG
    with KubeApi.from_settings(None, None) as api:
        assert api.host == "http://127.0.0.1:9"  # its current-context


def test_from_settings_explains_missing_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    missing = tmp_path / "nope"
    with pytest.raises(KubeConfigError, match=r"target\.configMap\.kubeconfig") as info:
        KubeApi.from_settings(str(missing), None)
    assert str(missing) in str(info.value)
    assert not info.value.retryable
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.format(url="http://127.0.0.1:9"))
    with pytest.raises(KubeConfigError, match="context 'absent'"):
        KubeApi.from_settings(str(path), "absent")


def test_from_settings_in_a_pod_without_a_token_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    with pytest.raises(KubeConfigError, match="service account"):
        KubeApi.from_settings(None, None)


# --- the fake's own protocol, as the tests above rely on it -----------------------------


def test_fake_rejects_stale_put_and_duplicate_post_with_status_objects(api: KubeApi) -> None:
    version = seed(api, {"a": "1"})
    with pytest.raises(KubeConflictError) as conflict, kube_call("create", "configmaps", NS):
        seed(api, {"a": "1"})
    assert conflict.value.reason == "AlreadyExists"
    current = api.core.read_namespaced_config_map(NAME, NS)
    api.core.replace_namespaced_config_map(NAME, NS, current)  # bumps the version
    assert current.metadata is not None
    current.metadata.resource_version = version
    with pytest.raises(KubeConflictError) as stale, kube_call("update", "configmaps", NS, NAME):
        api.core.replace_namespaced_config_map(NAME, NS, current)
    assert stale.value.reason == "Conflict"
    assert "the object has been modified" in stale.value.api_message


def test_fake_rejects_a_body_whose_name_differs_from_the_url(api: KubeApi) -> None:
    seed(api, {"a": "1"})
    body = V1ConfigMap(metadata=V1ObjectMeta(name="other"), data={"a": "2"})
    with (
        pytest.raises(KubeInvalidError, match="does not match the name on the URL"),
        kube_call("update", "configmaps", NS, NAME),
    ):
        api.core.replace_namespaced_config_map(NAME, NS, body)


def test_fake_merge_patch_with_resource_version_precondition(
    api: KubeApi, server: FakeKubeApiServer
) -> None:
    version = seed(api, {"a": "1", "b": "2"}, labels={"x": "y"})
    patched = api.core.patch_namespaced_config_map(NAME, NS, {"data": {"a": None, "c": "3"}})
    assert patched.data == {"b": "2", "c": "3"}
    assert patched.metadata is not None
    assert patched.metadata.labels == {"x": "y"}
    stale_patch = {"metadata": {"resourceVersion": version}, "data": {"b": "9"}}
    with pytest.raises(KubeConflictError), kube_call("patch", "configmaps", NS, NAME):
        api.core.patch_namespaced_config_map(NAME, NS, stale_patch)
    assert server.requests[-1].status == 409
    assert int(str(patched.metadata.resource_version)) > int(version)
