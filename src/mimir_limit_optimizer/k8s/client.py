"""Construction of the Kubernetes API client: one `KubeApi` per process, injected everywhere.

Why the official `kubernetes` client (kubernetes-client/python): it is the Kubernetes
project's own, released in step with the API (one minor version per Kubernetes release); it
loads both in-cluster service-account credentials (with the bound token re-read before it
expires) and kubeconfig files (contexts, client certificates, exec and OIDC auth plugins)
without us reimplementing either; and its models are typed (`py.typed`, pydantic), so mypy
checks the fields we read and write. The alternatives are thinner (kr8s, lightkube) or
async-only (kubernetes_asyncio); our two resources gain nothing from them.

Two adjustments for our use:
- urllib3 retries are off: one stage (the controller) owns retries and backoff, and every
  call passes a timeout (`request_timeout`).
- datetimes are sent as RFC 3339 with exactly six fractional digits (`MicroTime`, as a Lease's
  acquireTime/renewTime must be); the client's default `isoformat()` drops the fraction when
  it is zero, which the API server's MicroTime parser rejects.
"""

from __future__ import annotations

import datetime as dt
import os
from types import TracebackType
from typing import Any

from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration, CoordinationV1Api, CoreV1Api
from kubernetes.config.config_exception import ConfigException

from mimir_limit_optimizer.k8s.errors import KubeConfigError

DEFAULT_REQUEST_TIMEOUT = 10.0  # seconds, per API call (connect + read)


def micro_time(value: dt.datetime) -> str:
    """RFC 3339 in UTC with microseconds, as metav1.MicroTime requires (and Time accepts)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _ApiClient(ApiClient):
    """ApiClient whose request bodies carry datetimes as MicroTime (see the module doc)."""

    def sanitize_for_serialization(self, obj: Any) -> Any:
        if isinstance(obj, dt.datetime):
            return micro_time(obj)
        return super().sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]


class KubeApi:
    """A configured API client and the two API groups we use. Close it when done."""

    def __init__(
        self, configuration: Configuration, *, request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    ) -> None:
        configuration.retries = False  # see the module doc: one stage retries
        self.api_client: ApiClient = _ApiClient(configuration)
        self.api_client.user_agent = "mimir-limit-optimizer"
        self.core = CoreV1Api(self.api_client)
        self.coordination = CoordinationV1Api(self.api_client)
        self.request_timeout = request_timeout
        self.host: str = configuration.host

    @classmethod
    def from_settings(
        cls,
        kubeconfig: str | None,
        context: str | None,
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> KubeApi:
        """Credentials, in order: the explicit `kubeconfig` file; the pod's service account
        when running in Kubernetes (KUBERNETES_SERVICE_HOST set); $KUBECONFIG (may list
        several files); ~/.kube/config. `context` picks a kubeconfig context (default: the
        file's current-context)."""
        configuration = Configuration()
        in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        if kubeconfig is None and in_pod:
            try:
                kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            except ConfigException as exc:
                raise KubeConfigError(
                    f"in-cluster Kubernetes credentials unusable ({exc}); mount the service "
                    "account token (automountServiceAccountToken: true) or set "
                    "target.configMap.kubeconfig"
                ) from exc
            return cls(configuration, request_timeout=request_timeout)
        path = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        try:
            # persist_config=False: never rewrite the user's kubeconfig (token refreshes).
            kube_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, OSError) as exc:
            where = f"kubeconfig {path}" + (f" context {context!r}" if context else "")
            raise KubeConfigError(
                f"cannot load Kubernetes credentials from {where}: {exc}; set "
                "target.configMap.kubeconfig/context or $KUBECONFIG, or run in a pod"
            ) from exc
        return cls(configuration, request_timeout=request_timeout)

    @classmethod
    def for_url(cls, url: str, *, request_timeout: float = DEFAULT_REQUEST_TIMEOUT) -> KubeApi:
        """An unauthenticated client for `url` (tests against the fake API server). Never
        goes through an HTTP proxy from the environment."""
        configuration = Configuration(host=url.rstrip("/"), proxy="")
        return cls(configuration, request_timeout=request_timeout)

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]
        self.api_client.rest_client.pool_manager.clear()

    def __enter__(self) -> KubeApi:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
