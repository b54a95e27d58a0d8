"""A FAKE Prometheus query API with switchable fault modes, for the reliability suite.

Not Prometheus: enough of `/api/v1/query` and `/api/v1/query_range` for the optimizer's
queries. Every usage query answers one series per tenant (`user` label) with the tenant's
constant usage; discard queries answer no series (no discards); the overrides-exporter
instant queries answer the limits in force. `mode` switches faults on at any time:

- ok; http_500 (every request); timeout (answers after `delay` seconds); malformed (invalid
  JSON); wrong_shape (a scalar where a vector/matrix belongs); partial_tenants (range queries
  omit the second half of the tenants); missing_last_hour (no points in the last hour); nan,
  inf, negative (the `bad_tenant`'s samples are NaN, +Inf or -50000); instant_fail (the two
  current-limit instant queries fail with HTTP 500); range_fail (every range query fails,
  instant queries answer); empty (no series at all: a wrong URL or selectors).
- "down" is `stop()`: nothing listens any more.

Loopback only, a free port; every handler is bounded in time.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = (
    "ok",
    "http_500",
    "timeout",
    "malformed",
    "wrong_shape",
    "partial_tenants",
    "missing_last_hour",
    "nan",
    "inf",
    "negative",
    "instant_fail",
    "range_fail",
    "empty",
)


class FakePrometheus:
    def __init__(
        self,
        usage: Mapping[str, float],
        *,
        overrides: Mapping[str, Mapping[str, float]] | None = None,
        defaults: Mapping[str, float] | None = None,
        delay: float = 1.0,
    ) -> None:
        self.usage = dict(usage)  # tenant -> constant usage in the limit's base unit
        self.overrides = {t: dict(v) for t, v in (overrides or {}).items()}  # tenant -> limits
        self.defaults = dict(defaults or {})  # limit -> value
        self.mode = "ok"
        self.bad_tenant = next(iter(self.usage))
        self.delay = delay  # seconds, for mode "timeout"; keep it short
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Mode "down": close the listening socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakePrometheus:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- answers -------------------------------------------------------------------------

    def answer(self, path: str, form: Mapping[str, str]) -> tuple[int, str]:
        query = form.get("query", "")
        with self._lock:
            self.requests.append((path, query))
        mode = self.mode
        instant = path.endswith("/api/v1/query")
        limits_query = "cortex_limits_" in query
        if mode == "http_500" or (mode == "instant_fail" and limits_query):
            return 500, "internal error (fault injected)"
        if mode == "range_fail" and not instant:
            return 500, "internal error (fault injected)"
        if mode == "timeout":
            time.sleep(self.delay)
        if mode == "malformed":
            return 200, '{"status": "success", "data": {"resultType": "matr'
        if mode == "wrong_shape":
            return 200, _ok({"resultType": "scalar", "result": [0, "1"]})
        if instant:
            return 200, _ok({"resultType": "vector", "result": self._instant(query, form)})
        return 200, _ok({"resultType": "matrix", "result": self._range(query, form)})

    def _instant(self, query: str, form: Mapping[str, str]) -> list[dict[str, Any]]:
        at = float(form.get("time", "0"))
        if query == "vector(1)":
            return [{"metric": {}, "value": [at, "1"]}]
        if self.mode == "empty":
            return []
        if "cortex_limits_overrides" in query:
            return [
                {"metric": {"user": t, "limit_name": n}, "value": [at, repr(v)]}
                for t, limits in self.overrides.items()
                for n, v in limits.items()
            ]
        if "cortex_limits_defaults" in query:
            return [
                {"metric": {"limit_name": n}, "value": [at, repr(v)]}
                for n, v in self.defaults.items()
            ]
        return []

    def _range(self, query: str, form: Mapping[str, str]) -> list[dict[str, Any]]:
        if self.mode == "empty" or "discarded" in query:
            return []
        start, end, step = (float(form[k]) for k in ("start", "end", "step"))
        points = [start + i * step for i in range(int((end - start) / step + 1e-9) + 1)]
        tenants = list(self.usage)
        if self.mode == "partial_tenants":
            tenants = tenants[: max(1, len(tenants) // 2)]
        series = []
        for tenant in tenants:
            value = repr(self.usage[tenant])
            if tenant == self.bad_tenant:
                value = {"nan": "NaN", "inf": "+Inf", "negative": "-50000"}.get(self.mode, value)
            stamps = points
            if self.mode == "missing_last_hour":
                stamps = [p for p in points if p <= end - 3600]
            series.append({"metric": {"user": tenant}, "values": [[p, value] for p in stamps]})
        return series

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

            def _reply(self, form: Mapping[str, str]) -> None:
                path = urllib.parse.urlsplit(self.path).path
                status, body = fake.answer(path, form)
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (mode "timeout")
                    self.close_connection = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                self._reply(dict(urllib.parse.parse_qsl(raw)))

            def do_GET(self) -> None:
                query = urllib.parse.urlsplit(self.path).query
                self._reply(dict(urllib.parse.parse_qsl(query)))

        return Handler


def _ok(data: dict[str, Any]) -> str:
    return json.dumps({"status": "success", "data": data})


class FrozenMimir:
    """A FAKE Mimir whose runtime config never reloads: `/runtime_config` always serves the
    content it started with (here: no overrides) and the reload gauge stays 1, so no written
    value ever shows up and every verification times out."""

    def __init__(self, on_first_request: Callable[[], None] | None = None) -> None:
        """`on_first_request`: called once, before the first /runtime_config answer (a fault
        to inject while a verification is under way)."""
        self.requests = 0
        self._hook = on_first_request

        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests += 1
                path = urllib.parse.urlsplit(self.path).path
                # Only a verification's read fires the fault: the cycle may also read the
                # cluster's defaults from /config (a 404 here) before it writes.
                if path == "/runtime_config":
                    hook, fake._hook = fake._hook, None
                    if hook is not None:
                        hook()
                if path == "/runtime_config":
                    body = b"overrides: {}\n"
                elif path == "/metrics":
                    body = b"cortex_runtime_config_last_reload_successful 1\n"
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
