"""What the UI's read model and its actions take from the service (controller/ui_wiring.py
builds them once): both take the live config and its file, the environment and flags it was
loaded with, the catalogue, the store, the target's applier and the clock (SharedParts); the
read model also reads health, protection, alerting, cost and the source (ServiceParts)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.engine.peak_memory import PeakMemory
from mimir_limit_optimizer.observability.health import HealthState
from mimir_limit_optimizer.sources.base import Source
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


@dataclass
class ServiceParts(SharedParts):
    """What the read model reads (everything injected by the service)."""

    health: HealthState
    protection_status: Callable[[], dict[str, Any]]
    alerting_status: Callable[[], Mapping[str, Any]]
    cost_by_tenant: Callable[[], tuple[dict[str, float], str] | None]
    source_factory: Callable[[Config, float], Source]
    runtime_freeze: Callable[[], str | None]  # who froze applying from the UI, or None
    peak_memory: Callable[[], PeakMemory | None]  # what the cycles plan with (None: none yet)
    logger: logging.Logger
