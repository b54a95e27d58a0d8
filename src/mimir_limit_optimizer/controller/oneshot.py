"""One planning cycle for the CLI, wired from config: collect -> read the target's current
limits -> the engine's planning pipeline (engine/planning.py), the same one the service runs.
`recommend` and `plan` use it; `plan` passes the guard inputs the service would hold."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mimir_limit_optimizer.catalogue import Catalogue, LimitSpec, SignalKind
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.current import resolve_current
from mimir_limit_optimizer.engine.overrides import OverridesDocument, parse_overrides
from mimir_limit_optimizer.engine.peak_memory import PeakMemory
from mimir_limit_optimizer.engine.planning import CyclePlan, GuardInputs, plan_cycle
from mimir_limit_optimizer.engine.recommend import enabled_limits
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.engine.usage import Observation
from mimir_limit_optimizer.sources.base import ProgressCallback, Source
from mimir_limit_optimizer.sources.current_limits import (
    cluster_defaults,
    declared_defaults,
    read_base_documents,
    read_runtime_file,
)
from mimir_limit_optimizer.sources.prometheus import PrometheusSource
from mimir_limit_optimizer.sources.synthetic import SyntheticSource
from mimir_limit_optimizer.targets.base import Target

_LOG = logging.getLogger("mimir_limit_optimizer")


def build_source(config: Config, *, now: float, env: Mapping[str, str]) -> Source:
    if config.source.kind == "prometheus":
        return PrometheusSource(
            config.source.prometheus,
            replication_factor=config.mimir.replication_factor,
            env=env,
        )
    # Step-aligned end: the same cluster (and the same recommendations) within one step.
    step = config.synthetic.step
    end = math.floor(now / step) * step
    return SyntheticSource(
        config.synthetic, end=end, replication_factor=config.mimir.replication_factor
    )


def signals_needed(specs: list[LimitSpec], catalogue: Catalogue) -> list[LimitSpec]:
    """Specs to collect: derived limits need their parent's signal (and current value)."""
    wanted = {s.name: s for s in specs}
    for spec in specs:
        if spec.signal is SignalKind.DERIVED and spec.derived_from:
            parent = catalogue.limits[spec.derived_from]
            wanted.setdefault(parent.name, parent)
    return list(wanted.values())


@dataclass
class Cycle:
    observation: Observation
    recommendations: Recommendations
    plan: CyclePlan
    document: OverridesDocument | None
    skipped_tenants: dict[str, str] = field(default_factory=dict)
    content: str = ""  # the overrides as read (the base of `plan --format file/patch`)


def read_overrides(path: str | None) -> OverridesDocument | None:
    """Parse the overrides file at `path` (None or absent file: no document). Raises
    CurrentLimitsError (a SourceError) naming the file when it cannot be read or parsed."""
    if not path:
        return None
    return read_runtime_file(str(Path(path)))


def resolve_limits_in_force(
    observation: Observation,
    config: Config,
    catalogue: Catalogue,
    specs: list[LimitSpec],
    target: OverridesDocument | None,
    *,
    logger: logging.Logger,
) -> Observation:
    """The observation with every current value and its origin resolved as Mimir does:
    the operator's runtime files (target.baseFiles) merged with the optimizer's own file last,
    then the cluster's defaults (Mimir /config, its config file, cortex_limits_defaults,
    limitOverrides.defaultValue). Reads the files and /config (I/O); the decision is the
    engine's `resolve_current`."""
    documents = read_base_documents(config.target.base_files)
    if target is not None:
        documents.append(target)
    return resolve_current(
        observation,
        specs,
        documents=documents,
        cluster_defaults=cluster_defaults(config, catalogue, logger=logger),
        declared_defaults=declared_defaults(config),
    )


def run_cycle(
    config: Config,
    catalogue: Catalogue,
    source: Source,
    *,
    now: float,
    limits: list[str] | None = None,
    progress: ProgressCallback | None = None,
    target: Target | None = None,
    guards: GuardInputs | None = None,
    memory: PeakMemory | None = None,
) -> Cycle:
    """One cycle's plan, the same pipeline as the service's (engine/planning.py). Current
    limits come from `target` (file or ConfigMap; it raises TargetError) or, without one, from
    target.path; `guards` are what the service's guards would hold and `memory` the long-term
    peak memory it saved (see plan_inputs)."""
    specs = [catalogue.limits[n] for n in limits] if limits else enabled_limits(config, catalogue)
    if target is not None:
        text = target.read().text
        # Origins name a file by its path (as `validate` does), a ConfigMap by its description.
        name = config.target.path if config.target.kind == "file" else None
        document = parse_overrides(text, source_name=name or target.describe()) if text else None
    else:
        document = read_overrides(config.target.path)
        text = document.render() if document is not None else ""
    start = now - config.trend_analysis.analysis_window
    collected = signals_needed(specs, catalogue)
    observation = source.collect(collected, start=start, end=now, progress=progress)
    observation = resolve_limits_in_force(
        observation, config, catalogue, collected, document, logger=_LOG
    )
    planned = plan_cycle(
        observation,
        {},  # resolved above, with origins
        config,
        catalogue,
        guards=guards or GuardInputs(),
        now=now,
        limits=[s.name for s in specs],
        memory=memory,
    )
    skipped = dict(getattr(source, "last_skipped_tenants", {}) or {})
    return Cycle(observation, planned.recommendations, planned, document, skipped, text)
