"""The line-scan layout of a runtime overrides file now lives in the engine
(`engine.overrides_layout`), where `OverridesDocument` reads and edits large files through it;
re-exported here for the UI's paged diff."""

from __future__ import annotations

from mimir_limit_optimizer.engine.overrides_layout import Layout, scan_layout

__all__ = ["Layout", "scan_layout"]
