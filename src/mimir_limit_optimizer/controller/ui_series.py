"""A tenant's chart of one usage-driven limit: usage, demand (usage + discards) and the limit
in force over time, read from the source for that tenant only and cached for a minute."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mimir_limit_optimizer.catalogue import SignalKind
from mimir_limit_optimizer.controller.ui_parts import ServiceParts
from mimir_limit_optimizer.controller.ui_views import downsample, plain
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.sources.base import SourceError
from mimir_limit_optimizer.store import StoreError
from mimir_limit_optimizer.web.ui.model import Series, UiError

SERIES_CACHE_SECONDS = 60.0


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


class TenantSeries:
    def __init__(self, parts: ServiceParts) -> None:
        self.p = parts
        self._cache: dict[tuple[str, str, float], tuple[float, Series]] = {}

    def clear(self) -> None:
        """Forget every chart (a new cycle's recommendations; call under the read model's
        lock)."""
        self._cache.clear()

    def series(self, recs: Recommendations | None, name: str, limit: str, seconds: float) -> Series:
        if recs is None or name not in recs.tenants:
            raise UiError(f"no tenant {name!r} in the last cycle", status=404)
        result = recs.results.get(limit)
        if result is None or result.spec.signal is not SignalKind.USAGE:
            raise UiError(f"{limit!r} is not a usage-driven limit of this service", status=404)
        key = (name, limit, seconds)
        now = self.p.clock()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < SERIES_CACHE_SECONDS:
            return cached[1]
        series = self._collect(recs, name, limit, seconds, now)
        self._cache[key] = (now, series)
        return series

    def _collect(
        self, recs: Recommendations, name: str, limit: str, seconds: float, now: float
    ) -> Series:
        config = self.p.config()
        if config.source.kind == "prometheus":  # only this tenant's series (a `user` matcher)
            prometheus = config.source.prometheus
            selectors = {**prometheus.selectors, "user": name}
            config = config.model_copy(
                update={
                    "source": config.source.model_copy(
                        update={
                            "prometheus": prometheus.model_copy(update={"selectors": selectors})
                        }
                    )
                }
            )
        spec = self.p.catalogue.limits[limit]
        try:
            source = self.p.source_factory(config, now)
            observation = source.collect([spec], start=now - seconds, end=now)
        except SourceError as exc:
            raise UiError(f"the source could not be read: {exc}", status=502) from exc
        if name not in observation.tenants or limit not in observation.usage:
            raise UiError(f"the source has no {limit} data for {name!r}", status=404)
        i = observation.tenants.index(name)
        usage = np.asarray(observation.usage[limit][i], dtype=np.float64)
        discards = observation.discards.get(limit)
        demand = usage + (
            np.nan_to_num(np.asarray(discards[i], dtype=np.float64))
            if discards is not None
            else 0.0
        )
        x = np.asarray(observation.timestamps, dtype=np.float64)
        x, usage, demand = downsample(x, usage, demand)
        result = recs.results[limit]
        r = recs.tenants.index(name)
        current = self._limit_in_force(name, limit, x, float(result.current[r]))
        marks = {}
        recommended = _finite(float(result.recommended[r]))
        if recommended is not None:
            marks["recommendation"] = recommended
        return Series(
            x=tuple(float(v) for v in x),
            series={
                "usage": plain(usage),
                "demand": plain(demand),
                "limit": plain(current),
            },
            unit=result.spec.unit,
            marks=marks,
        )

    def _limit_in_force(self, tenant: str, limit: str, x: Any, now_value: float) -> Any:
        """The limit over time as a step line, from the applied changes in the audit log
        (`update_limits`: old -> new at its time); today's value where none is recorded."""
        values = np.full(len(x), now_value)
        if len(x) == 0:
            return values
        try:
            events = self.p.store.audit(tenant=tenant, action="update_limits", since=float(x[0]))
        except StoreError:
            return values
        changes = sorted(
            (e.timestamp, e.details.get("old"), e.details.get("new"))
            for e in events
            if e.details.get("limit") == limit
        )
        if not changes:
            return values
        first_old = changes[0][1]
        if isinstance(first_old, int | float):
            values[:] = float(first_old)
        for at, _old, new in changes:
            if isinstance(new, int | float):
                values[np.asarray(x) >= at] = float(new)
                values[-1] = float(new)  # the window ends now, under the latest change
        return values
