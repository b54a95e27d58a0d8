"""Prove that Mimir (or Cortex) loaded the values just written to its runtime overrides.

Writing the file is not the end: Mimir re-reads it every `-runtime-config.reload-period`
(10 s by default) and rejects the WHOLE file on one bad key, keeping its last good config.
`MimirVerifier.verify` polls `GET <mimirUrl>/runtime_config?mode=diff` until every expected
tenant x limit shows the expected value, and reads `cortex_runtime_config_last_reload_successful`
from `GET <mimirUrl>/metrics` (it must be 1 when Mimir exports it).

`mode=diff` lists only values that differ from the global `limits` block: a limit written
with the same value as the default does not appear there. For such keys the verifier reads
the full `/runtime_config`, which lists every limit of every tenant in the file.

Values are compared in base units (seconds, 1.0/0.0 for booleans) within 1e-9 relative:
Mimir renders `30d` as `30d` or `4w2d`, `1.5e+06` for a large float; the expected value
goes through the same rendering the writer uses (`limit_yaml_value`), so a count planned as
1499.2 is expected as the 1500 that was written.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import httpx
from pydantic import SecretStr
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from mimir_limit_optimizer.catalogue.model import Catalogue, LimitSpec, LimitType
from mimir_limit_optimizer.catalogue.units import DurationError, parse_duration
from mimir_limit_optimizer.config.secrets import REDACTED, looks_secret, redact_url
from mimir_limit_optimizer.config.service import VerifySettings
from mimir_limit_optimizer.engine.overrides import limit_yaml_value

__all__ = ["RELOAD_METRIC", "MimirVerifier", "VerifyResult", "base_units"]

RELOAD_METRIC = "cortex_runtime_config_last_reload_successful"
REL_TOLERANCE = 1e-9
# Longest a single HTTP request may take (seconds); never longer than the time left.
REQUEST_TIMEOUT = 10.0
# Characters of an error response body quoted in a detail.
BODY_EXCERPT = 200
# Statuses that mean the URL or the credentials are wrong: waiting will not fix them.
_PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 405})
_TRUE = frozenset({"true", "y", "yes", "on"})
_FALSE = frozenset({"false", "n", "no", "off"})
_METRIC_LINE = re.compile(rf"^{RELOAD_METRIC}(?:\{{[^}}]*\}})?[ \t]+(\S+)", re.MULTILINE)
# Go's time.Duration rendering (`720h0m0s`, `1.5s`, `300ms`), in case a value is one.
_GO_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns))+$")
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_GO_UNITS = MappingProxyType(
    {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
)


@dataclass(frozen=True)
class VerifyResult:
    """`ok`: every expected value is live and the last reload succeeded. `detail`: one line
    for logs and the audit (secrets redacted). `reload_successful`: the last value of
    cortex_runtime_config_last_reload_successful seen; None when never read."""

    ok: bool
    detail: str
    reload_successful: bool | None


@dataclass(frozen=True)
class _Poll:
    """One look at Mimir. `problem` is None when every expected value is live; `served`
    says whether Mimir answered (the problem is about the values, not the connection)."""

    problem: str | None
    reload_successful: bool | None = None
    permanent: bool = False
    served: bool = False


class _FetchError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class MimirVerifier:
    """Polls a Mimir endpoint until it serves the expected limits. `transport`, `sleep` and
    `clock` are seams for tests (httpx.MockTransport, a fake clock)."""

    def __init__(
        self,
        settings: VerifySettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.mimir_url:
            raise ValueError("verify.mimirUrl is empty: there is no Mimir to verify against")
        self.settings = settings
        self._base = settings.mimir_url.rstrip("/")
        self._shown = redact_url(self._base)
        self._secrets = [
            value
            for name, value in plain_headers(settings.headers).items()
            if looks_secret(name) and value
        ]
        self._transport = transport
        self._sleep = sleep
        self._clock = clock

    def verify(
        self, expected: Mapping[str, Mapping[str, float]], catalogue: Catalogue
    ) -> VerifyResult:
        """Wait up to `settings.timeout` for Mimir to serve `expected` (tenant -> limit ->
        value in base units). Never raises for what Mimir does; ValueError for an expected
        value no writer could have written (NaN, negative)."""
        wanted = _normalise(expected, catalogue)
        timeout = float(self.settings.timeout)
        interval = float(self.settings.poll_interval)
        deadline = self._clock() + timeout
        polls = int(timeout / interval) + 2  # bounded even if the clock stands still
        last = _Poll("no answer yet")
        mismatch: str | None = None  # the last problem with the values Mimir served
        seen_reload: bool | None = None
        with httpx.Client(
            transport=self._transport,
            headers=plain_headers(self.settings.headers),
            follow_redirects=True,
        ) as client:
            for _ in range(polls):
                last = self._poll(client, wanted, catalogue, deadline)
                if last.reload_successful is not None:
                    seen_reload = last.reload_successful
                if last.served:
                    mismatch = last.problem
                if last.problem is None:
                    count = sum(len(limits) for limits in wanted.values())
                    return VerifyResult(
                        True,
                        self._scrub(
                            f"Mimir at {self._shown} serves all {count} expected values "
                            f"({_reload_text(seen_reload)})"
                        ),
                        seen_reload,
                    )
                if last.permanent:
                    break
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                self._sleep(min(interval, remaining))
        why = "gave up" if last.permanent else f"did not serve the new values within {timeout:g} s"
        problem = last.problem
        if not last.served and mismatch is not None:
            problem = f"{problem} (when it last answered: {mismatch})"
        detail = f"Mimir at {self._shown} {why}: {problem}; {_reload_text(seen_reload)}"
        return VerifyResult(False, self._scrub(detail), seen_reload)

    # -- one poll ---------------------------------------------------------------------------

    def _poll(
        self,
        client: httpx.Client,
        wanted: Mapping[str, Mapping[str, float]],
        catalogue: Catalogue,
        deadline: float,
    ) -> _Poll:
        try:
            diff = _overrides(self._get(client, "/runtime_config?mode=diff", deadline))
            problem, absent = _compare(wanted, diff, catalogue, report_absent=False)
            if problem is None and absent:
                full = _overrides(self._get(client, "/runtime_config", deadline))
                problem, _ = _compare(absent, full, catalogue, report_absent=True)
            reload = self._reload_status(client, deadline)
        except _FetchError as exc:
            return _Poll(str(exc), permanent=exc.permanent)
        if problem is None and reload is False:
            problem = "the values are live but the last reload failed (another file is broken?)"
        return _Poll(problem, reload, served=True)

    def _reload_status(self, client: httpx.Client, deadline: float) -> bool | None:
        try:
            text = self._get(client, "/metrics", deadline)
        except _FetchError as exc:
            if exc.permanent:  # no /metrics behind this URL: the metric is not present
                return None
            raise
        match = _METRIC_LINE.search(text)
        if match is None:
            return None
        try:
            return float(match.group(1)) == 1.0
        except ValueError:
            return False

    def _get(self, client: httpx.Client, path: str, deadline: float) -> str:
        url = self._base + path
        shown = self._shown + path
        timeout = max(0.05, min(REQUEST_TIMEOUT, deadline - self._clock()))
        try:
            response = client.get(url, timeout=timeout)
        except httpx.HTTPError as exc:
            raise _FetchError(f"cannot reach {shown}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            body = " ".join(response.text[:BODY_EXCERPT].split())
            hint = (
                " (check verify.mimirUrl and verify.headers)"
                if response.status_code in (_PERMANENT_STATUSES)
                else ""
            )
            raise _FetchError(
                f"HTTP {response.status_code} from {shown}{hint}: {body}",
                permanent=response.status_code in _PERMANENT_STATUSES,
            )
        return response.text

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


# -- values -----------------------------------------------------------------------------------


def _normalise(
    expected: Mapping[str, Mapping[str, float]], catalogue: Catalogue
) -> dict[str, dict[str, float]]:
    """Expected values as they read back after the writer rendered them."""
    out: dict[str, dict[str, float]] = {}
    for tenant, limits in expected.items():
        row: dict[str, float] = {}
        for limit, value in limits.items():
            spec = catalogue.limits.get(limit)
            if spec is None:
                row[limit] = float(value)
                continue
            number = base_units(limit_yaml_value(value, spec), spec)
            assert number is not None  # limit_yaml_value renders what base_units reads
            row[limit] = number
        if row:
            out[str(tenant)] = row
    return out


def base_units(raw: Any, spec: LimitSpec | None) -> float | None:
    """A value as Mimir renders it, in base units; None when it cannot be read as `spec`'s."""
    kind = spec.type if spec is not None else None
    if kind is LimitType.BOOL or isinstance(raw, bool):
        if isinstance(raw, bool):
            return 1.0 if raw else 0.0
        text = str(raw).strip().lower()
        return 1.0 if text in _TRUE else 0.0 if text in _FALSE else None
    if isinstance(raw, int | float):
        return None if kind is LimitType.DURATION else float(raw)
    if not isinstance(raw, str):
        return None
    if kind is not LimitType.DURATION:
        try:
            return float(raw)
        except ValueError:
            if kind is not None:
                return None
    return _duration(raw)


def _duration(text: str) -> float | None:
    text = text.strip()
    try:
        return parse_duration(text)
    except DurationError:
        pass
    if _GO_DURATION.match(text):
        return sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_PART.findall(text))
    return None


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=0.0)


def _compare(
    wanted: Mapping[str, Mapping[str, float]],
    served: Mapping[str, Mapping[str, Any]],
    catalogue: Catalogue,
    *,
    report_absent: bool,
) -> tuple[str | None, dict[str, dict[str, float]]]:
    """The first expected value not served (a sentence), and the expected values absent from
    `served` (not reported as problems unless `report_absent`)."""
    absent: dict[str, dict[str, float]] = {}
    for tenant, limits in wanted.items():
        entry = served.get(tenant)
        for limit, value in limits.items():
            where = f"overrides.{tenant}.{limit}"
            if entry is None or limit not in entry:
                if report_absent:
                    missing = "has no entry" if entry is None else f"does not set {limit}"
                    return f"{where}: tenant {tenant} {missing} yet", absent
                absent.setdefault(tenant, {})[limit] = value
                continue
            number = base_units(entry[limit], catalogue.limits.get(limit))
            if number is None:
                return f"{where} is {entry[limit]!r}, which is not a {limit} value", absent
            if not _same(number, value):
                return f"{where} is {_show(number)}, expected {_show(value)}", absent
    return None, absent


def _show(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**63 else repr(value)


def _overrides(text: str) -> dict[str, dict[str, Any]]:
    """tenant -> limit -> raw value from a /runtime_config response."""
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise _FetchError(f"the /runtime_config response is not YAML: {exc}") from exc
    overrides = data.get("overrides") if isinstance(data, dict) else None
    if not isinstance(overrides, dict):
        return {}
    return {
        _key(tenant): {_key(k): v for k, v in entry.items()}
        for tenant, entry in overrides.items()
        if isinstance(entry, dict)
    }


def _key(key: object) -> str:
    return str(key).lower() if isinstance(key, bool) else str(key)


def _reload_text(status: bool | None) -> str:
    if status is None:
        return f"last reload status unknown ({RELOAD_METRIC} not seen)"
    if status:
        return f"last reload successful ({RELOAD_METRIC} = 1)"
    return (
        f"last reload FAILED ({RELOAD_METRIC} = 0): Mimir keeps its previous config; "
        "see its log for `failed to load config` and run `mlo validate` on the file"
    )


def plain_headers(headers: Mapping[str, str | SecretStr]) -> dict[str, str]:
    """Header values to send (secrets are SecretStr in the config so that they are redacted)."""
    return {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in headers.items()
    }
