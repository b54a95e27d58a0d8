"""What protection remembers between ticks: plain data that a checkpoint round-trips
(`to_json` / `from_json`).

Arrays are aligned to `ProtectionState.tenants` (numpy, float64, NaN = unknown); clamps are
sparse (a few tenants at a time) and kept in a dict keyed by (tenant, limit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.engine.protection.model import BASELINES, KINDS, Level
from mimir_limit_optimizer.engine.usage import FloatArray

IntArray = npt.NDArray[np.int64]

STATE_VERSION = 1


@dataclass
class Clamp:
    """A protective cap on one tenant x limit.

    `target` is the value in force before the first cap (0 may mean unlimited): recovery
    returns there. `breaker` / `emergency` are the active caps of each source (None: that
    source holds no cap); the desired value is the lower of them, or `target` once both are
    gone (the entry is then dropped once restored). `written` is the last value the
    controller wrote to the target, `reported` the last "would" value reported in dry-run.
    """

    target: float
    since: float
    breaker: float | None = None
    emergency: float | None = None
    start: dict[str, float] = field(default_factory=dict)  # source -> cap when recovery began
    steps: dict[str, int] = field(default_factory=dict)  # source -> recovery steps taken
    written: float | None = None
    reported: float | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.breaker is not None or self.emergency is not None

    def desired(self) -> float:
        caps = [v for v in (self.breaker, self.emergency) if v is not None]
        return min(caps) if caps else self.target

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "since": self.since,
            "breaker": self.breaker,
            "emergency": self.emergency,
            "start": dict(self.start),
            "steps": dict(self.steps),
            "written": self.written,
            "reported": self.reported,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Clamp:
        return cls(
            target=float(data["target"]),
            since=float(data["since"]),
            breaker=_opt(data.get("breaker")),
            emergency=_opt(data.get("emergency")),
            start={str(k): float(v) for k, v in (data.get("start") or {}).items()},
            steps={str(k): int(v) for k, v in (data.get("steps") or {}).items()},
            written=_opt(data.get("written")),
            reported=_opt(data.get("reported")),
            reasons=[str(r) for r in data.get("reasons") or []],
        )


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass
class BreakerTable:
    """The breakers of one kind, one row per tenant."""

    state: npt.NDArray[np.int8]
    breach_since: FloatArray  # NaN: not breaching
    opened_at: FloatArray  # last time it (re)opened; NaN when closed
    step_at: FloatArray  # last recovery step (HALF-OPEN)
    relapses: IntArray

    @classmethod
    def empty(cls, n: int) -> BreakerTable:
        return cls(
            state=np.zeros(n, dtype=np.int8),
            breach_since=np.full(n, np.nan),
            opened_at=np.full(n, np.nan),
            step_at=np.full(n, np.nan),
            relapses=np.zeros(n, dtype=np.int64),
        )


_BREAKER_FIELDS = ("state", "breach_since", "opened_at", "step_at", "relapses")


@dataclass
class PressureState:
    """The emergency level machine."""

    # resource -> level name -> first time of the current uninterrupted run above it
    above_since: dict[str, dict[str, float]] = field(default_factory=dict)
    level: int = int(Level.NORMAL)
    level_since: float = math.nan
    peak: int = int(Level.NORMAL)  # highest level of the current incident
    last_action_at: float = math.nan
    stable_since: float = math.nan  # recovery conditions hold since
    last_step_at: float = math.nan
    down_since: float = math.nan
    reload_since: float = math.nan
    last: dict[str, float] = field(default_factory=dict)  # last pressure values (status)

    def to_json(self) -> dict[str, Any]:
        return {
            "above_since": {
                r: {k: _num(v) for k, v in d.items()} for r, d in self.above_since.items()
            },
            "level": self.level,
            "level_since": _num(self.level_since),
            "peak": self.peak,
            "last_action_at": _num(self.last_action_at),
            "stable_since": _num(self.stable_since),
            "last_step_at": _num(self.last_step_at),
            "down_since": _num(self.down_since),
            "reload_since": _num(self.reload_since),
            "last": {k: _num(v) for k, v in self.last.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PressureState:
        return cls(
            above_since={
                str(r): {str(k): _float(v) for k, v in d.items()}
                for r, d in (data.get("above_since") or {}).items()
            },
            level=int(data.get("level", 0)),
            level_since=_float(data.get("level_since")),
            peak=int(data.get("peak", 0)),
            last_action_at=_float(data.get("last_action_at")),
            stable_since=_float(data.get("stable_since")),
            last_step_at=_float(data.get("last_step_at")),
            down_since=_float(data.get("down_since")),
            reload_since=_float(data.get("reload_since")),
            last={str(k): _float(v) for k, v in (data.get("last") or {}).items()},
        )


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _array_json(array: npt.NDArray[Any]) -> list[Any]:
    if array.dtype.kind == "f":
        return [v if math.isfinite(v) else None for v in array.tolist()]
    return list(array.tolist())


def _array(values: list[Any], dtype: Any) -> npt.NDArray[Any]:
    if np.dtype(dtype).kind == "f":
        return np.array([math.nan if v is None else v for v in values], dtype=dtype)
    return np.array(values, dtype=dtype)


@dataclass
class ProtectionState:
    """Everything protection remembers between ticks. `to_json` / `from_json` round-trip
    it, except the samples of the adaptation cycle in progress (a restart begins a new
    cycle)."""

    tenants: list[str] = field(default_factory=list)
    breakers: dict[str, BreakerTable] = field(default_factory=dict)  # kind -> table
    baselines: dict[str, FloatArray] = field(default_factory=dict)  # BASELINES -> (N,)
    last_seen: FloatArray = field(default_factory=lambda: np.zeros(0))
    adapt_at: float = math.nan
    samples: dict[str, list[FloatArray]] = field(default_factory=dict)  # not persisted
    global_since: dict[str, float] = field(default_factory=dict)  # detector -> breach since
    pressure: PressureState = field(default_factory=PressureState)
    clamps: dict[tuple[str, str], Clamp] = field(default_factory=dict)
    last_tick: float = math.nan

    def __post_init__(self) -> None:
        n = len(self.tenants)
        for kind in KINDS:
            self.breakers.setdefault(kind.value, BreakerTable.empty(n))
        for name in BASELINES:
            self.baselines.setdefault(name, np.full(n, np.nan))
        if self.last_seen.shape != (n,):
            self.last_seen = np.full(n, np.nan)

    @property
    def has_baselines(self) -> bool:
        return any(np.isfinite(b).any() for b in self.baselines.values())

    def index(self) -> dict[str, int]:
        return {tenant: i for i, tenant in enumerate(self.tenants)}

    def align(self, tenants: list[str]) -> None:
        """Re-index every per-tenant array to `tenants` (new rows start empty)."""
        if tenants == self.tenants:
            return
        old = self.index()
        rows = np.array([old.get(t, -1) for t in tenants], dtype=np.int64)
        present = rows >= 0
        n = len(tenants)

        def moved(array: npt.NDArray[Any], fill: Any) -> npt.NDArray[Any]:
            out = np.full(n, fill, dtype=array.dtype)
            out[present] = array[rows[present]]
            return out

        for table in self.breakers.values():
            table.state = moved(table.state, 0)
            table.breach_since = moved(table.breach_since, np.nan)
            table.opened_at = moved(table.opened_at, np.nan)
            table.step_at = moved(table.step_at, np.nan)
            table.relapses = moved(table.relapses, 0)
        for name, values in self.baselines.items():
            self.baselines[name] = moved(values, np.nan)
        self.last_seen = moved(self.last_seen, np.nan)
        self.samples = {
            name: [moved(sample, np.nan) for sample in batch]
            for name, batch in self.samples.items()
        }
        self.tenants = list(tenants)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "tenants": list(self.tenants),
            "breakers": {
                kind: {name: _array_json(getattr(table, name)) for name in _BREAKER_FIELDS}
                for kind, table in self.breakers.items()
            },
            "baselines": {name: _array_json(v) for name, v in self.baselines.items()},
            "last_seen": _array_json(self.last_seen),
            "adapt_at": _num(self.adapt_at),
            "global_since": {k: _num(v) for k, v in self.global_since.items()},
            "pressure": self.pressure.to_json(),
            "clamps": [
                {"tenant": tenant, "limit": limit, **clamp.to_json()}
                for (tenant, limit), clamp in sorted(self.clamps.items())
            ],
            "last_tick": _num(self.last_tick),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProtectionState:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"protection state version {data.get('version')!r} is not supported")
        tenants = [str(t) for t in data["tenants"]]
        dtypes = {
            "state": np.int8,
            "breach_since": np.float64,
            "opened_at": np.float64,
            "step_at": np.float64,
            "relapses": np.int64,
        }
        breakers = {
            str(kind): BreakerTable(
                **{name: _array(list(fields[name]), dtypes[name]) for name in _BREAKER_FIELDS}
            )
            for kind, fields in (data.get("breakers") or {}).items()
        }
        clamps = {
            (str(item["tenant"]), str(item["limit"])): Clamp.from_json(item)
            for item in data.get("clamps") or []
        }
        return cls(
            tenants=tenants,
            breakers=breakers,
            baselines={
                str(k): _array(list(v), np.float64)
                for k, v in (data.get("baselines") or {}).items()
            },
            last_seen=_array(list(data.get("last_seen") or []), np.float64),
            adapt_at=_float(data.get("adapt_at")),
            global_since={str(k): _float(v) for k, v in (data.get("global_since") or {}).items()},
            pressure=PressureState.from_json(data.get("pressure") or {}),
            clamps=clamps,
            last_tick=_float(data.get("last_tick")),
        )
