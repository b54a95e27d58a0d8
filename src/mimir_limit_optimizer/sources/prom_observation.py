"""From the Prometheus source's decoded responses to the engine's `Observation`.

Each distinct signal's (tenants x grid) array is filled chunk by chunk as the range
responses arrive (`place_chunk`); the two instant queries give the limits in force
(`LimitsInForce`); `assemble_observation` puts them together once every request has
finished: tenant IDs Mimir would reject dropped, usage fallbacks applied, failed signals and
unknown limits in force turned into `unavailable` reasons, invalid values screened out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.catalogue import LimitSpec
from mimir_limit_optimizer.engine.tenants import tenant_id_problem
from mimir_limit_optimizer.engine.usage import AnyFloatArray, FloatArray, Observation
from mimir_limit_optimizer.engine.validity import screen
from mimir_limit_optimizer.sources.base import (
    PermanentSourceError,
    RetryableSourceError,
    SourceError,
)
from mimir_limit_optimizer.sources.prom_decode import DecodedMatrix
from mimir_limit_optimizer.sources.usage_fallback import FALLBACK_KIND, apply_fallbacks

__all__ = [
    "METRIC_DEFAULTS",
    "METRIC_OVERRIDES",
    "ORIGIN_DEFAULTS",
    "ORIGIN_OVERRIDES",
    "LimitsInForce",
    "Signal",
    "SignalRows",
    "assemble_observation",
    "place_chunk",
]

# The overrides exporter's metrics, and the `current_origin` texts of their values (see
# engine/current.py); "" where the limit in force is unknown (NaN).
METRIC_OVERRIDES = "cortex_limits_overrides"
METRIC_DEFAULTS = "cortex_limits_defaults"
ORIGIN_OVERRIDES = f"tenant override ({METRIC_OVERRIDES})"
ORIGIN_DEFAULTS = f"cluster default ({METRIC_DEFAULTS})"

# Timestamps within this many seconds of a grid point belong to it (the API has ms precision).
_GRID_TOLERANCE = 0.001


class SignalRows:
    """A signal's (tenants x grid) float32 array, filled chunk by chunk as responses arrive:
    memory is this array plus the chunk being decoded. Grows by doubling as new tenants
    appear (row order = first seen; `assemble_observation` reorders once)."""

    def __init__(self, points: int) -> None:
        self.index: dict[str, int] = {}
        self.data = np.full((0, points), np.nan, dtype=np.float32)

    def rows_of(self, tenants: Sequence[str]) -> npt.NDArray[np.int64]:
        index = self.index
        for tenant in tenants:
            index.setdefault(tenant, len(index))
        if len(index) > len(self.data):
            grown = np.full((max(len(index), 2 * len(self.data)), self.data.shape[1]), np.nan,
                            dtype=np.float32)  # fmt: skip
            grown[: len(self.data)] = self.data
            self.data = grown
        return np.fromiter((index[t] for t in tenants), dtype=np.int64, count=len(tenants))

    def take(self, order: Sequence[str], points: int) -> npt.NDArray[np.float32]:
        """(len(order), points) rows in `order`; NaN for tenants this signal never saw."""
        out = np.full((len(order), points), np.nan, dtype=np.float32)
        mine = [(i, self.index[t]) for i, t in enumerate(order) if t in self.index]
        if mine:
            to, frm = np.array(mine, dtype=np.int64).T
            out[to] = self.data[frm]
        return out


@dataclass
class Signal:
    """One distinct rendered query and the limits that read it."""

    query: str
    points: int
    uses: list[tuple[str, str]] = field(default_factory=list)  # (limit, "usage"|"discards")
    rows: SignalRows = field(init=False)
    error: SourceError | None = None

    def __post_init__(self) -> None:
        self.rows = SignalRows(self.points)

    @property
    def label(self) -> str:
        return ", ".join(f"{kind} of {limit}" for limit, kind in self.uses)


@dataclass
class LimitsInForce:
    """Result of the two instant queries: limit -> tenant -> value, limit -> default."""

    overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    defaults: dict[str, float] = field(default_factory=dict)
    errors: list[SourceError] = field(default_factory=list)


def place_chunk(
    signal: Signal,
    matrix: DecodedMatrix,
    grid: FloatArray,
    first: int,
    last: int,
    *,
    step: float,
    url: str,
    log: logging.Logger,
) -> None:
    """Write one chunk's samples into the signal's array, all series at once. `url`: the
    (redacted) endpoint named by the error when the query does not aggregate by tenant."""
    tenants: list[str] = []
    keep: list[int] = []
    for i, labels in enumerate(matrix.labels):
        tenant = labels.get("user")
        if tenant is None:
            # Series of components without a tenant: not anyone's usage.
            log.debug("ignoring a series without a `user` label: %s", labels)
            continue
        tenants.append(tenant)
        keep.append(i)
    if len(set(tenants)) != len(tenants):
        twice = next(t for t in tenants if tenants.count(t) > 1)
        raise PermanentSourceError(
            f"the query returned more than one series for tenant {twice!r}; "
            "its template must aggregate `by (user)`",
            url=url,
            query=signal.query,
        )
    if not tenants:
        return
    rows = signal.rows.rows_of(tenants)
    lo, hi = matrix.offsets[:-1][keep], matrix.offsets[1:][keep]
    counts = hi - lo
    # Sample positions of the kept series, and the row each sample goes to.
    picks = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    picks += np.arange(int(counts.sum()))
    row = np.repeat(rows, counts)
    stamps, values = matrix.timestamps[picks], matrix.values[picks]
    index = np.rint((stamps - grid[0]) / step).astype(np.int64)
    inside = (index >= first) & (index <= last)
    on_grid = inside & (np.abs(grid[np.clip(index, 0, len(grid) - 1)] - stamps) <= _GRID_TOLERANCE)
    signal.rows.data[row[on_grid], index[on_grid]] = values[on_grid]


def assemble_observation(
    limits: Sequence[LimitSpec],
    grid: FloatArray,
    signals: Mapping[str, Signal],
    current: LimitsInForce,
    *,
    step: float,
    shown: str,
    log: logging.Logger,
) -> tuple[Observation, dict[str, str]]:
    """The collection's `Observation`, and the tenant IDs dropped (ID -> the reason Mimir
    would reject it). `shown`: the redacted server URL, for the error when nothing could be
    read."""
    failed = [s for s in signals.values() if s.error is not None]
    if signals and len(failed) == len(signals):
        # No usage at all: a failed collection even when the instant queries answered.
        _raise_all_failed([s.error for s in failed if s.error] + current.errors, shown)

    seen: set[str] = set()
    for signal in signals.values():
        if signal.error is None:
            seen.update(signal.rows.index)
    for by_tenant in current.overrides.values():
        seen.update(by_tenant)
    skipped: dict[str, str] = {}
    tenants: list[str] = []
    for tenant in sorted(seen):
        problem = tenant_id_problem(tenant)
        if problem is None:
            tenants.append(tenant)
        else:
            skipped[tenant] = f"{problem}; dropped from the observation"
    if skipped:
        log.warning("dropped %d tenant IDs Mimir would reject: %s", len(skipped), sorted(skipped))

    arrays: dict[str, AnyFloatArray] = {}
    usage: dict[str, AnyFloatArray] = {}
    discards: dict[str, AnyFloatArray] = {}
    fallbacks: dict[str, AnyFloatArray] = {}
    reasons: dict[str, list[str]] = {}
    for signal in signals.values():
        if signal.error is not None:
            for limit, kind in signal.uses:
                if kind == FALLBACK_KIND:
                    continue  # only a stand-in: its failure leaves the gaps as they were
                reasons.setdefault(limit, []).append(f"{kind} query failed: {signal.error}")
            continue
        # float32: what the engine computes in, half the memory of float64.
        array = arrays[signal.query] = signal.rows.take(tenants, len(grid))
        signal.rows = SignalRows(0)  # the chunks' array is no longer needed
        for limit, kind in signal.uses:
            kinds = {"usage": usage, "discards": discards, FALLBACK_KIND: fallbacks}
            kinds[kind][limit] = array

    filled = apply_fallbacks(usage, fallbacks)
    if current.errors:
        # Without the limits in force every plan would start from a guess (the catalogue
        # default): the collection is partial for every limit, so nothing is applied.
        why = f"current limits unknown: {current.errors[0]}"
        for spec in limits:
            reasons.setdefault(spec.name, []).append(why)

    in_force: dict[str, FloatArray] = {}
    origins: dict[str, list[str]] = {}
    for spec in limits:
        values = np.full(len(tenants), np.nan)
        origin = [""] * len(tenants)
        default = current.defaults.get(spec.name)
        by_tenant = current.overrides.get(spec.name, {})
        for i, tenant in enumerate(tenants):
            if tenant in by_tenant:
                values[i], origin[i] = by_tenant[tenant], ORIGIN_OVERRIDES
            elif default is not None:
                values[i], origin[i] = default, ORIGIN_DEFAULTS
        in_force[spec.name] = values
        origins[spec.name] = origin

    observation = screen(
        Observation(
            tenants=tuple(tenants),
            timestamps=grid,
            step=step,
            usage=usage,
            discards=discards,
            current=in_force,
            unavailable={limit: "; ".join(texts) for limit, texts in reasons.items()},
            current_origin=origins,
            usage_fallback=filled,
        )
    )  # invalid values dropped, their tenants marked incomplete (engine/validity.py)
    return observation, skipped


def _raise_all_failed(errors: Sequence[SourceError], shown: str) -> None:
    """Nothing at all could be read: one error, retryable if any failure was."""
    kind: type[SourceError] = (
        RetryableSourceError if any(e.retryable for e in errors) else PermanentSourceError
    )
    raise kind(
        f"all {len(errors)} queries to {shown} failed; first failure: {errors[0]}"
    ) from errors[0]
