"""One recommendation cycle, wired from config: collect -> merge current limits -> recommend
-> plan. The CLI's `recommend` and `plan` and (later) the service loop share it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mimir_limit_optimizer.catalogue import Catalogue, LimitSpec, SignalKind
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.current import merge_current
from mimir_limit_optimizer.engine.overrides import (
    OverridesDocument,
    current_limits,
    parse_overrides,
)
from mimir_limit_optimizer.engine.plan import Plan, build_plan
from mimir_limit_optimizer.engine.recommend import enabled_limits, recommend
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.engine.usage import Observation
from mimir_limit_optimizer.sources.base import ProgressCallback, Source
from mimir_limit_optimizer.sources.prometheus import PrometheusSource
from mimir_limit_optimizer.sources.synthetic import SyntheticSource


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
    plan: Plan
    document: OverridesDocument | None
    skipped_tenants: dict[str, str] = field(default_factory=dict)


def read_overrides(path: str | None) -> tuple[OverridesDocument | None, str]:
    """Parse the overrides file at `path` (None or absent file: no document)."""
    if not path:
        return None, ""
    file = Path(path)
    if not file.exists():
        return None, ""
    text = file.read_text(encoding="utf-8")
    return parse_overrides(text, source_name=str(file)), text


def run_cycle(
    config: Config,
    catalogue: Catalogue,
    source: Source,
    *,
    now: float,
    limits: list[str] | None = None,
    progress: ProgressCallback | None = None,
) -> Cycle:
    specs = [catalogue.limits[n] for n in limits] if limits else enabled_limits(config, catalogue)
    document, _ = read_overrides(config.target.path)
    start = now - config.trend_analysis.analysis_window
    collected = signals_needed(specs, catalogue)
    observation = source.collect(collected, start=start, end=now, progress=progress)
    if document is not None:
        from_file = current_limits(document, observation.tenants, collected)
        observation = merge_current(observation, from_file)
    recs = recommend(observation, config, catalogue, now=now, limits=[s.name for s in specs])
    skipped = dict(getattr(source, "last_skipped_tenants", {}) or {})
    return Cycle(observation, recs, build_plan(recs), document, skipped)
