"""A FAKE of Mimir's runtime-config loader, for tests: not Mimir, a few behaviours of it.

What it copies from Mimir (dskit `runtimeconfig` and Mimir's `/runtime_config` handler):
every `period` seconds it re-reads the files; when the sha256 of their concatenation changed
it validates each strictly (`validate_overrides`: ANY problem rejects the WHOLE reload, the
last good config stays and `cortex_runtime_config_last_reload_successful` goes to 0; a
missing file is a failed reload too), then deep-merges the files left to right (maps merge
key by key, scalars and lists are replaced).

Endpoints: `/runtime_config` (the merged overrides as YAML), `/runtime_config?mode=diff`
(the same: the fake has no global `limits` block, so there are no defaults to subtract) and
`/metrics` (the reload gauge and `cortex_runtime_config_hash{sha256="..."}` of the active
config). Unlike Mimir it starts even when the first load fails (with an empty config and the
gauge at 0). Loopback only, a free port.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from ruamel.yaml import YAML

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.engine.overrides import format_problems, validate_overrides

MAX_LIFETIME = 600.0  # seconds: the reload loop ends by itself if a test forgets stop()


def deep_merge(left: Any, right: Any) -> Any:
    """Mimir's merge of runtime files: maps key by key, anything else replaced by `right`."""
    if isinstance(left, dict) and isinstance(right, dict):
        merged = dict(left)
        for key, value in right.items():
            merged[key] = deep_merge(left[key], value) if key in left else value
        return merged
    return right


class FakeMimir:
    """`with FakeMimir([path], catalogue) as mimir: ... mimir.url ...`"""

    def __init__(self, files: Sequence[Path], catalogue: Catalogue, *, period: float = 0.2):
        self.files = [Path(f) for f in files]
        self.catalogue = catalogue
        self.period = period
        self.config: dict[str, Any] = {}
        self.active_hash = ""
        self.reload_successful = 0
        self.last_error = ""
        self.reloads = 0  # completed reload attempts (successful or not)
        self._seen_hash: str | None = None
        self._lock = threading.Lock()  # guards what the HTTP threads read
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.reload()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True),
            threading.Thread(target=self._reload_loop, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def reload(self) -> None:
        """One pass of the loader (the background loop calls this every `period`)."""
        with self._reload_lock:
            self._reload()

    def _reload(self) -> None:
        texts: list[str] = []
        error = ""
        for path in self.files:
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                error = f"{path}: {exc}"
        digest = hashlib.sha256("".join(texts).encode()).hexdigest()
        if not error and digest == self._seen_hash:
            return  # unchanged content is not reloaded
        merged: dict[str, Any] = {}
        if not error:
            for path, text in zip(self.files, texts, strict=True):
                problems = validate_overrides(text, self.catalogue, source_name=str(path))
                if problems:
                    error = format_problems(problems, str(path))
                    break
                merged = deep_merge(merged, _plain(YAML(typ="safe").load(text) or {}))
        with self._lock:
            self._seen_hash = digest
            self.reloads += 1
            self.last_error = error
            self.reload_successful = 0 if error else 1
            if not error:
                self.config, self.active_hash = merged, digest

    def _reload_loop(self) -> None:
        deadline = time.monotonic() + MAX_LIFETIME
        while not self._stop.wait(self.period) and time.monotonic() < deadline:
            self.reload()

    def runtime_config_yaml(self) -> str:
        with self._lock:
            overrides = self.config.get("overrides") or {}
        out = io.StringIO()
        yaml = YAML(typ="safe")
        yaml.default_flow_style = False
        yaml.dump({"overrides": overrides}, out)
        return out.getvalue()

    def metrics_text(self) -> str:
        with self._lock:
            status, active = self.reload_successful, self.active_hash
        lines = [
            "# TYPE cortex_runtime_config_last_reload_successful gauge",
            f"cortex_runtime_config_last_reload_successful {status}",
        ]
        if active:
            lines += [
                "# TYPE cortex_runtime_config_hash gauge",
                f'cortex_runtime_config_hash{{sha256="{active}"}} 1',
            ]
        return "\n".join(lines) + "\n"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/runtime_config":
                    self._send(200, fake.runtime_config_yaml())
                elif path == "/metrics":
                    self._send(200, fake.metrics_text())
                else:
                    self._send(404, "404 page not found\n")

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler

    def stop(self) -> None:
        """Stop serving and reloading (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FakeMimir:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _plain(value: Any) -> Any:
    """Tenant ids and limit names as the strings Mimir sees (`123:` is tenant "123")."""
    if isinstance(value, dict):
        return {
            (str(k).lower() if isinstance(k, bool) else str(k)): _plain(v) for k, v in value.items()
        }
    return value
