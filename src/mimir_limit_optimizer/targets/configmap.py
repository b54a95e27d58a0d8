"""A Target that is one key of a Kubernetes ConfigMap.

Default: the optimizer's own ConfigMap (key `overrides.yaml`), listed second in Mimir's
`-runtime-config.file` so its per-tenant values win; optionally a key of Mimir's runtime
ConfigMap, which a later `helm upgrade` may overwrite (see MIMIR_FACTS).

The version is metadata.resourceVersion. A write re-reads the ConfigMap, checks the version,
changes only `key` in `data`, and replaces the object (PUT) with that resourceVersion as the
precondition: every other key, label and annotation stays as it was, and a concurrent writer
makes the API server answer 409, reported as ConflictError (re-read, re-plan, retry).

API errors map onto the target errors: 409 and a 404 on update (deleted under us) ->
ConflictError; 400/422 -> PermanentTargetError with the API server's message; 401/403 ->
PermanentTargetError naming the RBAC grant; 5xx, 429, refused or timed out -> TargetError
(retryable).
"""

from __future__ import annotations

from kubernetes.client import V1ConfigMap, V1ObjectMeta

from mimir_limit_optimizer.k8s.client import KubeApi
from mimir_limit_optimizer.k8s.errors import (
    KubeConflictError,
    KubeError,
    KubeForbiddenError,
    KubeNotFoundError,
    KubeUnavailableError,
    kube_call,
)
from mimir_limit_optimizer.targets.base import (
    ConflictError,
    Content,
    PermanentTargetError,
    TargetError,
)

MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "mimir-limit-optimizer")


class ConfigMapTarget:
    """Reads and compare-and-swap writes `data[key]` of ConfigMap `namespace/name`."""

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        name: str,
        key: str,
        create_if_missing: bool = True,
    ) -> None:
        self._api = api
        self.namespace = namespace
        self.name = name
        self.key = key
        self.create_if_missing = create_if_missing

    def describe(self) -> str:
        return f"configmap {self.namespace}/{self.name} key {self.key}"

    def read(self) -> Content:
        config_map = self._get()
        if config_map is None:
            return Content(text="", version=None, exists=False)
        self._check_not_binary(config_map)
        text = (config_map.data or {}).get(self.key, "")
        return Content(text=text, version=_version(config_map), exists=True)

    def write(self, text: str, *, expected_version: str | None) -> str:
        current = self._get()
        if expected_version is None:
            if current is not None:
                raise ConflictError(
                    f"{self.describe()}: created by someone else since it was read "
                    f"(now at resourceVersion {_version(current)}); re-read and re-plan"
                )
            return self._create(text)
        if current is None:
            raise ConflictError(
                f"{self.describe()}: deleted since it was read at resourceVersion "
                f"{expected_version}; re-read and re-plan"
            )
        if _version(current) != expected_version:
            raise ConflictError(
                f"{self.describe()}: changed since it was read (resourceVersion "
                f"{expected_version} -> {_version(current)}); re-read and re-plan"
            )
        self._check_not_binary(current)
        data = dict(current.data or {})
        if data.get(self.key) == text:
            return expected_version  # nothing to change: no write, no new version
        data[self.key] = text
        current.data = data
        if current.metadata is None:  # the API server always sends metadata
            current.metadata = V1ObjectMeta(name=self.name, namespace=self.namespace)
        current.metadata.resource_version = expected_version  # the CAS precondition
        try:
            with kube_call("update", "configmaps", self.namespace, self.name):
                replaced = self._api.core.replace_namespaced_config_map(
                    self.name,
                    self.namespace,
                    current,
                    _request_timeout=self._api.request_timeout,
                )
        except KubeNotFoundError as exc:
            raise ConflictError(
                f"{self.describe()}: deleted while being updated; re-read and re-plan ({exc})"
            ) from exc
        except KubeError as exc:
            raise self._target_error(exc, "update") from exc
        return _version(replaced)

    # --- internals ----------------------------------------------------------------------
    def _get(self) -> V1ConfigMap | None:
        try:
            with kube_call("get", "configmaps", self.namespace, self.name):
                return self._api.core.read_namespaced_config_map(
                    self.name, self.namespace, _request_timeout=self._api.request_timeout
                )
        except KubeNotFoundError:
            return None
        except KubeError as exc:
            raise self._target_error(exc, "get") from exc

    def _create(self, text: str) -> str:
        if not self.create_if_missing:
            raise PermanentTargetError(
                f"{self.describe()}: the ConfigMap does not exist and createIfMissing is false; "
                f"create it (kubectl -n {self.namespace} create configmap {self.name} "
                f"--from-literal={self.key}=) or set target.configMap.createIfMissing: true"
            )
        body = V1ConfigMap(
            metadata=V1ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                labels={MANAGED_BY_LABEL[0]: MANAGED_BY_LABEL[1]},
            ),
            data={self.key: text},
        )
        try:
            with kube_call("create", "configmaps", self.namespace):
                created = self._api.core.create_namespaced_config_map(
                    self.namespace, body, _request_timeout=self._api.request_timeout
                )
        except KubeConflictError as exc:  # AlreadyExists: another writer created it first
            raise ConflictError(
                f"{self.describe()}: created by someone else meanwhile; re-read and re-plan ({exc})"
            ) from exc
        except KubeNotFoundError as exc:
            raise PermanentTargetError(
                f"{self.describe()}: namespace {self.namespace!r} does not exist; create it or "
                f"set target.configMap.namespace ({exc})"
            ) from exc
        except KubeError as exc:
            raise self._target_error(exc, "create") from exc
        return _version(created)

    def _check_not_binary(self, config_map: V1ConfigMap) -> None:
        if self.key in (config_map.binary_data or {}):
            raise PermanentTargetError(
                f"{self.describe()}: the key is in binaryData, not data; the runtime "
                "overrides must be a text key (choose another target.configMap.key)"
            )

    def _target_error(self, exc: KubeError, verb: str) -> TargetError:
        where = self.describe()
        if isinstance(exc, KubeConflictError):
            return ConflictError(f"{where}: {exc}; re-read and re-plan")
        if isinstance(exc, KubeForbiddenError):
            return PermanentTargetError(
                f"{where}: {exc}. The ConfigMap target needs verbs get, update and create on "
                f'configmaps (apiGroup "") in namespace {self.namespace!r}: a Role with '
                f'apiGroups [""], resources ["configmaps"], verbs ["get", "update", "create"] '
                f"(resourceNames [{self.name!r}] may narrow get/update, not create), bound "
                f"to the optimizer's service account (failed verb: {verb})"
            )
        if isinstance(exc, KubeUnavailableError):
            return TargetError(f"{where}: {exc} (retryable)")
        if exc.retryable:
            return TargetError(f"{where}: {exc}")
        return PermanentTargetError(f"{where}: {exc}")


def _version(config_map: V1ConfigMap) -> str:
    version = config_map.metadata.resource_version if config_map.metadata else None
    if not version:
        raise TargetError("the API server returned a ConfigMap without metadata.resourceVersion")
    return str(version)
