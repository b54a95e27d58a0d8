"""HTTP client for the Prometheus query API (Prometheus itself, or Mimir under a prefix).

Owns everything about the wire: form-encoded POSTs, retries with backoff and jitter, and
turning every failure into a `SourceError` that names the redacted URL and the failing query.
URL and credential handling (with redaction) is prom_credentials.py; responses are
classified and parsed by prom_response.py; turning series into the engine's arrays is the
caller's job.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

import httpx

from mimir_limit_optimizer.config.models import PrometheusSettings
from mimir_limit_optimizer.sources.base import (
    PermanentSourceError,
    RetryableSourceError,
)
from mimir_limit_optimizer.sources.prom_concurrency import ConcurrencyLimit, Slot
from mimir_limit_optimizer.sources.prom_credentials import SourceConfigError, client_setup
from mimir_limit_optimizer.sources.prom_decode import DecodedMatrix
from mimir_limit_optimizer.sources.prom_response import (
    UNWANTED,
    Failure,
    Series,
    Success,
    Unwanted,
    as_matrix,
    classify,
    parse_result,
)

# Backoff between attempts: BACKOFF_BASE * 2**attempt, capped, times a jitter in [0.5, 1].
BACKOFF_BASE = 1.0  # seconds
BACKOFF_CAP = 30.0  # seconds
# A Retry-After longer than this is not waited for: the cycle gives up on that query instead
# of stalling (the next cycle retries anyway).
MAX_RETRY_AFTER = 60.0  # seconds

Sleep = Callable[[float], Awaitable[None]]


def format_time(seconds: float) -> str:
    """Unix seconds as the API expects them: `1700000000` or `1700000000.5` (ms precision)."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


class PromHTTP:
    """The query API of one Prometheus/Mimir endpoint. Credentials are resolved (files read)
    at construction (prom_credentials.py), so a bad setting fails before the first cycle."""

    def __init__(
        self,
        settings: PrometheusSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        env: Mapping[str, str],
        sleep: Sleep,
        rng: random.Random,
        logger: logging.Logger,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self.sleep = sleep
        self.rng = rng
        self.log = logger
        self._setup = client_setup(settings, env)
        self.prefix = self._setup.prefix
        self.base = self._setup.base
        # Redacted base + prefix: the only form of the URL that appears in messages and logs.
        self.shown = self._setup.shown

    def scrub(self, text: str) -> str:
        """`text` with every known secret replaced (defence in depth for quoted bodies and
        library messages)."""
        return self._setup.scrub(text)

    @asynccontextmanager
    async def connect(
        self, limit: ConcurrencyLimit | None = None, *, decode_in_thread: bool = False
    ) -> AsyncIterator[PromConnection]:
        """An open connection pool for one collection. `limit` bounds the requests at the
        server (each attempt holds a place while it is sent and its body received, not while
        it is decoded or waits to retry); without it the caller bounds concurrency.
        `decode_in_thread`: responses are decoded in a worker thread, one at a time, so
        the event loop sends the next request while the last one is decoded."""
        async with httpx.AsyncClient(
            headers=self._setup.headers,
            auth=self._setup.auth,
            verify=self._setup.verify,
            timeout=httpx.Timeout(self.settings.timeout),
            transport=self._transport,
            follow_redirects=False,
        ) as client:
            yield PromConnection(self, client, limit, decode_in_thread=decode_in_thread)


class PromConnection:
    """Requests over one open client, each retried on its own."""

    def __init__(
        self,
        api: PromHTTP,
        client: httpx.AsyncClient,
        limit: ConcurrencyLimit | None = None,
        *,
        decode_in_thread: bool = False,
    ) -> None:
        self._api = api
        self._client = client
        self._limit = limit
        # One decode at a time: our share of the collection is one core at most, and a
        # response waiting here holds its body (memory: in flight + waiting + one).
        self._decoding = asyncio.Lock() if decode_in_thread else None

    def _place(self) -> AbstractAsyncContextManager[Slot | None]:
        return self._limit.slot() if self._limit is not None else nullcontext()

    async def _classify(self, response: httpx.Response) -> Success | Failure:
        if self._decoding is None or not 200 <= response.status_code < 300:
            # Error bodies are small, and classified before any other task runs: a chunk
            # waiting for this one's place sees its signal's failure and is not sent.
            return classify(response, self._api.scrub, self._api.log)
        async with self._decoding:
            return await asyncio.to_thread(classify, response, self._api.scrub, self._api.log)

    async def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        matrix = await self.query_range_matrix(query, start, end, step)
        if matrix is None:  # pragma: no cover (only when `wanted` says so)
            return []
        return [Series(matrix.labels[i], *matrix.series(i)) for i in range(len(matrix))]

    async def query_range_matrix(
        self,
        query: str,
        start: float,
        end: float,
        step: float,
        *,
        wanted: Callable[[], bool] | None = None,
        measure_as: Hashable = None,
    ) -> DecodedMatrix | None:
        """The result as one set of arrays for all series (no Python object per sample).
        None, with nothing sent, if `wanted()` is false once a place at the server is free
        (e.g. another chunk of the same query has failed meanwhile). `measure_as`: the kind
        of request the concurrency limit compares this one with (default: the query)."""
        form = {
            "query": query,
            "start": format_time(start),
            "end": format_time(end),
            "step": format_time(step),
        }
        kind = query if measure_as is None else measure_as
        data = await self._post("/api/v1/query_range", form, query, measure=kind, wanted=wanted)
        if isinstance(data, Unwanted):
            return None
        shown = self._api.shown + "/api/v1/query_range"
        if isinstance(data, dict) and isinstance(data.get("result"), DecodedMatrix):
            decoded: DecodedMatrix = data["result"]
            return decoded
        return as_matrix(parse_result(data, "matrix", shown, query))

    async def query(self, query: str, time: float) -> list[Series]:
        form = {"query": query, "time": format_time(time)}
        data = await self._post("/api/v1/query", form, query)
        return parse_result(data, "vector", self._api.shown + "/api/v1/query", query)

    async def _post(
        self,
        path: str,
        form: Mapping[str, str],
        query: str,
        *,
        measure: Hashable = None,
        wanted: Callable[[], bool] | None = None,
    ) -> Any:
        """`measure`: the kind of request under which the response's size counts in the
        concurrency limit's throughput (range queries); None: not counted (the few instant
        queries are too small to say anything)."""
        api = self._api
        url = api.base + path
        shown = api.shown + path
        attempts = api.settings.retries + 1
        for attempt in range(1, attempts + 1):
            sent = await self._attempt(url, form, query, shown, measure=measure, wanted=wanted)
            if isinstance(sent, Unwanted):
                return sent
            outcome = await self._classify(sent) if isinstance(sent, httpx.Response) else sent
            if not isinstance(outcome, Failure):
                return outcome.data
            failure = outcome
            if failure.retryable and self._limit is not None:
                self._limit.back_off()
            if not failure.retryable:
                raise PermanentSourceError(failure.reason, url=shown, query=query)
            if attempt == attempts:
                tries = f"; gave up after {attempts} attempts" if attempts > 1 else ""
                raise RetryableSourceError(failure.reason + tries, url=shown, query=query)
            if failure.wait is not None and failure.wait > MAX_RETRY_AFTER:
                raise RetryableSourceError(
                    f"{failure.reason}; the server asked to retry after {failure.wait:g}s, "
                    f"longer than the {MAX_RETRY_AFTER:g}s this source waits",
                    url=shown,
                    query=query,
                )
            delay = failure.wait if failure.wait is not None else self._backoff(attempt)
            api.log.info(
                "retrying %s in %.2fs (attempt %d of %d failed: %s); query: %s",
                shown,
                delay,
                attempt,
                attempts,
                failure.reason,
                query,
            )
            await api.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    async def _attempt(
        self,
        url: str,
        form: Mapping[str, str],
        query: str,
        shown: str,
        *,
        measure: Hashable,
        wanted: Callable[[], bool] | None,
    ) -> httpx.Response | Failure | Unwanted:
        """One request, holding a place at the server until its body has arrived."""
        api = self._api
        async with self._place() as place:
            if wanted is not None and not wanted():
                return UNWANTED
            try:
                response = await self._client.post(url, data=dict(form))
            except httpx.TimeoutException as exc:
                return Failure(
                    f"no answer within {api.settings.timeout:g}s ({type(exc).__name__}); "
                    "raise source.prometheus.timeout or shorten chunkLength",
                    retryable=True,
                )
            except httpx.UnsupportedProtocol as exc:
                raise SourceConfigError(
                    f"unsupported protocol: {api.scrub(str(exc))}", url=shown, query=query
                ) from exc
            except httpx.TransportError as exc:
                detail = api.scrub(str(exc)) or "no detail"
                return Failure(
                    f"cannot connect ({type(exc).__name__}: {detail}); "
                    "check that the server is up and the URL is right",
                    retryable=True,
                )
            if measure is not None and place is not None and 200 <= response.status_code < 300:
                place.received(len(response.content), measure)
            return response

    def _backoff(self, attempt: int) -> float:
        """Delay after failed attempt number `attempt` (1-based): exponential, capped,
        with jitter in [50%, 100%] so that concurrent chunks do not retry in lockstep."""
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * self._api.rng.random())
