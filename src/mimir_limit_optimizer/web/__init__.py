"""HTTP endpoints: Prometheus metrics and health probes (later the UI and REST API)."""

from mimir_limit_optimizer.web.app import build_app
from mimir_limit_optimizer.web.server import Servers, ServerStartError, start_servers

__all__ = ["ServerStartError", "Servers", "build_app", "start_servers"]
