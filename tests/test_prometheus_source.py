"""The Prometheus/Mimir source asks the server for one range query per distinct signal (per
chunk) whatever the tenant count, splits long windows into step-aligned chunks that join
without gaps or duplicates, renders templates with escaped selectors, speaks Mimir (prefix,
X-Scope-OrgID, bearer/basic auth), retries what is worth retrying with backoff, turns a
failed signal into `unavailable` reasons that name the redacted URL and the query (never a
credential), drops tenant IDs Mimir would reject, and reads the limits in force from the
overrides-exporter metrics. Fakes sit at the HTTP seam (httpx.MockTransport); one smoke test
runs against a real Prometheus.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import random
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mimir_limit_optimizer.catalogue import LimitSpec, LimitType, SignalKind, load_catalogue
from mimir_limit_optimizer.config.models import BasicAuth, PrometheusSettings
from mimir_limit_optimizer.sources.base import (
    PermanentSourceError,
    RetryableSourceError,
    SourceError,
)
from mimir_limit_optimizer.sources.prom_credentials import SourceConfigError, redact_url
from mimir_limit_optimizer.sources.prom_observation import ORIGIN_DEFAULTS, ORIGIN_OVERRIDES
from mimir_limit_optimizer.sources.prometheus import PrometheusSource, time_grid
from mimir_limit_optimizer.sources.promql import (
    PromQLError,
    TemplateRenderer,
    escape_label_value,
)
from tests.promserver import PromServer, start_prometheus

# A step-aligned instant (multiple of 300 s) so that grids in tests start exactly here.
T0 = 1_699_999_200.0
RANGE = "/api/v1/query_range"
INSTANT = "/api/v1/query"


def spec(
    name: str, usage: str | None = None, discards: str | None = None, **extra: Any
) -> LimitSpec:
    return LimitSpec(
        name=name,
        type=LimitType.RATE,
        default=0.0,
        unit="",
        signal=SignalKind.USAGE if usage else SignalKind.POLICY,
        category="test",
        description="",
        checked_against="test",
        usage_query=usage,
        discard_query=discards,
        **extra,
    )


USAGE_A = "sum by (user) (rate(a_total{${sel}}[${rate}]))"
USAGE_B = "sum by (user) (b{${sel}})"
DISCARDS_A = 'sum by (user) (rate(d_total{reason="x",${sel}}[${rate}]))'


@dataclass
class Call:
    path: str
    form: dict[str, str]
    headers: httpx.Headers

    @property
    def query(self) -> str:
        return self.form["query"]


def matrix(series: list[tuple[dict[str, str], list[tuple[float, str]]]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": m, "values": [[t, v] for t, v in pts]} for m, pts in series],
        },
    }


def vector(series: list[tuple[dict[str, str], str]], at: float) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [at, v]} for m, v in series],
        },
    }


def value_at(tenant: str, t: float) -> float:
    """The fake's usage: distinct per tenant and per timestamp, so misplaced points show."""
    return float(int(tenant.rsplit("-", 1)[-1]) * 1_000_000 + (t - T0) / 300)


@dataclass
class FakePrometheus:
    """A Prometheus query API in-process: range queries return `value_at` for `tenants` on
    exactly the requested grid (inclusive, as Prometheus does); instant queries return
    `overrides`/`defaults`. `script` maps a query substring to a list of responses (or
    exceptions) used in turn before falling back to the normal answer."""

    tenants: list[str] = field(default_factory=lambda: [f"tenant-{i}" for i in range(3)])
    overrides: list[tuple[dict[str, str], str]] = field(default_factory=list)
    defaults: list[tuple[dict[str, str], str]] = field(default_factory=list)
    script: dict[str, list[httpx.Response | Exception]] = field(default_factory=dict)
    range_answer: Callable[[Call], httpx.Response] | None = None
    calls: list[Call] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = dict(urllib.parse.parse_qsl(request.content.decode(), keep_blank_values=True))
        call = Call(request.url.path, form, request.headers)
        self.calls.append(call)
        for needle, answers in self.script.items():
            if needle in call.query and answers:
                answer = answers.pop(0)
                if isinstance(answer, Exception):
                    raise answer
                return answer
        if call.path.endswith(RANGE):
            if self.range_answer is not None:
                return self.range_answer(call)
            start, end, step = (float(form[k]) for k in ("start", "end", "step"))
            grid = np.arange(start, end + step / 2, step)
            return httpx.Response(
                200,
                json=matrix(
                    [({"user": u}, [(t, repr(value_at(u, t))) for t in grid]) for u in self.tenants]
                ),
            )
        at = float(form["time"])
        if "cortex_limits_overrides" in call.query:
            return httpx.Response(200, json=vector(self.overrides, at))
        return httpx.Response(200, json=vector(self.defaults, at))

    def ranges(self) -> list[Call]:
        return [c for c in self.calls if c.path.endswith(RANGE)]


class Sleeps:
    """Injected `sleep`: records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class MaxJitter(random.Random):
    """Jitter pinned to its upper bound, so backoff delays are exact: 1, 2, 4, ... s."""

    def random(self) -> float:
        return 1.0


def make_source(
    fake: FakePrometheus,
    sleeps: Sleeps | None = None,
    env: dict[str, str] | None = None,
    replication_factor: int = 3,
    **settings: Any,
) -> PrometheusSource:
    return PrometheusSource(
        PrometheusSettings(**settings),
        replication_factor=replication_factor,
        transport=httpx.MockTransport(fake),
        env=env or {},
        sleep=sleeps or Sleeps(),
        rng=MaxJitter(),
    )


# --- grid and chunks ------------------------------------------------------------------


def test_time_grid_holds_the_step_multiples_inside_the_window() -> None:
    assert time_grid(T0, T0 + 900, 300).tolist() == [T0, T0 + 300, T0 + 600, T0 + 900]
    # Unaligned ends are pulled inwards onto multiples of the step.
    assert time_grid(T0 + 17, T0 + 899, 300).tolist() == [T0 + 300, T0 + 600]
    with pytest.raises(ValueError, match="no multiple of step"):
        time_grid(T0 + 1, T0 + 299, 300)
    with pytest.raises(ValueError, match="start <= end"):
        time_grid(T0, T0 - 1, 300)


def test_long_windows_are_split_into_step_aligned_chunks_that_join_without_gaps() -> None:
    fake = FakePrometheus()
    source = make_source(fake, step=300, chunk_length=3600)
    end = T0 + 3 * 3600 + 600  # 39 points: chunks of 12, 12, 12 and 3
    obs = source.collect([spec("l", USAGE_A)], start=T0, end=end)

    requests = [(c.form["start"], c.form["end"], c.form["step"]) for c in fake.ranges()]
    assert sorted(requests) == [
        ("1699999200", "1700002500", "300"),
        ("1700002800", "1700006100", "300"),
        ("1700006400", "1700009700", "300"),
        ("1700010000", "1700010600", "300"),
    ]
    assert obs.timestamps.tolist() == [T0 + 300 * i for i in range(39)]
    assert np.all(np.diff(obs.timestamps) == 300)
    assert obs.step == 300
    for row, tenant in enumerate(obs.tenants):
        expected = [value_at(tenant, t) for t in obs.timestamps]
        assert obs.usage["l"][row].tolist() == expected  # every point, once, in place


def test_chunks_never_exceed_prometheus_11000_points() -> None:
    fake = FakePrometheus(tenants=["tenant-1"])
    source = make_source(fake, step=1, chunk_length=86400)
    source.collect([spec("l", USAGE_A)], start=T0, end=T0 + 12_000)
    points = [
        (float(c.form["end"]) - float(c.form["start"])) / float(c.form["step"]) + 1
        for c in fake.ranges()
    ]
    assert sorted(points) == [1001, 11_000]


def test_requests_do_not_grow_with_the_tenant_count() -> None:
    limits = [spec("a", USAGE_A, DISCARDS_A), spec("b", USAGE_B)]
    counts = []
    for tenants in (10, 100):
        fake = FakePrometheus(tenants=[f"tenant-{i}" for i in range(tenants)])
        obs = make_source(fake, chunk_length=3600).collect(limits, start=T0, end=T0 + 7200)
        assert len(obs.tenants) == tenants
        assert obs.usage["a"].shape == (tenants, 25)
        counts.append(len(fake.calls))
    # 3 signals x 3 chunks (25 points of 12) + 2 instant queries for the current limits
    # + 1 reachability probe.
    assert counts == [3 * 3 + 3, 3 * 3 + 3]


def test_a_signal_shared_by_several_limits_is_queried_once() -> None:
    fake = FakePrometheus()
    limits = [
        spec("ingestion_rate", USAGE_A, DISCARDS_A),
        spec("burst", USAGE_A),  # same usage template: same rendered query
        spec("other", USAGE_B, DISCARDS_A),  # shares only the discard signal
        spec("policy"),  # no signal at all
    ]
    obs = make_source(fake).collect(limits, start=T0, end=T0 + 3600)
    queries = [c.query for c in fake.ranges()]
    assert len(queries) == len(set(queries)) == 3
    assert obs.usage["ingestion_rate"] is obs.usage["burst"]
    assert obs.discards["ingestion_rate"] is obs.discards["other"]
    assert set(obs.usage) == {"ingestion_rate", "burst", "other"}
    assert "policy" not in obs.unavailable


def test_progress_counts_every_request_up_to_the_total() -> None:
    fake = FakePrometheus()
    seen: list[tuple[int, int, str]] = []
    make_source(fake, chunk_length=3600).collect(
        [spec("l", USAGE_A)],
        start=T0,
        end=T0 + 7200,
        progress=lambda done, total, label: seen.append((done, total, label)),
    )
    assert [d for d, _, _ in seen] == [1, 2, 3, 4, 5]
    assert {t for _, t, _ in seen} == {5}  # 3 chunks + 2 queries for the current limits
    assert any("usage of l [1/3]" in label for _, _, label in seen)


def test_fixed_concurrency_runs_exactly_max_concurrency_requests_at_once() -> None:
    fake = FakePrometheus()
    in_flight = peak = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return fake(request)

    PrometheusSource(
        PrometheusSettings(max_concurrency=3, adaptive_concurrency=False, chunk_length=600),
        transport=httpx.MockTransport(slow),
    ).collect([spec("a", USAGE_A)], start=T0, end=T0 + 3000)
    # 11 points in chunks of 2, the current limits, and the reachability probe.
    assert len(fake.calls) == 6 + 2 + 1
    assert peak == 3


def test_once_a_chunk_failed_the_rest_of_its_signal_is_not_requested() -> None:
    fake = FakePrometheus(script={"a_total": [error_body(400, "bad_data", "no")]})
    obs = make_source(fake, max_concurrency=1, chunk_length=600).collect(
        [spec("a", USAGE_A), spec("b", USAGE_B)], start=T0, end=T0 + 1500
    )
    queries = [c.query for c in fake.ranges()]
    assert sum("a_total" in q for q in queries) == 1
    assert sum("b{" in q for q in queries) == 3
    assert set(obs.unavailable) == {"a"}


def test_prometheus_warnings_are_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    def answer(call: Call) -> httpx.Response:
        body = matrix([({"user": "tenant-1"}, [(float(call.form["start"]), "1")])])
        body["warnings"] = ["PromQL info: metric might not be a counter"]
        return httpx.Response(200, json=body)

    with caplog.at_level(logging.WARNING):
        obs = make_source(FakePrometheus(range_answer=answer)).collect(
            [spec("a", USAGE_A)], start=T0, end=T0 + 600
        )
    assert obs.unavailable == {}
    assert "metric might not be a counter" in caplog.text


# --- PromQL rendering -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("prod", "prod"),
        ('we"ird', 'we\\"ird'),
        ("back\\slash", "back\\\\slash"),
        ("line\nbreak", "line\\nbreak"),
        ('"},x="', '\\"},x=\\"'),  # injection attempt stays one string
        ("tab\tbell\x07", "tab\\tbell\\x07"),
    ],
)
def test_label_values_are_escaped_for_promql_strings(value: str, escaped: str) -> None:
    assert escape_label_value(value) == escaped


def test_selectors_and_replication_factor_are_rendered_into_every_template() -> None:
    fake = FakePrometheus()
    template = 'sum by (user) (series{${sel}}) / ${rf} + rate(x{a=~"b$"}[${rate}])'
    source = make_source(
        fake,
        replication_factor=2,
        selectors={"cluster": 'pr"od\\1', "namespace": "mimir"},
        rate_interval=90,
    )
    source.collect([spec("l", template)], start=T0, end=T0 + 600)
    sel = 'cluster="pr\\"od\\\\1",namespace="mimir"'
    assert fake.ranges()[0].query == (
        f"sum by (user) (series{{{sel}}}) / "
        f"scalar(max(cortex_distributor_replication_factor{{{sel}}}) or vector(2))"
        ' + rate(x{a=~"b$"}[1m30s])'
    )
    instants = sorted(c.query for c in fake.calls if c.path.endswith(INSTANT))
    assert sorted(instants) == sorted(
        [
            "vector(1)",
            f"max by (limit_name) (last_over_time(cortex_limits_defaults{{{sel}}}[15m]))",
            f"max by (user, limit_name) (last_over_time(cortex_limits_overrides{{{sel}}}[15m]))",
        ]
    )


def test_bad_label_names_and_unknown_placeholders_fail_before_any_request() -> None:
    with pytest.raises(PromQLError, match="not a valid Prometheus label name"):
        make_source(FakePrometheus(), selectors={"bad-name": "x"})
    renderer = TemplateRenderer({}, rate_interval=300, replication_factor=3)
    with pytest.raises(PromQLError, match=r"unknown placeholder \$\{tenant\}"):
        renderer.render("x{user=${tenant}}", what="usage query of l")
    assert renderer.render("x{${sel}}") == "x{}"


# --- Mimir: prefix, tenant header, credentials ------------------------------------------


def test_mimir_prefix_tenant_header_and_extra_headers() -> None:
    fake = FakePrometheus()
    source = make_source(
        fake,
        url="https://mimir.example.com/",
        path_prefix="/prometheus/",
        tenant="meta",
        headers={"X-Team": "obs", "x-scope-orgid": "replaced-by-tenant"},
    )
    source.collect([spec("l", USAGE_A)], start=T0, end=T0 + 600)
    assert {c.path for c in fake.calls} == {"/prometheus" + RANGE, "/prometheus" + INSTANT}
    for call in fake.calls:
        assert call.headers.get_list("x-scope-orgid") == ["meta"]
        assert call.headers["x-team"] == "obs"
        assert "authorization" not in call.headers
    assert source.describe() == (
        "prometheus https://mimir.example.com/prometheus (X-Scope-OrgID: meta)"
    )


@pytest.mark.parametrize("how", ["inline", "file", "env"])
def test_bearer_token_from_setting_file_or_environment(how: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok-123456\n")
    cases: dict[str, dict[str, Any]] = {
        "inline": {"bearer_token": "tok-123456"},
        "file": {"bearer_token_file": str(token_file)},
        "env": {"bearer_token_env": "MIMIR_TOKEN"},
    }
    settings = cases[how]
    fake = FakePrometheus()
    source = make_source(fake, env={"MIMIR_TOKEN": "tok-123456"}, **settings)
    source.collect([spec("l", USAGE_A)], start=T0, end=T0 + 600)
    assert {c.headers["authorization"] for c in fake.calls} == {"Bearer tok-123456"}
    assert "tok-123456" not in source.describe()


@pytest.mark.parametrize("how", ["inline", "file", "env", "url"])
def test_basic_auth_from_setting_file_environment_or_url(how: str, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("pa55word\n")
    cases: dict[str, dict[str, Any]] = {
        "inline": {"basic_auth": BasicAuth(username="alice", password="pa55word")},
        "file": {"basic_auth": BasicAuth(username="alice", password_file=str(password_file))},
        "env": {"basic_auth": BasicAuth(username="alice", password_env="PW")},
        "url": {"url": "http://alice:pa55word@prom:9090"},
    }
    settings = cases[how]
    fake = FakePrometheus()
    source = make_source(fake, env={"PW": "pa55word"}, **settings)
    source.collect([spec("l", USAGE_A)], start=T0, end=T0 + 600)
    expected = "Basic " + base64.b64encode(b"alice:pa55word").decode()
    assert {c.headers["authorization"] for c in fake.calls} == {expected}
    assert "pa55word" not in source.describe()


def test_credential_settings_that_cannot_work_fail_at_construction(tmp_path: Path) -> None:
    fake = FakePrometheus()
    with pytest.raises(SourceConfigError, match="set only one of"):
        make_source(fake, bearer_token="a", bearer_token_env="B")
    with pytest.raises(SourceConfigError, match=r"bearerTokenFile: cannot read .*missing"):
        make_source(fake, bearer_token_file=str(tmp_path / "missing"))
    with pytest.raises(SourceConfigError, match="environment variable NOPE is not set"):
        make_source(fake, bearer_token_env="NOPE")
    with pytest.raises(SourceConfigError, match="not both"):
        make_source(fake, bearer_token="t", basic_auth=BasicAuth(username="u", password="p"))
    with pytest.raises(SourceConfigError, match="http:// or https://"):
        make_source(fake, url="prom:9090")
    with pytest.raises(SourceConfigError, match="header x-scope-orgid contains a line break"):
        make_source(fake, tenant="meta\nX-Evil: 1")


# --- retries ----------------------------------------------------------------------------


def error_body(status: int, error_type: str, message: str) -> httpx.Response:
    return httpx.Response(
        status, json={"status": "error", "errorType": error_type, "error": message}
    )


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, text="internal server error"),
        error_body(503, "unavailable", "ingesters unhealthy"),
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectError("[Errno 111] Connection refused"),
    ],
    ids=["500", "503", "timeout", "refused"],
)
def test_transient_failures_are_retried_with_exponential_backoff(
    failure: httpx.Response | Exception,
) -> None:
    fake = FakePrometheus(script={"a_total": [failure, failure, failure]})
    sleeps = Sleeps()
    obs = make_source(fake, sleeps, retries=3).collect([spec("l", USAGE_A)], start=T0, end=T0 + 600)
    assert len(fake.ranges()) == 4  # 3 failures, then the answer
    assert sleeps.delays == [1.0, 2.0, 4.0]  # jitter pinned to its upper bound
    assert obs.unavailable == {}
    assert not np.isnan(obs.usage["l"]).any()


def test_jitter_keeps_each_delay_between_half_and_all_of_the_backoff() -> None:
    failure = httpx.Response(502, text="bad gateway")
    fake = FakePrometheus(script={"a_total": [failure] * 3})
    sleeps = Sleeps()
    PrometheusSource(
        PrometheusSettings(retries=3),
        transport=httpx.MockTransport(fake),
        sleep=sleeps,
        rng=random.Random(7),
    ).collect([spec("l", USAGE_A)], start=T0, end=T0 + 600)
    for delay, ceiling in zip(sleeps.delays, [1.0, 2.0, 4.0], strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_429_waits_as_long_as_retry_after_says() -> None:
    throttled = error_body(429, "too_many_requests", "slow down")
    throttled.headers["Retry-After"] = "7"
    fake = FakePrometheus(script={"a_total": [throttled]})
    sleeps = Sleeps()
    obs = make_source(fake, sleeps).collect([spec("l", USAGE_A)], start=T0, end=T0 + 600)
    assert sleeps.delays == [7.0]
    assert obs.unavailable == {}


def test_retry_after_as_an_http_date_is_relative_to_the_response_date() -> None:
    throttled = httpx.Response(
        503,
        text="busy",
        headers={
            "Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT",
            "Date": "Wed, 21 Oct 2015 07:28:00 GMT",
        },
    )
    fake = FakePrometheus(script={"a_total": [throttled]})
    sleeps = Sleeps()
    make_source(fake, sleeps).collect([spec("l", USAGE_A)], start=T0, end=T0 + 600)
    assert sleeps.delays == [30.0]


def test_a_retry_after_beyond_a_minute_gives_up_instead_of_stalling_the_cycle() -> None:
    throttled = httpx.Response(429, text="come back later", headers={"Retry-After": "3600"})
    fake = FakePrometheus(script={"a_total": [throttled]})
    sleeps = Sleeps()
    obs = make_source(fake, sleeps).collect(
        [spec("l", USAGE_A), spec("m", USAGE_B)], start=T0, end=T0 + 600
    )
    assert sleeps.delays == []
    assert "asked to retry after 3600s" in obs.unavailable["l"]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (error_body(400, "bad_data", "1:5: parse error: unexpected end"), "bad_data: 1:5"),
        (error_body(422, "execution", "query limit exceeded"), "shorten chunkLength"),
        (httpx.Response(401, text="no org id"), "check the credentials"),
        (httpx.Response(404, text="404 page not found"), "pathPrefix"),
        (error_body(200, "bad_data", "odd but possible"), "bad_data"),
    ],
    ids=["400-bad_data", "422-execution", "401", "404", "200-error"],
)
def test_permanent_failures_are_not_retried(failure: httpx.Response, expected: str) -> None:
    fake = FakePrometheus(script={"a_total": [failure]})
    sleeps = Sleeps()
    obs = make_source(fake, sleeps).collect(
        [spec("l", USAGE_A), spec("m", USAGE_B)], start=T0, end=T0 + 600
    )
    assert [c.query for c in fake.ranges()].count(fake.ranges()[0].query) == 1
    assert sleeps.delays == []
    assert expected in obs.unavailable["l"]
    assert "m" not in obs.unavailable


# --- partial and total failure, redaction -----------------------------------------------


def test_a_failed_signal_makes_its_limits_unavailable_and_keeps_the_others() -> None:
    down = httpx.Response(500, text="boom")
    fake = FakePrometheus(script={"d_total": [down] * 4})
    limits = [
        spec("a", USAGE_A, DISCARDS_A),
        spec("b", USAGE_B, DISCARDS_A),
        spec("c", USAGE_B),
    ]
    obs = make_source(fake, retries=3, url="http://bob:hunter2-pw@prom:9090").collect(
        limits, start=T0, end=T0 + 600
    )
    assert set(obs.unavailable) == {"a", "b"}
    reason = obs.unavailable["a"]
    assert reason.startswith("discards query failed: HTTP 500: boom; gave up after 4 attempts")
    assert "(url: http://bob:<redacted>@prom:9090/api/v1/query_range)" in reason
    assert 'sum by (user) (rate(d_total{reason="x",}[5m]))' in reason
    assert "hunter2-pw" not in reason
    assert set(obs.usage) == {"a", "b", "c"}  # usage of a and b still arrived
    assert obs.discards == {}


def test_when_every_query_fails_collect_raises() -> None:
    fake = FakePrometheus(script={"": [httpx.ConnectError("refused")] * 100})
    source = make_source(fake, retries=1, url="http://alice:s3cret-pw@prom:9090")
    with pytest.raises(RetryableSourceError) as caught:
        source.collect([spec("a", USAGE_A), spec("b", USAGE_B)], start=T0, end=T0 + 600)
    message = str(caught.value)
    # The reachability probe fails first: one clear error instead of one per query.
    assert message.startswith("cannot connect")
    assert "http://alice:<redacted>@prom:9090" in message
    assert "s3cret-pw" not in message


def test_when_every_query_is_rejected_the_error_is_permanent() -> None:
    fake = FakePrometheus(script={"": [error_body(400, "bad_data", "nope")] * 100})
    with pytest.raises(PermanentSourceError, match="bad_data"):
        make_source(fake).collect([spec("a", USAGE_A)], start=T0, end=T0 + 600)


@pytest.mark.parametrize(
    ("settings", "secret"),
    [
        ({"bearer_token": "tok-0123456789"}, "tok-0123456789"),
        ({"url": "http://carol:pw-zyx987@prom:9090"}, "pw-zyx987"),
        (
            {"url": "http://carol:pw-zyx987@prom:9090"},
            base64.b64encode(b"carol:pw-zyx987").decode(),
        ),
        ({"headers": {"X-Api-Key": "key-abcdef123"}}, "key-abcdef123"),
    ],
    ids=["bearer", "url-userinfo", "basic-base64", "api-key-header"],
)
def test_credentials_echoed_by_a_server_are_scrubbed_from_messages(
    settings: dict[str, Any], secret: str
) -> None:
    def echo(call: Call) -> httpx.Response:
        return httpx.Response(500, text=f"proxy error, you sent {dict(call.headers)}")

    fake = FakePrometheus(range_answer=echo)
    # Every range query failed: a failed collection, whose message is scrubbed too.
    with pytest.raises(SourceError) as failed:
        make_source(fake, retries=0, **settings).collect(
            [spec("a", USAGE_A)], start=T0, end=T0 + 600
        )
    reason = str(failed.value)
    assert "<redacted>" in reason
    assert secret not in reason


def test_a_secret_at_the_cut_of_a_quoted_body_is_not_half_leaked() -> None:
    secret = "tok-0123456789"
    padding = "x" * 295  # the message quotes 300 characters of the body

    fake = FakePrometheus(range_answer=lambda call: httpx.Response(502, text=padding + secret))
    with pytest.raises(SourceError) as failed:
        make_source(fake, retries=0, bearer_token=secret).collect(
            [spec("a", USAGE_A)], start=T0, end=T0 + 600
        )
    assert secret[:5] not in str(failed.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@prom:9090/x", "http://user:<redacted>@prom:9090/x"),
        ("https://glpat-TOKEN@mimir", "https://<redacted>@mimir"),
        ("http://prom:9090/", "http://prom:9090"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# --- samples and tenants ------------------------------------------------------------------


def test_nan_and_inf_samples_and_missing_points_become_nan() -> None:
    def answer(call: Call) -> httpx.Response:
        start = float(call.form["start"])
        points = [(start, "NaN"), (start + 300, "+Inf"), (start + 600, "-Inf"), (start + 900, "4")]
        return httpx.Response(200, json=matrix([({"user": "tenant-1"}, points)]))

    fake = FakePrometheus(range_answer=answer)
    obs = make_source(fake).collect([spec("a", USAGE_A)], start=T0, end=T0 + 1200)
    row = obs.usage["a"][0]
    assert np.isnan(row[:3]).all()
    assert row[3] == 4.0
    assert np.isnan(row[4])  # no sample at the last grid point


def test_more_than_one_series_per_tenant_is_a_template_bug_reported_per_limit() -> None:
    def answer(call: Call) -> httpx.Response:
        start = float(call.form["start"])
        pods = ("ingester-0", "ingester-1") if "pod" in call.form["query"] else ("",)
        return httpx.Response(
            200,
            json=matrix([({"user": "t", "pod": p}, [(start, "1")]) for p in pods]),
        )

    fake = FakePrometheus(range_answer=answer)
    specs = [spec("a", "sum by (user, pod) (x)"), spec("b", "sum by (user) (y)")]
    obs = make_source(fake).collect(specs, start=T0, end=T0 + 600)
    assert "more than one series for tenant 't'" in obs.unavailable["a"]
    assert "b" not in obs.unavailable


def test_invalid_tenant_ids_are_dropped_and_reported() -> None:
    bad = ["with space", "x" * 151, ".", "..", "__mimir_cluster"]
    fake = FakePrometheus(
        tenants=["tenant-1", *bad],
        overrides=[({"user": "tenant-9!", "limit_name": "a"}, "5")],
    )
    # value_at needs a numeric suffix; give the bad ones one through a custom answer.
    fake.range_answer = lambda call: httpx.Response(
        200,
        json=matrix(
            [({"user": u}, [(float(call.form["start"]), "1")]) for u in fake.tenants]
            + [({"pod": "no-user-label"}, [(float(call.form["start"]), "1")])]
        ),
    )
    source = make_source(fake)
    obs = source.collect([spec("a", USAGE_A)], start=T0, end=T0 + 600)
    assert obs.tenants == ("tenant-1", "tenant-9!")  # tenant-9! only has an override
    assert set(source.last_skipped_tenants) == set(bad)
    assert "reserved" in source.last_skipped_tenants["__mimir_cluster"]
    assert obs.usage["a"].shape == (2, 3)


# --- current limits -----------------------------------------------------------------------


def test_current_limits_come_from_overrides_then_defaults() -> None:
    fake = FakePrometheus(
        tenants=["tenant-1", "tenant-2"],
        overrides=[({"user": "tenant-1", "limit_name": "a"}, "50000")],
        defaults=[({"limit_name": "a"}, "10000"), ({"limit_name": "p"}, "0")],
    )
    obs = make_source(fake).collect(
        [spec("a", USAGE_A), spec("p"), spec("unexported", USAGE_B)], start=T0, end=T0 + 900
    )
    assert obs.current["a"].tolist() == [50000.0, 10000.0]
    assert obs.current_origin["a"] == [ORIGIN_OVERRIDES, ORIGIN_DEFAULTS]
    assert obs.current["p"].tolist() == [0.0, 0.0]
    assert np.isnan(obs.current["unexported"]).all()
    assert obs.current_origin["unexported"] == ["", ""]
    times = {c.form["time"] for c in fake.calls if c.path.endswith(INSTANT)}
    assert times == {"1700000100"}  # at `end`


def test_failed_current_limit_queries_make_the_collection_partial() -> None:
    """Without the limits in force a plan would start from the catalogue defaults: every
    limit is unavailable (no apply), and the usage is still there to show."""
    fake = FakePrometheus(script={"cortex_limits_": [error_body(400, "bad_data", "x")] * 2})
    obs = make_source(fake).collect([spec("a", USAGE_A)], start=T0, end=T0 + 600)
    assert np.isnan(obs.current["a"]).all()
    assert obs.unavailable["a"].startswith("current limits unknown: ")
    assert obs.usage["a"].shape == (3, 3)


def test_the_shipped_catalogue_renders_and_collects() -> None:
    catalogue = load_catalogue("mimir")
    fake = FakePrometheus()
    obs = make_source(fake).collect(list(catalogue.limits.values()), start=T0, end=T0 + 600)
    assert obs.unavailable == {}
    assert all("${" not in c.query for c in fake.calls)
    assert set(obs.current) == set(catalogue.limits)


# --- against a real Prometheus ------------------------------------------------------------


# A fixed past instant (a multiple of 300) keeps the test deterministic. Prometheus counts
# time retention back from its newest block, not from the wall clock, so with no scraped
# data these blocks are kept.
SMOKE_START = int(T0)


def _smoke_metrics() -> str:
    """Two tenants at 10 and 2 samples/s for an hour, scraped every 30 s, in a cluster whose
    name needs escaping; one override, one default."""
    cluster = 'cluster="we\\"ird\\\\"'  # the value is: we"ird\
    lines = ["# TYPE cortex_distributor_received_samples counter"]
    for tenant, per_second in (("tenant-a", 10), ("tenant-b", 2)):
        for i in range(121):
            t = SMOKE_START + 30 * i
            lines.append(
                f'cortex_distributor_received_samples_total{{user="{tenant}",{cluster}}} '
                f"{per_second * 30 * i} {t}"
            )
    lines += [
        "# TYPE cortex_limits_overrides gauge",
        f'cortex_limits_overrides{{user="tenant-a",limit_name="ingestion_rate",{cluster}}} '
        f"50000 {SMOKE_START + 3600}",
        "# TYPE cortex_limits_defaults gauge",
        f'cortex_limits_defaults{{limit_name="ingestion_rate",{cluster}}} '
        f"10000 {SMOKE_START + 3600}",
        "# EOF",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def smoke_prometheus(tmp_path: Path) -> Iterator[PromServer]:
    server = start_prometheus(_smoke_metrics(), tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.prometheus
def test_smoke_against_a_real_prometheus(smoke_prometheus: PromServer) -> None:
    server = smoke_prometheus
    catalogue = load_catalogue("mimir")
    # Two chunks per hour: exercises the joins for real.
    source = PrometheusSource(source_settings(server))
    obs = source.collect(
        [catalogue.limits["ingestion_rate"]], start=SMOKE_START + 600, end=SMOKE_START + 3600
    )
    assert obs.tenants == ("tenant-a", "tenant-b")
    assert obs.timestamps.tolist() == [SMOKE_START + 300 * i for i in range(2, 13)]
    assert obs.unavailable == {}
    np.testing.assert_allclose(obs.usage["ingestion_rate"][0], 10.0)
    np.testing.assert_allclose(obs.usage["ingestion_rate"][1], 2.0)
    np.testing.assert_array_equal(obs.discards["ingestion_rate"], math.nan)  # no discards
    assert obs.current["ingestion_rate"].tolist() == [50000.0, 10000.0]
    assert obs.current_origin["ingestion_rate"] == [ORIGIN_OVERRIDES, ORIGIN_DEFAULTS]

    # Every shipped template, ${rf} included, is PromQL this server accepts.
    everything = source.collect(
        list(catalogue.limits.values()), start=SMOKE_START + 600, end=SMOKE_START + 3600
    )
    assert everything.unavailable == {}

    # However many requests are in flight (adaptive, the default; one; four throughout), the
    # arrays are the same: chunks land in their place whatever order they arrive in.
    for update in ({"max_concurrency": 1}, {"adaptive_concurrency": False}):
        again = PrometheusSource(source_settings(server).model_copy(update=update)).collect(
            list(catalogue.limits.values()), start=SMOKE_START + 600, end=SMOKE_START + 3600
        )
        assert again.tenants == everything.tenants
        for kind in ("usage", "discards", "current"):
            mine, theirs = getattr(again, kind), getattr(everything, kind)
            assert set(mine) == set(theirs)
            for limit in mine:
                np.testing.assert_array_equal(mine[limit], theirs[limit], err_msg=limit)


def source_settings(server: PromServer) -> PrometheusSettings:
    return PrometheusSettings(
        url=server.url, selectors={"cluster": 'we"ird\\'}, step=300, chunk_length=1800
    )


def test_source_errors_form_a_small_hierarchy() -> None:
    assert issubclass(SourceConfigError, PermanentSourceError)
    assert issubclass(PromQLError, PermanentSourceError)
    assert RetryableSourceError("x").retryable and not PermanentSourceError("x").retryable
    assert isinstance(PermanentSourceError("x"), SourceError)


@pytest.mark.parametrize(
    ("url", "headers", "expected"),
    [
        ("http://127.0.0.1:9090", {}, "identity"),
        ("http://localhost:9090", {}, "identity"),
        ("http://[::1]:9090", {}, "identity"),
        ("https://mimir.example.com", {}, "gzip"),
        ("http://10.0.0.7:9090", {}, "gzip"),
        ("http://127.0.0.1:9090", {"Accept-Encoding": "gzip"}, "gzip"),
    ],
)
def test_responses_are_compressed_only_beyond_loopback(
    url: str, headers: dict[str, str], expected: str
) -> None:
    fake = FakePrometheus()
    source = make_source(fake, url=url, headers=headers)
    source.collect([spec("l", USAGE_A)], start=T0, end=T0 + 600)
    sent = {call.headers["accept-encoding"] for call in fake.calls}
    assert len(sent) == 1
    assert (sent.pop() == "identity") == (expected == "identity")
    assert all(("gzip" in c.headers["accept-encoding"]) == (expected == "gzip") for c in fake.calls)
