"""Usage from a real Prometheus or Mimir, through the Prometheus HTTP query API.

One range query per distinct signal for ALL tenants (the templates aggregate `by (user)`),
split into step-aligned chunks that run concurrently (as many at once as the server shows it
can take, prom_concurrency.py; decoded in a worker thread); two instant queries for the limits in
force (Mimir's overrides-exporter metrics). The load on the server grows with the number of
enabled signals and the window, never with the number of tenants. Nothing past this module
sees JSON or PromQL: the result is an `Observation` of (tenants x time) arrays.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import httpx
import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.catalogue import LimitSpec
from mimir_limit_optimizer.config.models import PrometheusSettings
from mimir_limit_optimizer.engine.tenants import tenant_id_problem
from mimir_limit_optimizer.engine.usage import AnyFloatArray, FloatArray, Observation
from mimir_limit_optimizer.engine.validity import screen
from mimir_limit_optimizer.sources.base import (
    PermanentSourceError,
    ProgressCallback,
    RetryableSourceError,
    SourceError,
)
from mimir_limit_optimizer.sources.prom_concurrency import Clock, ConcurrencyLimit
from mimir_limit_optimizer.sources.prom_decode import DecodedMatrix
from mimir_limit_optimizer.sources.prom_http import PromConnection, PromHTTP
from mimir_limit_optimizer.sources.promql import TemplateRenderer
from mimir_limit_optimizer.sources.usage_fallback import FALLBACK_KIND, apply_fallbacks

__all__ = [
    "MAX_POINTS_PER_QUERY",
    "ORIGIN_DEFAULTS",
    "ORIGIN_OVERRIDES",
    "PrometheusSource",
    "time_grid",
]

# Prometheus refuses range queries returning more than 11,000 points per series.
MAX_POINTS_PER_QUERY = 11_000
# The overrides exporter's metrics, and the `current_origin` texts of their values (see
# engine/current.py); "" where the limit in force is unknown (NaN).
METRIC_OVERRIDES = "cortex_limits_overrides"
METRIC_DEFAULTS = "cortex_limits_defaults"
ORIGIN_OVERRIDES = f"tenant override ({METRIC_OVERRIDES})"
ORIGIN_DEFAULTS = f"cluster default ({METRIC_DEFAULTS})"

# Timestamps within this many seconds of a grid point belong to it (the API has ms precision).
_GRID_TOLERANCE = 0.001

_NO_ENV: Mapping[str, str] = MappingProxyType({})


def time_grid(start: float, end: float, step: float) -> FloatArray:
    """Multiples of `step` within [start, end] (unix seconds).

    Epoch-aligned points make successive cycles line up and let Mimir's query-frontend
    cache the results (it caches step-aligned queries only)."""
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise ValueError(f"invalid window: start={start}, end={end} (need start <= end)")
    if step <= 0:
        raise ValueError(f"step must be > 0 seconds, got {step}")
    first = math.ceil(start / step - 1e-9)
    last = math.floor(end / step + 1e-9)
    if last < first:
        raise ValueError(
            f"window [{start}, {end}] contains no multiple of step={step}s; widen the window"
        )
    return np.arange(first, last + 1, dtype=np.float64) * step


def chunk_bounds(points: int, per_chunk: int) -> list[tuple[int, int]]:
    """Split grid indexes 0..points-1 into consecutive inclusive ranges of `per_chunk`."""
    return [(i, min(i + per_chunk, points) - 1) for i in range(0, points, per_chunk)]


class _Rows:
    """A signal's (tenants x grid) float32 array, filled chunk by chunk as responses arrive:
    memory is this array plus the chunk being decoded. Grows by doubling as new tenants
    appear (row order = first seen; `_assemble` reorders once)."""

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
class _Signal:
    """One distinct rendered query and the limits that read it."""

    query: str
    points: int
    uses: list[tuple[str, str]] = field(default_factory=list)  # (limit, "usage"|"discards")
    rows: _Rows = field(init=False)
    error: SourceError | None = None

    def __post_init__(self) -> None:
        self.rows = _Rows(self.points)

    @property
    def label(self) -> str:
        return ", ".join(f"{kind} of {limit}" for limit, kind in self.uses)


@dataclass
class _Current:
    """Result of the two instant queries: limit -> tenant -> value, limit -> default."""

    overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    defaults: dict[str, float] = field(default_factory=dict)
    errors: list[SourceError] = field(default_factory=list)


class PrometheusSource:
    """A `Source` reading a Prometheus-compatible query API (Prometheus, or Mimir with
    `path_prefix: /prometheus` and `tenant`).

    Every dependency is injected: `transport` (httpx.MockTransport in tests), `env` (where
    `bearerTokenEnv`/`passwordEnv` are looked up), `sleep` (backoff waits), `rng` (jitter),
    `clock` (monotonic seconds, for the throughput the concurrency adapts to).
    After `collect`, `last_skipped_tenants` maps each dropped tenant ID to the reason Mimir
    would reject it, and `last_concurrency` lists the requests-in-flight levels it went
    through, in order.
    """

    def __init__(
        self,
        settings: PrometheusSettings,
        *,
        replication_factor: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        env: Mapping[str, str] = _NO_ENV,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._log = logger or logging.getLogger(__name__)
        self._http = PromHTTP(
            settings,
            transport=transport,
            env=env,
            sleep=sleep,
            rng=rng or random.Random(),
            logger=self._log,
        )
        self._render = TemplateRenderer(
            settings.selectors,
            rate_interval=settings.rate_interval,
            replication_factor=replication_factor,
        )
        self.last_skipped_tenants: dict[str, str] = {}
        self.last_concurrency: list[int] = []

    def describe(self) -> str:
        tenant = self._settings.tenant
        return f"prometheus {self._http.shown}" + (f" (X-Scope-OrgID: {tenant})" if tenant else "")

    @property
    def points_per_chunk(self) -> int:
        """Grid points per range request: chunk_length / step, at most 11,000."""
        per_chunk = math.floor(self._settings.chunk_length / self._settings.step + 1e-9)
        return max(1, min(MAX_POINTS_PER_QUERY, per_chunk))

    def planned_requests(
        self, limits: Sequence[LimitSpec], *, start: float, end: float
    ) -> tuple[list[tuple[str, float, float, float]], list[tuple[str, float]]]:
        """The requests `collect` sends for these limits and window, besides its reachability
        probe: range queries as (query, start, end, step) and instant queries as (query,
        time). For benchmarks that time the same requests another way."""
        step = self._settings.step
        grid = time_grid(start, end, step)
        chunks = chunk_bounds(len(grid), self.points_per_chunk)
        ranges = [
            (query, float(grid[first]), float(grid[last]), step)
            for query in self._signals(limits, len(grid))
            for first, last in chunks
        ]
        instants = [(self._current_query(m), end) for m in (METRIC_OVERRIDES, METRIC_DEFAULTS)]
        return ranges, instants

    def collect(
        self,
        limits: Sequence[LimitSpec],
        *,
        start: float,
        end: float,
        progress: ProgressCallback | None = None,
    ) -> Observation:
        """Run the event loop for one collection; use `collect_async` inside a running loop."""
        return asyncio.run(self.collect_async(limits, start=start, end=end, progress=progress))

    async def collect_async(
        self,
        limits: Sequence[LimitSpec],
        *,
        start: float,
        end: float,
        progress: ProgressCallback | None = None,
    ) -> Observation:
        step = self._settings.step
        grid = time_grid(start, end, step)
        signals = self._signals(limits, len(grid))
        chunks = chunk_bounds(len(grid), self.points_per_chunk)
        total = len(signals) * len(chunks) + 2
        done = 0
        current = _Current()

        def finished(label: str) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total, label)

        # Requests at the server: adaptive up to maxConcurrency (prom_concurrency.py); a
        # retryable failure halves them, so a struggling server sees fewer while it
        # struggles. A request holds its place until its body has arrived, not while it is
        # decoded, so the server evaluates the next one meanwhile.
        limit = ConcurrencyLimit(
            self._settings.max_concurrency,
            adaptive=self._settings.adaptive_concurrency,
            clock=self._clock,
            period=len(signals),
            logger=self._log,
        )
        # Memory: responses held at once (at the server, received or being decoded) are at
        # most maxConcurrency + 1, whatever the number of chunks.
        held = asyncio.Semaphore(self._settings.max_concurrency + 1)

        async def fetch(conn: PromConnection, signal: _Signal, number: int) -> None:
            first, last = chunks[number]
            async with held:
                if signal.error is None:
                    try:
                        # A signal that already failed sends none of its remaining chunks.
                        matrix = await conn.query_range_matrix(
                            signal.query,
                            grid[first],
                            grid[last],
                            step,
                            wanted=lambda: signal.error is None,
                            # One kind for all: every measurement sees the same mix.
                            measure_as="range",
                        )
                        if matrix is not None:
                            self._place(signal, matrix, grid, first, last)
                    except SourceError as exc:
                        signal.error = signal.error or exc
            finished(f"{signal.label} [{number + 1}/{len(chunks)}]")

        async def fetch_current(conn: PromConnection, metric: str) -> None:
            async with held:
                await self._current(conn, metric, current, end)
            finished(f"current limits ({metric})")

        self.last_concurrency = limit.levels
        try:
            async with (
                self._http.connect(limit, decode_in_thread=True) as conn,
                asyncio.TaskGroup() as group,
            ):
                # One cheap query first: an unreachable or misconfigured server fails here,
                # once (with its retries), instead of once per signal and chunk.
                await conn.query("vector(1)", end)
                # The limits in force first: reading their series (one per tenant and limit)
                # then overlaps the evaluation of the range queries instead of following it.
                group.create_task(fetch_current(conn, METRIC_OVERRIDES))
                group.create_task(fetch_current(conn, METRIC_DEFAULTS))
                # Chunk by chunk, one of each query in turn: any run of len(signals)
                # requests has the same mix of queries, so the concurrency limit compares
                # like with like even when each query has only a few chunks.
                for number in range(len(chunks)):
                    for signal in signals.values():
                        group.create_task(fetch(conn, signal, number))
        except ExceptionGroup as group_error:
            # Source errors are handled per task; anything here is a bug or a failing
            # progress callback: surface it as itself, not wrapped in a group.
            if len(group_error.exceptions) == 1:
                raise group_error.exceptions[0] from None
            raise

        return self._assemble(limits, grid, signals, current)

    def _signals(self, limits: Sequence[LimitSpec], points: int) -> dict[str, _Signal]:
        """Distinct rendered queries, in the order limits first need them."""
        signals: dict[str, _Signal] = {}
        for spec in limits:
            for kind, template in (
                ("usage", spec.usage_query),
                ("discards", spec.discard_query),
                (FALLBACK_KIND, spec.usage_fallback_query),
            ):
                if not template:
                    continue
                query = self._render.render(template, what=f"{kind} query of {spec.name}")
                signals.setdefault(query, _Signal(query, points)).uses.append((spec.name, kind))
        return signals

    def _place(
        self, signal: _Signal, matrix: DecodedMatrix, grid: FloatArray, first: int, last: int
    ) -> None:
        """Write one chunk's samples into the signal's array, all series at once."""
        step = self._settings.step
        tenants: list[str] = []
        keep: list[int] = []
        for i, labels in enumerate(matrix.labels):
            tenant = labels.get("user")
            if tenant is None:
                # Series of components without a tenant: not anyone's usage.
                self._log.debug("ignoring a series without a `user` label: %s", labels)
                continue
            tenants.append(tenant)
            keep.append(i)
        if len(set(tenants)) != len(tenants):
            twice = next(t for t in tenants if tenants.count(t) > 1)
            raise PermanentSourceError(
                f"the query returned more than one series for tenant {twice!r}; "
                "its template must aggregate `by (user)`",
                url=self._http.shown + "/api/v1/query_range",
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
        on_grid = inside & (
            np.abs(grid[np.clip(index, 0, len(grid) - 1)] - stamps) <= _GRID_TOLERANCE
        )
        signal.rows.data[row[on_grid], index[on_grid]] = values[on_grid]

    async def _current(
        self, conn: PromConnection, metric: str, current: _Current, at: float
    ) -> None:
        """Limits in force from one overrides-exporter metric (durations in seconds, bools
        1/0, as the exporter writes them); a missing metric leaves NaN."""
        is_override = metric == METRIC_OVERRIDES
        try:
            result = await conn.query(self._current_query(metric), at)
        except SourceError as exc:
            current.errors.append(exc)
            self._log.warning("current limits unknown (NaN): %s", exc)
            return
        for item in result:
            name = item.labels.get("limit_name")
            if name is None or len(item.values) == 0:
                continue
            value = float(item.values[0])
            if not is_override:
                current.defaults[name] = value
            elif (tenant := item.labels.get("user")) is not None:
                current.overrides.setdefault(name, {})[tenant] = value

    def _current_query(self, metric: str) -> str:
        by = "user, limit_name" if metric == METRIC_OVERRIDES else "limit_name"
        # last_over_time: a scrape gap (or data that ends a few minutes before `at`) must not
        # turn known limits into "unknown"; 15m is short enough that a removed override
        # stops counting soon after the exporter drops its series.
        return f"max by ({by}) (last_over_time({self._render.selector(metric)}[15m]))"

    def _assemble(
        self,
        limits: Sequence[LimitSpec],
        grid: FloatArray,
        signals: Mapping[str, _Signal],
        current: _Current,
    ) -> Observation:
        failed = [s for s in signals.values() if s.error is not None]
        if signals and len(failed) == len(signals):
            # No usage at all: a failed collection even when the instant queries answered.
            self._raise_all_failed([s.error for s in failed if s.error] + current.errors)

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
            self._log.warning(
                "dropped %d tenant IDs Mimir would reject: %s", len(skipped), sorted(skipped)
            )
        self.last_skipped_tenants = skipped

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
            signal.rows = _Rows(0)  # the chunks' array is no longer needed
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

        return screen(
            Observation(
                tenants=tuple(tenants),
                timestamps=grid,
                step=self._settings.step,
                usage=usage,
                discards=discards,
                current=in_force,
                unavailable={limit: "; ".join(texts) for limit, texts in reasons.items()},
                current_origin=origins,
                usage_fallback=filled,
            )
        )  # invalid values dropped, their tenants marked incomplete (engine/validity.py)

    def _raise_all_failed(self, errors: Sequence[SourceError]) -> None:
        """Nothing at all could be read: one error, retryable if any failure was."""
        kind: type[SourceError] = (
            RetryableSourceError if any(e.retryable for e in errors) else PermanentSourceError
        )
        raise kind(
            f"all {len(errors)} queries to {self._http.shown} failed; first failure: {errors[0]}"
        ) from errors[0]
