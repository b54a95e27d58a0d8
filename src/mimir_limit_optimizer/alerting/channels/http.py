"""Shared HTTP sending for the webhook-style channels: one attempt, the answer classified.

2xx is success. 408, 425, 429 and 5xx are retryable (429/503 with their Retry-After), other
4xx are permanent (the request itself is wrong: retrying sends the same wrong request).
Timeouts and refused or dropped connections are retryable. Messages name the service and
the status, never the URL (it may be the secret).
"""

from __future__ import annotations

import email.utils
import json
from typing import Any, Protocol

import httpx

from mimir_limit_optimizer.alerting.errors import SEND_FAILED, TIMEOUT, ChannelError
from mimir_limit_optimizer.alerting.redact import Redactor

_RETRYABLE_STATUS = frozenset({408, 425, 429})
_BODY_SHOWN = 200  # characters of an error response body kept in the message
USER_AGENT = "mimir-limit-optimizer"


class HttpChannelSettings(Protocol):
    """What every HTTP channel's settings carry for the connection (read-only: the settings
    models are frozen)."""

    @property
    def timeout(self) -> float: ...
    @property
    def tls_verify(self) -> bool: ...
    @property
    def ca_file(self) -> str | None: ...


class HttpSender:
    @classmethod
    def for_channel(
        cls,
        service: str,
        settings: HttpChannelSettings,
        *,
        redact: Redactor,
        transport: httpx.BaseTransport | None = None,
    ) -> HttpSender:
        """A sender configured from a channel's settings (timeout, TLS)."""
        return cls(
            service=service,
            timeout=settings.timeout,
            redact=redact,
            tls_verify=settings.tls_verify,
            ca_file=settings.ca_file,
            transport=transport,
        )

    def __init__(
        self,
        *,
        service: str,
        timeout: float,
        redact: Redactor,
        tls_verify: bool = True,
        ca_file: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.service = service
        self.timeout = timeout
        self.redact = redact
        verify: bool | str = ca_file if (tls_verify and ca_file) else tls_verify
        self._client = httpx.Client(
            timeout=timeout,
            verify=verify,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    def send(
        self,
        url: str,
        body: Any,
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send `body` as JSON once; the response when 2xx, else ChannelError."""
        content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            response = self._client.request(method, url, content=content, headers=all_headers)
        except httpx.TimeoutException as exc:
            raise ChannelError(
                f"{self.service}: no answer within {self.timeout:g}s ({type(exc).__name__})",
                retryable=True,
                error_type=TIMEOUT,
            ) from None
        except httpx.TransportError as exc:
            reason = self.redact(str(exc)) or type(exc).__name__
            raise ChannelError(
                f"{self.service}: cannot connect: {reason}", retryable=True, error_type=SEND_FAILED
            ) from None
        except httpx.InvalidURL:
            raise ChannelError(
                f"{self.service}: the URL is not valid", retryable=False, error_type=SEND_FAILED
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return response
        retryable = status in _RETRYABLE_STATUS or status >= 500
        retry_after = retry_after_seconds(response) if status in (429, 503) else None
        text = " ".join(response.text.split())[:_BODY_SHOWN]
        shown = f": {self.redact(text)}" if text else ""
        wait = f" (Retry-After {retry_after:g}s)" if retry_after is not None else ""
        raise ChannelError(
            f"{self.service} returned HTTP {status}{shown}{wait}",
            retryable=retryable,
            error_type=SEND_FAILED,
            retry_after=retry_after,
        )

    def close(self) -> None:
        self._client.close()


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date measured against the response's own
    Date header (so no clock of ours is needed); None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        until = email.utils.parsedate_to_datetime(value)
        sent = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    if until is None or sent is None:
        return None
    return max(0.0, (until - sent).total_seconds())
