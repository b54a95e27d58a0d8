"""Where the fast protection loop reads its signals: a real Prometheus/Mimir (one instant query
per signal for all tenants), or, for the embedded default, the synthetic cluster with a demo
blast now and then so that protection can be seen at work in dry-run."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.sources.fast_signals import FastSource, PrometheusFastSource
from mimir_limit_optimizer.sources.fast_synthetic import (
    Blast,
    SyntheticFastSource,
    scenario_from_cluster,
)
from mimir_limit_optimizer.sources.synthetic_generate import generate_cluster

FastSourceFactory = Callable[[Config, float], FastSource]


def default_fast_source_factory(
    catalogue: Catalogue, env: Mapping[str, str] | None = None
) -> FastSourceFactory:
    """Prometheus fast signals for `source.kind: prometheus`; for the embedded synthetic
    cluster, its steady state with a demo blast of its first `blast-*` tenant for 15 minutes
    every 6 hours (so the embedded default shows protection at work in dry-run)."""
    environment = dict(env or {})

    def make(config: Config, now: float) -> FastSource:
        if config.source.kind == "prometheus":
            return PrometheusFastSource(
                config.source.prometheus,
                config.circuit_breaker.fast_loop,
                catalogue,
                replication_factor=config.mimir.replication_factor,
                env=environment,
            )
        step_s = config.synthetic.step
        end = math.floor(now / step_s) * step_s
        cluster = generate_cluster(
            config.synthetic, end=end, replication_factor=config.mimir.replication_factor
        )
        blasting = cluster.archetypes.get("blast", ())
        blasts: list[Blast] = []
        if blasting:
            period, first = 6 * 3600.0, math.floor(now / (6 * 3600.0)) * 6 * 3600.0
            blasts = [
                Blast(blasting[0], start, start + 900.0, series_factor=3.0, ingestion_factor=3.0)
                for start in (first + k * period for k in range(-1, 60))  # 15 days
            ]
        return SyntheticFastSource(scenario_from_cluster(cluster, blasts=blasts))

    return make
