"""The Metrics page: the optimizer's own numbers per cycle, the Mimir signals it reads (summed
over tenants) and a read-only PromQL box through the configured Prometheus source."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from mimir_limit_optimizer.controller.ui_parts import ServiceParts
from mimir_limit_optimizer.controller.ui_views import downsample
from mimir_limit_optimizer.sources.base import SourceError
from mimir_limit_optimizer.sources.prom_http import PromHTTP
from mimir_limit_optimizer.web.ui.model import CyclePoint, Series, UiError

SIGNALS = ("ingestion_rate", "max_global_series_per_user")
CACHE_SECONDS = 60.0
MAX_QUERY_CHARS = 2000


def _tuple(values: Any) -> tuple[float | None, ...]:
    return tuple(None if not math.isfinite(v) else float(v) for v in np.asarray(values).tolist())


class MetricsReader:
    def __init__(self, parts: ServiceParts) -> None:
        self.p = parts
        self._cache: dict[float, tuple[float, dict[str, Series]]] = {}

    def charts(self, cycles: Sequence[CyclePoint], seconds: float) -> dict[str, Series]:
        now = self.p.clock()
        recent = [c for c in cycles if c.at >= now - seconds]
        x = tuple(c.at for c in recent)
        out = {
            "cycle duration (s)": Series(x, {"duration": tuple(c.duration for c in recent)}, "s"),
            "changes per cycle": Series(
                x,
                {
                    "planned": tuple(float(c.planned) for c in recent),
                    "held back": tuple(float(c.held_back) for c in recent),
                },
            ),
            "throttled tenants": Series(x, {"throttled": tuple(c.throttled for c in recent)}),
            "demand vs limits": Series(
                x,
                {
                    "demand": tuple(c.total_demand for c in recent),
                    "limits": tuple(c.total_limit for c in recent),
                },
                "samples/s",
            ),
        }
        cached = self._cache.get(seconds)
        if cached is None or now - cached[0] > CACHE_SECONDS:
            cached = (now, self._signals(seconds, now))
            self._cache[seconds] = cached
        out.update(cached[1])
        return out

    def _signals(self, seconds: float, now: float) -> dict[str, Series]:
        config = self.p.config()
        specs = [self.p.catalogue.limits[n] for n in SIGNALS if n in self.p.catalogue.limits]
        try:
            observation = self.p.source_factory(config, now).collect(
                specs, start=now - seconds, end=now
            )
        except SourceError as exc:
            self.p.logger.warning("metrics page: the source could not be read: %s", exc)
            return {}
        out: dict[str, Series] = {}
        ts = np.asarray(observation.timestamps, dtype=np.float64)
        for spec in specs:
            usage = observation.usage.get(spec.name)
            if usage is None:
                continue
            with np.errstate(all="ignore"):
                accepted = np.nansum(np.asarray(usage, dtype=np.float64), axis=0)
                found = observation.discards.get(spec.name)
                discarded = (
                    np.nansum(np.asarray(found, dtype=np.float64), axis=0)
                    if found is not None
                    else np.zeros(len(ts))
                )
            x, accepted, discarded = downsample(ts, accepted, discarded)
            out[f"Mimir: {spec.name} (all tenants)"] = Series(
                tuple(float(v) for v in x),
                {"accepted": _tuple(accepted), "discarded": _tuple(discarded)},
                spec.unit,
            )
        return out

    def query(self, promql: str, seconds: float) -> Series:
        config = self.p.config()
        text = promql.strip()
        if not text:
            raise UiError("type a PromQL expression")
        if len(text) > MAX_QUERY_CHARS:
            raise UiError(f"the query is over {MAX_QUERY_CHARS} characters")
        if config.source.kind != "prometheus":
            raise UiError(
                "the PromQL box reads through the configured Prometheus source; this service "
                "uses the synthetic source (set source.kind: prometheus)",
                status=409,
            )
        ui = config.ui
        settings = config.source.prometheus.model_copy(
            update={"timeout": ui.query_timeout, "retries": 0}
        )
        step = max(15.0, math.ceil(seconds / ui.query_max_points))
        now = self.p.clock()
        try:
            api = PromHTTP(
                settings, env=self.p.env, sleep=asyncio.sleep, rng=random.Random(0),
                logger=logging.getLogger("mimir_limit_optimizer.ui.query"),
            )  # fmt: skip

            async def run() -> list[Any]:
                async with api.connect() as conn:
                    return await asyncio.wait_for(
                        conn.query_range(text, now - seconds, now, step), ui.query_timeout
                    )

            found = asyncio.run(run())
        except TimeoutError as exc:
            raise UiError(f"the query took over {ui.query_timeout:g}s", status=504) from exc
        except SourceError as exc:
            raise UiError(f"the query failed: {exc}") from exc
        truncated = len(found) > ui.query_max_series
        found = found[: ui.query_max_series]
        grid = np.arange(now - seconds, now + step / 2, step)
        grid = grid[-ui.query_max_points :]
        series: dict[str, tuple[float | None, ...]] = {}
        for s in found:
            label = ", ".join(f"{k}={v}" for k, v in sorted(s.labels.items())) or "value"
            values = np.full(len(grid), np.nan)
            at = np.searchsorted(grid, np.asarray(s.timestamps) - step / 2)
            ok = (at >= 0) & (at < len(grid))
            values[at[ok]] = np.asarray(s.values)[ok]
            series[label[:200]] = _tuple(values)
        unit = f"first {ui.query_max_series} series of {len(found)}+" if truncated else ""
        return Series(tuple(float(v) for v in grid), series, unit)
