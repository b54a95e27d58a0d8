"""What a channel says when it could not deliver: retry or not, and why (the Go optimizer's error
types). Channels only send and raise these; the retry stage (delivery.py) decides the rest."""

from __future__ import annotations

# The Go optimizer's error types, the `error_type` label of alert_channel_errors_total.
CHANNEL_NOT_FOUND = "channel_not_found"  # routed to a channel that is not configured
CIRCUIT_BREAKER_OPEN = "circuit_breaker_open"  # not tried: the channel's breaker is open
SEND_FAILED = "send_failed"  # network or API failure
INVALID_CONFIG = "invalid_config"  # the channel's configuration is not usable
TIMEOUT = "timeout"  # no answer within the channel's timeout
QUEUE_FULL = "queue_full"  # dropped: a queue was full
ERROR_TYPES = (CHANNEL_NOT_FOUND, CIRCUIT_BREAKER_OPEN, SEND_FAILED, INVALID_CONFIG, TIMEOUT,
               QUEUE_FULL)  # fmt: skip


class ChannelError(Exception):
    """A send failed. `retryable`: the same alert may succeed later (5xx, 429, timeouts,
    refused connections); otherwise retrying cannot help (a 400, a refused recipient).
    `retry_after`: seconds the service asked us to wait (HTTP Retry-After), if it did.
    The message never contains a secret (channels build it from safe parts)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        error_type: str = SEND_FAILED,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.error_type = error_type
        self.retry_after = retry_after


class ChannelConfigError(ValueError):
    """A channel's settings cannot work; `kind` is the `config_error_type` label
    (missing_field, invalid_url, invalid_value) and the message says what to fix."""

    def __init__(self, message: str, *, kind: str = "invalid_value") -> None:
        super().__init__(message)
        self.kind = kind
