"""Responses of the Prometheus query API: classified (success, a retryable failure with any
Retry-After, or a permanent one with a hint at the fix) and parsed into plain series, or
straight into arrays for a matrix of Prometheus' own layout (`prom_decode`)."""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson

from mimir_limit_optimizer.engine.usage import FloatArray
from mimir_limit_optimizer.sources.base import PermanentSourceError
from mimir_limit_optimizer.sources.body_summary import summarise_body
from mimir_limit_optimizer.sources.prom_decode import DecodedMatrix, decode_matrix

# Characters of a response body quoted in an error message.
BODY_EXCERPT = 300
# Prometheus `errorType`s: bad input or a query the server refuses to run (422 execution,
# e.g. Mimir's per-tenant query limits) will fail the same way again.
_PERMANENT_ERROR_TYPES = frozenset({"bad_data", "execution", "not_found", "not_acceptable"})
_RETRYABLE_ERROR_TYPES = frozenset({"timeout", "canceled", "internal", "unavailable"})


@dataclass(frozen=True)
class Series:
    """One series of a query result: its labels, timestamps (unix s) and values (NaN and
    +-Inf as sent; the source screens them, engine/validity.py)."""

    labels: Mapping[str, str]
    timestamps: FloatArray
    values: FloatArray


class Unwanted:
    """`_post`'s answer when `wanted()` was false: nothing was sent."""


UNWANTED = Unwanted()


@dataclass(frozen=True)
class Success:
    data: Any


@dataclass(frozen=True)
class Failure:
    reason: str
    retryable: bool
    wait: float | None = None  # Retry-After, seconds


def hint(status: int, error_type: str = "") -> str:
    if error_type == "bad_data" or status == 400:
        return "the server rejected the query: check the catalogue template and the selectors"
    if error_type == "execution" or status == 422:
        return "the server refused to run the query (a query limit?): shorten chunkLength"
    if status in (401, 403):
        return "check the credentials (bearerToken*, basicAuth) and X-Scope-OrgID (tenant)"
    if status == 404:
        return "check url and pathPrefix (Mimir serves the Prometheus API under /prometheus)"
    if 300 <= status < 400:
        return "the server redirects: use the final URL in source.prometheus.url"
    return "retrying will not help; check the server's logs"


def decode_body(response: httpx.Response) -> Any:
    """The response body: a successful matrix straight into arrays when it has Prometheus'
    layout (`prom_decode`), anything else through orjson."""
    content = response.content
    if 200 <= response.status_code < 300:
        matrix = decode_matrix(content)
        if matrix is not None:
            return {"status": "success", "data": {"resultType": "matrix", "result": matrix}}
    return orjson.loads(content)


def as_matrix(series: list[Series]) -> DecodedMatrix:
    offsets = np.zeros(len(series) + 1, dtype=np.int64)
    np.cumsum([len(s.values) for s in series], out=offsets[1:])
    return DecodedMatrix(
        [s.labels for s in series],
        offsets,
        np.concatenate([s.timestamps for s in series]) if series else np.zeros(0),
        np.concatenate([s.values for s in series]) if series else np.zeros(0),
    )


def _values(points: Any) -> tuple[FloatArray, FloatArray]:
    """[[ts, "v"], ...] -> (timestamps, values); NaN stays NaN (a gap) and +Inf/-Inf stay
    infinite: invalid data that engine/validity.py drops with a reason.

    numpy parses the sample strings ("1.5", "NaN", "+Inf") itself, in one call."""
    if not points:
        return np.empty(0), np.empty(0)
    pairs = np.array(points, dtype=np.float64)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"expected [timestamp, value] pairs, got shape {pairs.shape}")
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def parse_result(data: Any, expected: str, shown: str, query: str) -> list[Series]:
    try:
        result_type = data["resultType"]
        result = data["result"]
    except (TypeError, KeyError) as exc:
        raise PermanentSourceError(
            "response has no data.resultType/data.result: is this a Prometheus query API?",
            url=shown,
            query=query,
        ) from exc
    if result_type != expected:
        raise PermanentSourceError(
            f"expected a {expected} result, got {result_type!r}: the query must be an "
            "instant-vector expression aggregated `by (user)`",
            url=shown,
            query=query,
        )
    if isinstance(result, DecodedMatrix):
        return [Series(result.labels[i], *result.series(i)) for i in range(len(result))]
    series: list[Series] = []
    try:
        for item in result:
            labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
            # Native-histogram-only series carry "histograms"; they have no float samples.
            if expected == "matrix":
                points = item.get("values") or []
            else:
                points = [item["value"]] if item.get("value") else []
            timestamps, values = _values(points)
            series.append(Series(labels, timestamps, values))
    except (TypeError, KeyError, IndexError, ValueError) as exc:
        raise PermanentSourceError(
            f"malformed {expected} in the response ({type(exc).__name__}: {exc})",
            url=shown,
            query=query,
        ) from exc
    return series


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (delta-seconds or an HTTP date relative to the
    response's own Date header, so no clock is read); None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    date_header = response.headers.get("date")
    if date_header is None:
        return None
    try:
        until = email.utils.parsedate_to_datetime(value)
        now = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    return max(0.0, (until - now).total_seconds())


def classify(
    response: httpx.Response, scrub: Callable[[str], str], log: logging.Logger
) -> Success | Failure:
    """Classify one HTTP response of the query API (`scrub` removes secrets from quoted text)."""
    status = response.status_code
    wait = retry_after(response) if status in (429, 503) else None
    try:
        body = decode_body(response)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        excerpt = summarise_body(
            scrub(response.text), response.headers.get("content-type", ""), BODY_EXCERPT
        )
        if status == 429 or status >= 500:
            return Failure(f"HTTP {status}: {excerpt}", retryable=True, wait=wait)
        return Failure(
            f"HTTP {status} without a Prometheus API response ({excerpt}); {hint(status)}",
            retryable=False,
        )
    if body.get("status") == "success" and 200 <= status < 300:
        for warning in body.get("warnings") or ():
            log.warning("Prometheus warning: %s", scrub(str(warning)))
        return Success(body.get("data"))
    error_type = str(body.get("errorType") or "")
    detail = scrub(str(body.get("error") or "no error message"))[:BODY_EXCERPT]
    text = f"HTTP {status} {error_type or 'error'}: {detail}"
    if error_type not in _PERMANENT_ERROR_TYPES and (
        error_type in _RETRYABLE_ERROR_TYPES or status == 429 or status >= 500
    ):
        return Failure(text, retryable=True, wait=wait)
    return Failure(f"{text}; {hint(status, error_type)}", retryable=False)
