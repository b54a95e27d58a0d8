"""Errors of the Kubernetes boundary, translated from the `kubernetes` client's exceptions.

`kube_call(...)` wraps every API call: an `ApiException` (HTTP status + a `Status` body) or a
transport error (refused, reset, timed out) leaves as one of the classes below, with the
cause chained, the verb and object named, and `retryable` saying whether the next attempt may
succeed. Callers map these onto their own errors (targets: `TargetError`, ...).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException


class KubeError(Exception):
    """A Kubernetes API call failed. `status` is the HTTP status (None: no response)."""

    retryable: bool = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str = "",
        api_message: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason  # the Status object's reason: Conflict, AlreadyExists, Invalid...
        self.api_message = api_message  # the API server's own words


class KubeConfigError(KubeError):
    """No usable credentials (kubeconfig missing, unknown context, not in a pod)."""

    retryable = False


class KubeUnavailableError(KubeError):
    """5xx, 429, refused connection, timeout: the API server may answer next time."""


class KubeConflictError(KubeError):
    """409: Conflict (stale resourceVersion) or AlreadyExists. Re-read and retry."""


class KubeNotFoundError(KubeError):
    """404: the object (or its namespace) does not exist."""

    retryable = False


class KubeInvalidError(KubeError):
    """400/422: the API server rejected the object; sending it again will not help."""

    retryable = False


class KubeForbiddenError(KubeError):
    """401/403: credentials rejected or RBAC forbids the verb. The message names the grant."""

    retryable = False


def _status_fields(exc: ApiException) -> tuple[str, str]:
    """(reason, message) from the `Status` body, falling back to the HTTP reason phrase."""
    reason = str(exc.reason or "")
    message = ""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            status = json.loads(body)
        except ValueError:
            message = body[:500]
        else:
            if isinstance(status, dict):
                reason = str(status.get("reason") or reason)
                message = str(status.get("message") or "")
    return reason, message


def translate(exc: ApiException, *, what: str, rbac: str) -> KubeError:
    """The KubeError for an ApiException raised while doing `what` (e.g. "update configmaps
    mimir/x"); `rbac` is the grant that would allow it, quoted on 401/403."""
    status = int(exc.status or 0)
    reason, api_message = _status_fields(exc)
    detail = f"{what}: HTTP {status} {reason}" + (f": {api_message}" if api_message else "")
    cls: type[KubeError]
    if status == 0:
        # The client could not build or send the request (TLS failure, ...). Retrying a
        # misconfiguration is harmless; giving up on a transient failure is not.
        cls = KubeUnavailableError
    elif status == 401:
        cls = KubeForbiddenError
        detail += (
            ". The credentials were rejected (expired token? wrong kubeconfig user?); "
            f"the identity also needs {rbac}"
        )
    elif status == 403:
        cls = KubeForbiddenError
        detail += f". RBAC: grant {rbac}"
    elif status == 404:
        cls = KubeNotFoundError
    elif status == 409:
        cls = KubeConflictError
    elif status == 429 or status >= 500:
        cls = KubeUnavailableError
    else:  # 400, 422 and anything else the server refuses to do
        cls = KubeInvalidError
    return cls(detail, status=status, reason=reason, api_message=api_message)


@contextmanager
def kube_call(
    verb: str,
    resource: str,
    namespace: str,
    name: str | None = None,
    *,
    api_group: str = "",
) -> Iterator[None]:
    """Translate whatever the `kubernetes` client raises inside the block into a KubeError.

    `verb` is the RBAC verb (get, create, update, patch), `resource` the plural resource
    (configmaps, leases) of `api_group` ("" is the core group).
    """
    target = f"{namespace}/{name}" if name else namespace
    what = f"{verb} {resource} {target}"
    rbac = (
        f'verb "{verb}" on "{resource}" (apiGroup "{api_group}") in namespace "{namespace}" '
        f"(a Role rule: apiGroups: [{api_group!r}], resources: [{resource!r}], "
        f"verbs: [{verb!r}])"
    )
    try:
        yield
    except ApiException as exc:
        raise translate(exc, what=what, rbac=rbac) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        # Refused, reset, DNS, read/connect timeout: no HTTP status at all.
        raise KubeUnavailableError(f"{what}: {type(exc).__name__}: {exc}") from exc
