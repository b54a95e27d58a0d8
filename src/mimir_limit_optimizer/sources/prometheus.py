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
from types import MappingProxyType

import httpx
import numpy as np

from mimir_limit_optimizer.catalogue import LimitSpec
from mimir_limit_optimizer.config.models import PrometheusSettings
from mimir_limit_optimizer.engine.usage import FloatArray, Observation
from mimir_limit_optimizer.sources.base import ProgressCallback, SourceError
from mimir_limit_optimizer.sources.prom_concurrency import Clock, ConcurrencyLimit
from mimir_limit_optimizer.sources.prom_decode import DecodedMatrix
from mimir_limit_optimizer.sources.prom_http import PromConnection, PromHTTP
from mimir_limit_optimizer.sources.prom_observation import (
    METRIC_DEFAULTS,
    METRIC_OVERRIDES,
    LimitsInForce,
    Signal,
    assemble_observation,
    place_chunk,
)
from mimir_limit_optimizer.sources.promql import TemplateRenderer
from mimir_limit_optimizer.sources.usage_fallback import FALLBACK_KIND

__all__ = [
    "MAX_POINTS_PER_QUERY",
    "PrometheusSource",
    "time_grid",
]

# Prometheus refuses range queries returning more than 11,000 points per series.
MAX_POINTS_PER_QUERY = 11_000

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


class PrometheusSource:
    """A `Source` reading a Prometheus-compatible query API (Prometheus, or Mimir with
    `path_prefix: /prometheus` and `tenant`).

    Every dependency is injected: `transport` (httpx.MockTransport in tests), `env` (where
    `bearerTokenEnv`/`passwordEnv` are looked up), `sleep` (backoff waits), `rng` (jitter),
    `clock` (monotonic seconds, for the throughput the concurrency adapts to).
    After `collect`, `last_skipped_tenants` maps each dropped tenant ID to the reason Mimir
    would reject it, and `last_concurrency` lists the requests-in-flight levels it went
    through, in order. `kept_concurrency` is the level the next `collect` starts at (and
    checks against the levels below: prom_concurrency.py); each collection sets it to what
    it learned; None: start at one. Passing it to a new source carries it across objects.
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
        kept_concurrency: int | None = None,
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
        self.kept_concurrency = kept_concurrency

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
        current = LimitsInForce()

        def finished(label: str) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total, label)

        # Requests at the server: adaptive up to maxConcurrency (prom_concurrency.py), from
        # the level the last collection learned (checked against lower ones); a retryable
        # failure halves them, so a struggling server sees fewer while it struggles. A
        # request holds its place until its body has arrived, not while it is decoded, so
        # the server evaluates the next one meanwhile.
        limit = ConcurrencyLimit(
            self._settings.max_concurrency,
            adaptive=self._settings.adaptive_concurrency,
            clock=self._clock,
            period=len(signals),
            start=self.kept_concurrency,
            logger=self._log,
        )
        # Memory: responses held at once (at the server, received or being decoded) are at
        # most maxConcurrency + 1, whatever the number of chunks.
        held = asyncio.Semaphore(self._settings.max_concurrency + 1)

        async def fetch(conn: PromConnection, signal: Signal, number: int) -> None:
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
        finally:
            # Failed or not: what the server showed (halvings included) is the next start.
            self.kept_concurrency = limit.learned

        observation, self.last_skipped_tenants = assemble_observation(
            limits, grid, signals, current, step=step, shown=self._http.shown, log=self._log
        )
        return observation

    def _signals(self, limits: Sequence[LimitSpec], points: int) -> dict[str, Signal]:
        """Distinct rendered queries, in the order limits first need them."""
        signals: dict[str, Signal] = {}
        for spec in limits:
            for kind, template in (
                ("usage", spec.usage_query),
                ("discards", spec.discard_query),
                (FALLBACK_KIND, spec.usage_fallback_query),
            ):
                if not template:
                    continue
                query = self._render.render(template, what=f"{kind} query of {spec.name}")
                signals.setdefault(query, Signal(query, points)).uses.append((spec.name, kind))
        return signals

    def _place(
        self, signal: Signal, matrix: DecodedMatrix, grid: FloatArray, first: int, last: int
    ) -> None:
        """Write one chunk's samples into the signal's array (prom_observation.py)."""
        place_chunk(
            signal,
            matrix,
            grid,
            first,
            last,
            step=self._settings.step,
            url=self._http.shown + "/api/v1/query_range",
            log=self._log,
        )

    async def _current(
        self, conn: PromConnection, metric: str, current: LimitsInForce, at: float
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
