"""The web UI: server-rendered pages (Jinja2 + htmx), live updates by Server-Sent Events,
charts by the vendored uPlot, and a JSON API under /api/v1, all reading through one read
model (model.ReadModel) that the controller implements. See docs/ui.md."""

from mimir_limit_optimizer.web.ui.app import UiParts, install_ui

__all__ = ["UiParts", "install_ui"]
