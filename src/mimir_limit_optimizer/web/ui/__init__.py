"""The web UI: server-rendered pages (Jinja2 + htmx), live updates by Server-Sent Events,
charts by the vendored uPlot, and a JSON API under /api/v1, all reading through one read
model (model.ReadModel) that the controller implements. See docs/ui.md.

`install_ui` and `UiParts` live in web/ui/app.py; they are loaded on first use so that
importing the read-model protocols (web/ui/model.py) does not load the templates."""

from __future__ import annotations

from typing import Any

__all__ = ["UiParts", "install_ui"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mimir_limit_optimizer.web.ui import app

        return getattr(app, name)
    raise AttributeError(name)
