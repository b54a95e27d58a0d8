"""What the UI's read model and its actions both take from the service (controller/ui_wiring.py
builds them once): the live config and its file, the environment and flags it was loaded
with, the catalogue, the store, the target's applier and the clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.store import Store


@dataclass
class SharedParts:
    config: Callable[[], Config]
    config_path: Callable[[], str | None]
    env: Mapping[str, str]
    cli: Mapping[str, Any]
    catalogue: Catalogue
    store: Store
    applier: Applier
    clock: Callable[[], float]
