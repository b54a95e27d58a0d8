"""A FAKE Kubernetes API server, in-process on 127.0.0.1, for the ConfigMap and Lease tests.

It speaks the real REST protocol (paths, JSON bodies, `Status` errors the official client
parses) for core/v1 ConfigMaps and coordination.k8s.io/v1 Leases only: GET; POST (create, 409
AlreadyExists); PUT (replace, 409 Conflict on a stale metadata.resourceVersion, 404 if absent);
PATCH (merge patch, strategic merge treated alike, resourceVersion in it as precondition).
resourceVersion is one global counter bumped on every write. Validation covers what our code
could trip over: names (422 Invalid), body name/namespace vs the URL (400 BadRequest, as the
real server), ConfigMap data keys (422), Lease acquireTime/renewTime as MicroTime (400).
Not implemented: lists, watch, DELETE over HTTP, auth, server-side apply, admission.
Faults: `fail_next(count, status)`; request log: `requests`.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_NS = r"namespaces/([^/]+)"
_ROUTES = [  # (URL pattern capturing namespace, plural, name; kind)
    (re.compile(rf"^/api/v1/{_NS}/(configmaps)(?:/([^/]+))?$"), "ConfigMap"),
    (re.compile(rf"^/apis/coordination\.k8s\.io/v1/{_NS}/(leases)(?:/([^/]+))?$"), "Lease"),
]
_API_VERSIONS = {"ConfigMap": "v1", "Lease": "coordination.k8s.io/v1"}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")
_K8S_REASONS = {422: "Invalid", 500: "InternalError", 504: "Timeout"}  # else the HTTP phrase
_MERGE_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


class ApiError(Exception):
    def __init__(self, code: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        default = _K8S_REASONS.get(code) or HTTPStatus(code).phrase.replace(" ", "")
        self.code, self.message, self.reason = code, message, reason or default

    def status(self) -> dict[str, Any]:
        """The `Status` object the real API server sends with every error."""
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}  # fmt: skip


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    status: int
    body: Any  # the parsed JSON body, or None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: null deletes, objects merge, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeKubeApiServer:
    """Starts serving at construction; a context manager; `.url` is http://127.0.0.1:<port>."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._rv = 0
        self._faults: list[list[Any]] = []  # [remaining, status, method or None]
        self._log: list[RecordedRequest] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeKubeApiServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- test hooks ----------------------------------------------------------------------
    def fail_next(self, count: int, status: int, *, method: str | None = None) -> None:
        """The next `count` requests (of `method`, if given) get `status`; nothing changes."""
        with self._lock:
            self._faults.append([count, status, method])

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self._objects.get((resource, namespace, name)))

    def delete(self, resource: str, namespace: str, name: str) -> None:
        """Remove an object behind the client's back (DELETE is not served over HTTP)."""
        with self._lock:
            self._objects.pop((resource, namespace, name), None)
            self._rv += 1

    # --- the protocol --------------------------------------------------------------------
    def handle(self, method: str, path: str, ctype: str, raw: bytes) -> tuple[int, Any]:
        with self._lock:
            body = None
            try:
                for fault in self._faults:
                    if fault[0] > 0 and fault[2] in (None, method):
                        fault[0] -= 1
                        raise ApiError(fault[1], f"injected fault {fault[1]}")
                try:
                    body = json.loads(raw) if raw else None
                except ValueError as exc:
                    raise ApiError(400, f"the request body is not JSON: {exc}") from exc
                code, result = self._dispatch(method, path.split("?", 1)[0], ctype, body)
            except ApiError as err:
                code, result = err.code, err.status()
            self._log.append(RecordedRequest(method, path, code, body))
            return code, result

    def _dispatch(self, method: str, path: str, ctype: str, body: Any) -> tuple[int, Any]:
        match, kind = next(((m, k) for p, k in _ROUTES if (m := p.match(path))), (None, ""))
        if match is None:
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        namespace, resource, name = match.groups()
        if method == "POST" and name is None:
            obj = self._checked(body, resource, namespace, None)
            key = (resource, namespace, obj["metadata"]["name"])
            if key in self._objects:
                raise ApiError(409, f'{resource} "{key[2]}" already exists', "AlreadyExists")
            if obj["metadata"].get("resourceVersion"):
                raise ApiError(400, "resourceVersion should not be set on objects to be created")
            obj["metadata"]["uid"] = str(uuid.uuid4())
            obj["metadata"]["creationTimestamp"] = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
            return 201, self._store(key, obj, kind)
        key = (resource, namespace, name or "")
        if name is None or method not in ("GET", "PUT", "PATCH"):
            raise ApiError(405, f"{method} is not supported on {path}")
        if key not in self._objects:
            raise ApiError(404, f'{resource} "{name}" not found')
        old = copy.deepcopy(self._objects[key])
        if method == "GET":
            return 200, old
        if method == "PUT":
            obj = self._checked(body, resource, namespace, name)
            self._precondition(obj, old, resource, name)
            for field in ("uid", "creationTimestamp"):
                obj["metadata"][field] = old["metadata"].get(field)
            return 200, self._store(key, obj, kind)
        if ctype.split(";", maxsplit=1)[0].strip() not in _MERGE_TYPES:  # PATCH
            raise ApiError(415, f"the body of the request was in an unknown format ({ctype})")
        self._precondition(body if isinstance(body, dict) else {}, old, resource, name)
        obj = self._checked(merge_patch(old, body), resource, namespace, name)
        return 200, self._store(key, obj, kind)

    def _precondition(self, new: dict[str, Any], old: dict[str, Any], res: str, name: str) -> None:
        wanted = (new.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise ApiError(409, f'Operation cannot be fulfilled on {res} "{name}": the object '
                           "has been modified; please apply your changes to the latest version "
                           "and try again")  # fmt: skip

    def _checked(self, body: Any, resource: str, namespace: str, name: str | None) -> Any:
        if not isinstance(body, dict):
            raise ApiError(400, "the request body is not a JSON object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        obj_name = meta.get("name") or ""
        if name is not None and obj_name != name:
            raise ApiError(400, f"the name of the object ({obj_name}) does not match the name "
                           f"on the URL ({name})")  # fmt: skip
        if meta.setdefault("namespace", namespace) != namespace:
            raise ApiError(400, "the namespace of the provided object does not match the "
                           "namespace sent on the request")  # fmt: skip
        invalid = f'{resource} "{obj_name}" is invalid: '
        if len(obj_name) > 253 or not _DNS_SUBDOMAIN.match(obj_name):
            raise ApiError(422, f"{invalid}metadata.name: Invalid value: a lowercase RFC 1123 "
                           "subdomain must consist of lower case alphanumeric characters, "
                           "'-' or '.'")  # fmt: skip
        for key in (obj.get("data") or {}) if resource == "configmaps" else ():
            if not _CONFIGMAP_KEY.match(key):
                raise ApiError(422, f"{invalid}data[{key}]: Invalid value: a valid config key "
                               "must consist of alphanumeric characters, '-', '_' or '.'")  # fmt: skip  # noqa: E501
        for field in ("acquireTime", "renewTime") if resource == "leases" else ():
            value = (obj.get("spec") or {}).get(field)
            if value is not None and not _MICRO_TIME.match(str(value)):
                raise ApiError(400, f'Lease in version "v1" cannot be handled as a Lease: '
                               f'parsing time "{value}" as RFC3339Micro')  # fmt: skip
        return obj

    def _store(self, key: tuple[str, str, str], obj: dict[str, Any], kind: str) -> Any:
        self._rv += 1
        obj["apiVersion"], obj["kind"] = _API_VERSIONS[kind], kind
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._objects[key] = obj
        return copy.deepcopy(obj)


def _make_handler(server: FakeKubeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client's urllib3 pool expects
        timeout = 10  # an idle keep-alive connection ends its thread
        disable_nagle_algorithm = True  # else headers and body wait out a delayed ACK (40 ms)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            ctype = self.headers.get("Content-Type") or ""
            code, result = server.handle(self.command, self.path, ctype, raw)
            data = json.dumps(result).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request log is `server.requests`

    return Handler
