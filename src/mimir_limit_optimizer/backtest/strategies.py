"""The strategies a backtest compares, each a function of what Mimir would show.

Every strategy gets the same `Observation` the engine gets from a source (accepted usage,
discards, the limits in force) and `now`, and returns the limit it wants per tenant (NaN:
no opinion, the limit in force stays). Only ours reads the discards: the others see accepted
usage, as the tools they stand for do.

- `ours`: `engine.recommend.recommend` with the given config (the default one unless the
  user passes a file): demand correction, spike exclusion, percentile, buffer, deadband,
  step limits, rounding.
- `p95x1.2`: p95 of usage over 48 h x 1.2 (the original Go optimizer's formula).
- `krr`: KRR's simple strategy transposed: p95 x 1.15 for rate limits, max x 1.15 for count
  limits (series), over KRR's default 14 days, with at least KRR's 100 points.
- `mimir-defaults`: Mimir's static defaults from the catalogue, for every tenant.
- `keep-current`: the limits in force, never changed.

The baselines get the hygiene any operator applies before writing a value (rounded up to 2
significant digits, clamped to the catalogue's min/max), so the comparison is about the
estimate, not about float noise or values Mimir would reject.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from mimir_limit_optimizer.catalogue import Catalogue, LimitSpec, LimitType
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.peak_memory import PeakMemory, update
from mimir_limit_optimizer.engine.postprocess import round_readable
from mimir_limit_optimizer.engine.recommend import recommend
from mimir_limit_optimizer.engine.usage import FloatArray, Observation

HOUR = 3600.0
DAY = 86400.0


class Strategy(Protocol):
    """Recommends limits from an Observation ending at `now`."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def lookback(self) -> float:
        """Seconds of history it reads before `now` (0: none)."""
        ...

    def recommend(
        self, obs: Observation, *, now: float, limits: Sequence[LimitSpec]
    ) -> dict[str, FloatArray]: ...


@runtime_checkable
class Remembers(Protocol):
    """A strategy with state from one cycle to the next (ours: the long-term peak memory,
    engine/peak_memory.py). A replay starts a fresh session per case, lets it `observe`
    earlier windows of the history (what the service running then would have remembered),
    then asks it for every cycle, in order."""

    def start(self) -> Session: ...


class Session(Strategy, Protocol):
    def observe(self, obs: Observation, *, now: float, limits: Sequence[LimitSpec]) -> None:
        """Remember what the window ending at `now` holds, recommending nothing."""
        ...


@dataclass(frozen=True)
class Ours:
    config: Config
    catalogue: Catalogue
    name: str = "ours"
    description: str = "mimir-limit-optimizer's engine"

    @property
    def lookback(self) -> float:
        return float(self.config.trend_analysis.analysis_window)

    def start(self) -> OursSession:
        return OursSession(self)

    def recommend(
        self, obs: Observation, *, now: float, limits: Sequence[LimitSpec]
    ) -> dict[str, FloatArray]:
        """One stateless cycle (no memory of earlier ones: `start` carries it)."""
        return self.start().recommend(obs, now=now, limits=limits)


@dataclass
class OursSession:
    """Ours over one replay: the long-term peak memory carried from cycle to cycle, as the
    service carries it in its store."""

    ours: Ours
    memory: PeakMemory | None = None

    @property
    def name(self) -> str:
        return self.ours.name

    @property
    def description(self) -> str:
        return self.ours.description

    @property
    def lookback(self) -> float:
        return self.ours.lookback

    def observe(self, obs: Observation, *, now: float, limits: Sequence[LimitSpec]) -> None:
        self.recommend(obs, now=now, limits=limits)

    def recommend(
        self, obs: Observation, *, now: float, limits: Sequence[LimitSpec]
    ) -> dict[str, FloatArray]:
        config, catalogue = self.ours.config, self.ours.catalogue
        names = [s.name for s in limits]
        recs = recommend(obs, config, catalogue, now=now, limits=names, memory=self.memory)
        window = config.trend_analysis.adaptive.long_term_window
        self.memory = update(self.memory, recs, now=now, long_term_window=window)
        out: dict[str, FloatArray] = {}
        if recs.tenants == obs.tenants:
            rows = None
        else:  # tenant scoping of the config: tenants out of scope keep their limits
            index = {tenant: i for i, tenant in enumerate(obs.tenants)}
            rows = np.array([index[t] for t in recs.tenants], dtype=np.int64)
        for spec in limits:
            values = recs.results[spec.name].recommended
            if rows is None:
                out[spec.name] = values
            else:
                full = np.full(len(obs.tenants), np.nan)
                full[rows] = values
                out[spec.name] = full
        return out


@dataclass(frozen=True)
class WindowStatistic:
    """stat(accepted usage over the last `window`) x factor, per limit type."""

    name: str
    description: str
    window: float
    percentile_rate: float
    percentile_count: float
    factor_rate: float
    factor_count: float
    min_points: int = 1

    @property
    def lookback(self) -> float:
        return self.window

    def recommend(
        self, obs: Observation, *, now: float, limits: Sequence[LimitSpec]
    ) -> dict[str, FloatArray]:
        ts = obs.timestamps
        lo = int(np.searchsorted(ts, now - self.window, side="right"))
        hi = int(np.searchsorted(ts, now, side="right"))
        out: dict[str, FloatArray] = {}
        for spec in limits:
            usage = obs.usage.get(spec.name)
            if usage is None:
                out[spec.name] = np.full(len(obs.tenants), np.nan)
                continue
            window = usage[:, lo:hi]
            rate = spec.type is LimitType.RATE
            q = self.percentile_rate if rate else self.percentile_count
            enough = np.count_nonzero(np.isfinite(window), axis=1) >= self.min_points
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: NaN
                stat = np.nanpercentile(window, q, axis=1) if window.shape[1] else None
            if stat is None:
                out[spec.name] = np.full(len(obs.tenants), np.nan)
                continue
            value = np.where(
                enough, stat * (self.factor_rate if rate else self.factor_count), np.nan
            )
            out[spec.name] = operator_hygiene(value, spec)
        return out


@dataclass(frozen=True)
class Fixed:
    """A value that does not look at usage: Mimir's defaults, or the limits in force."""

    name: str
    description: str
    use_defaults: bool
    lookback: float = 0.0

    def recommend(
        self, obs: Observation, *, now: float, limits: Sequence[LimitSpec]
    ) -> dict[str, FloatArray]:
        n = len(obs.tenants)
        if self.use_defaults:
            return {spec.name: np.full(n, float(spec.default)) for spec in limits}
        return {spec.name: np.full(n, np.nan) for spec in limits}


def operator_hygiene(value: FloatArray, spec: LimitSpec) -> FloatArray:
    """Round up to 2 significant digits and clamp to the catalogue's min/max (NaN stays)."""
    rounded = round_readable(
        value,
        np.full(value.shape, np.nan),  # no value is "the current one": round them all
        digits=2,
        minimum=spec.min_value,
        maximum=spec.max_value,
        integer=spec.type is not LimitType.RATE,
    )
    clipped: FloatArray = np.where(
        np.isfinite(rounded), np.clip(rounded, spec.min_value, spec.max_value), np.nan
    )
    return clipped


GO_FORMULA = WindowStatistic(
    name="p95x1.2",
    description="p95 × 1.2 over 48 h (the original Go optimizer's formula)",
    window=48 * HOUR,
    percentile_rate=95.0,
    percentile_count=95.0,
    factor_rate=1.2,
    factor_count=1.2,
)
KRR = WindowStatistic(
    name="krr",
    description="KRR-like: p95 x 1.15 (rates), max x 1.15 (series) over 14d",
    window=14 * DAY,
    percentile_rate=95.0,
    percentile_count=100.0,
    factor_rate=1.15,
    factor_count=1.15,
    min_points=100,
)
MIMIR_DEFAULTS = Fixed("mimir-defaults", "Mimir's static defaults (catalogue)", use_defaults=True)
KEEP_CURRENT = Fixed("keep-current", "keep the limits in force", use_defaults=False)


def default_strategies(config: Config, catalogue: Catalogue) -> list[Strategy]:
    """Ours first, then the baselines, in the order reports show them."""
    return [Ours(config, catalogue), GO_FORMULA, KRR, MIMIR_DEFAULTS, KEEP_CURRENT]


def by_name(strategies: Sequence[Strategy]) -> Mapping[str, Strategy]:
    return {s.name: s for s in strategies}


__all__ = [
    "GO_FORMULA",
    "KEEP_CURRENT",
    "KRR",
    "MIMIR_DEFAULTS",
    "Fixed",
    "Ours",
    "OursSession",
    "Remembers",
    "Session",
    "Strategy",
    "WindowStatistic",
    "by_name",
    "default_strategies",
    "operator_hygiene",
]
