"""The four cost models of the seed, as one linear price per signal.

cost = sum over signals of quantity x unit price, where (prices from costControl.prices):
- samples:   samples / 10^6 x perMillionSamples (default costPerUnit),
- series:    series-hours x perSeriesHour,
- queries:   queries / 10^3 x perThousandQueries + fetched bytes / 10^9 x perFetchedGB,
- composite: weights.samples x samples cost + weights.series x series cost
             + weights.queries x queries cost (the Go optimizer's 0.4 / 0.4 / 0.2).
A model only prices its own signals (the samples model ignores series, ...). Linear prices
make every total the same whether summed before or after pricing (days, tenants, teams).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from mimir_limit_optimizer.config.cost import CostControlSettings
from mimir_limit_optimizer.engine.cost.periods import HOUR
from mimir_limit_optimizer.engine.usage import FloatArray

# The model component each signal belongs to (its weight in the composite model).
COMPONENT: Mapping[str, str] = MappingProxyType(
    {"samples": "samples", "series": "series", "queries": "queries", "fetched_bytes": "queries"}
)
_METHOD_WEIGHTS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "samples": {"samples": 1.0, "series": 0.0, "queries": 0.0},
        "series": {"samples": 0.0, "series": 1.0, "queries": 0.0},
        "queries": {"samples": 0.0, "series": 0.0, "queries": 1.0},
    }
)
# The limit that bounds each enforceable signal's rate (queries have no per-tenant rate limit).
ENFORCED_BY: Mapping[str, str] = MappingProxyType(
    {"samples": "ingestion_rate", "series": "max_global_series_per_user"}
)


@dataclass(frozen=True)
class PriceModel:
    method: str
    # Currency per quantity unit (sample, series-hour, query, byte), weight included.
    unit_price: Mapping[str, float]

    @classmethod
    def from_settings(cls, settings: CostControlSettings) -> PriceModel:
        method = settings.cost_method
        if method == "composite":
            w = settings.composite_weights
            weights = {"samples": w.samples, "series": w.series, "queries": w.queries}
        else:
            weights = dict(_METHOD_WEIGHTS[method])
        p = settings.prices
        raw = {
            "samples": settings.samples_price / 1e6,
            "series": p.per_series_hour,
            "queries": p.per_thousand_queries / 1e3,
            "fetched_bytes": p.per_fetched_gb / 1e9,
        }
        return cls(method, {s: raw[s] * weights[COMPONENT[s]] for s in raw})

    @property
    def priced(self) -> tuple[str, ...]:
        """Signals that cost something in this model (the ones to collect)."""
        return tuple(s for s, price in self.unit_price.items() if price > 0)

    def cost(self, quantities: Mapping[str, FloatArray]) -> FloatArray:
        """Cost of the quantities (signal -> array in quantity units); a priced signal that is
        absent counts as 0 (the caller reports it as missing)."""
        total: FloatArray | None = None
        for signal in self.priced:
            if signal not in quantities:
                continue
            part = np.asarray(quantities[signal], dtype=np.float64) * self.unit_price[signal]
            total = part if total is None else total + part
        if total is None:
            shape = next((np.shape(q) for q in quantities.values()), ())
            return np.zeros(shape)
        return total

    def rate_price(self, signal: str) -> float:
        """Currency per second per unit of the signal's RATE (sample/s, series, ...)."""
        per_second = 1.0 / HOUR if signal == "series" else 1.0
        return self.unit_price[signal] * per_second

    def cost_rates(self, rates: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
        """Currency per second of each priced signal at the given rates."""
        return {s: rates[s] * self.rate_price(s) for s in self.priced if s in rates}
