"""Test tools of the UI that compute without saving anything: a backtest of a scenario file
(one job at a time, on a thread, with progress), a preview of the synthetic cluster, and
what-if (one tenant's recommendation with another buffer or strategy)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.oneshot import signals_needed
from mimir_limit_optimizer.controller.ui_jobs import BacktestJobs, scenario_folder
from mimir_limit_optimizer.engine.recommend import enabled_limits, recommend
from mimir_limit_optimizer.engine.results import render_value
from mimir_limit_optimizer.engine.usage import Observation
from mimir_limit_optimizer.sources.base import Source, SourceError
from mimir_limit_optimizer.sources.synthetic import SyntheticSource
from mimir_limit_optimizer.web.ui.model import UiError

if TYPE_CHECKING:
    from mimir_limit_optimizer.controller.read_model import ServiceReadModel


def one_tenant(observation: Observation, tenant: str) -> Observation:
    if tenant not in observation.tenants:
        raise UiError(f"the source has no data for tenant {tenant!r}", status=404)
    i = observation.tenants.index(tenant)
    pick = slice(i, i + 1)
    return Observation(
        tenants=(tenant,),
        timestamps=observation.timestamps,
        step=observation.step,
        usage={k: v[pick] for k, v in observation.usage.items()},
        discards={k: v[pick] for k, v in observation.discards.items()},
        current={k: v[pick] for k, v in observation.current.items()},
        unavailable=dict(observation.unavailable),
        current_origin={k: v[i : i + 1] for k, v in observation.current_origin.items()},
    )


class ServiceTools:
    def __init__(
        self, read_model: ServiceReadModel, source_factory: Callable[[Config, float], Source]
    ) -> None:
        self.read = read_model
        self.source_factory = source_factory

        self.jobs = BacktestJobs(read_model.p.config, read_model.p.catalogue)

    def scenarios(self) -> Sequence[str]:
        folder = scenario_folder()
        return () if folder is None else tuple(sorted(p.stem for p in folder.glob("*.yaml")))

    def backtest(self, scenario: str | None, text: str | None) -> dict[str, Any]:
        if text is None:
            folder = scenario_folder()
            if scenario is None or folder is None or scenario not in self.scenarios():
                raise UiError("choose one of the scenarios or upload a scenario file", status=404)
            text = (folder / f"{scenario}.yaml").read_text(encoding="utf-8")
        name = scenario or "uploaded.yaml"
        return {"job": self.jobs.start(name, text)}

    def backtest_status(self, job: str) -> dict[str, Any]:
        return self.jobs.status(job)

    def synthetic_preview(self, tenants: int) -> dict[str, Any]:
        p = self.read.p
        config = p.config()
        now = p.clock()
        settings = config.synthetic.model_copy(
            update={"tenant_count": tenants, "history": 86400.0, "step": 600.0}
        )
        source = SyntheticSource(
            settings, end=now, replication_factor=config.mimir.replication_factor
        )
        spec = p.catalogue.limits["ingestion_rate"]
        observation = source.collect([spec], start=now - 86400.0, end=now)
        usage = np.asarray(observation.usage[spec.name], dtype=np.float64)
        with np.errstate(all="ignore"):
            p95 = np.nanpercentile(usage, 95, axis=1)
        current = observation.current[spec.name]
        rows = [
            {
                "tenant": t,
                "p95": render_value(float(p95[i]), spec),
                "limit": render_value(float(current[i]), spec),
                "share": float(p95[i] / current[i]) if current[i] > 0 else None,
            }
            for i, t in enumerate(observation.tenants)
        ]
        total = np.nansum(usage, axis=0)
        return {
            "tenants": tenants,
            "seed": settings.seed,
            "rows": rows,
            "x": [float(v) for v in observation.timestamps],
            "total": [float(v) for v in total],
        }

    def what_if(self, tenant: str, buffer: float | None, strategy: str | None) -> dict[str, Any]:
        p = self.read.p
        config = p.config()
        now = p.clock()
        specs = enabled_limits(config, p.catalogue)
        source_config = config
        if config.source.kind == "prometheus":
            prom = config.source.prometheus
            source_config = config.model_copy(
                update={
                    "source": config.source.model_copy(
                        update={
                            "prometheus": prom.model_copy(
                                update={"selectors": {**prom.selectors, "user": tenant}}
                            )
                        }
                    )
                }
            )
        try:
            observation = self.source_factory(source_config, now).collect(
                signals_needed(specs, p.catalogue),
                start=now - config.trend_analysis.analysis_window,
                end=now,
            )
        except SourceError as exc:
            raise UiError(f"the source could not be read: {exc}", status=502) from exc
        single = one_tenant(observation, tenant)
        names = [s.name for s in specs]
        changed = config
        change = []
        if buffer is not None:
            changed = changed.model_copy(update={"buffer_percentage": buffer})
            change.append(f"buffer {buffer:g}%")
        if strategy is not None:
            changed = changed.model_copy(
                update={
                    "trend_analysis": changed.trend_analysis.model_copy(
                        update={"strategy": strategy}
                    )
                }
            )
            change.append(f"strategy {strategy}")
        # The long-term peak memory the cycles plan with, so "now" is what a cycle would say.
        memory = p.peak_memory() if config.trend_analysis.adaptive.long_term_window > 0 else None
        before = recommend(single, config, p.catalogue, now=now, limits=names, memory=memory)
        after = recommend(single, changed, p.catalogue, now=now, limits=names, memory=memory)
        rows = []
        for name, result in before.results.items():
            other = after.results[name]
            spec = result.spec
            rows.append(
                {
                    "limit": name,
                    "current": render_value(float(result.current[0]), spec),
                    "now": render_value(float(result.recommended[0]), spec),
                    "what_if": render_value(float(other.recommended[0]), spec),
                    "differs": bool(
                        not np.isclose(result.recommended[0], other.recommended[0], equal_nan=True)
                    ),
                }
            )
        return {"tenant": tenant, "change": ", ".join(change) or "no change", "rows": rows}
