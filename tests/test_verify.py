"""Reload verification proves that Mimir serves what was written: against a fake Mimir that
re-reads real files, a good write verifies, a broken file keeps the old config and fails
with the reload status and the first mismatched tenant.limit, a slow reload still verifies,
and an unreachable URL fails after the timeout; at the HTTP seam, values are compared the
way Mimir renders them, keys missing from `mode=diff` are read from the full config, polling
is bounded, and secrets never reach the detail."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from mimir_limit_optimizer.catalogue import Catalogue, load_catalogue
from mimir_limit_optimizer.config.service import VerifySettings
from mimir_limit_optimizer.targets.file import FileTarget
from mimir_limit_optimizer.targets.verify import MimirVerifier, VerifyResult, base_units
from tests.fake_mimir import FakeMimir

OLD = "overrides:\n  tenant-a:\n    ingestion_rate: 10000\n"
GOOD = """\
# written by the optimizer
overrides:
  tenant-a:
    ingestion_rate: 50000
    max_global_series_per_user: 1500000
    compactor_blocks_retention_period: 30d
    native_histograms_ingestion_enabled: false
"""
GOOD_VALUES = {
    "tenant-a": {
        "ingestion_rate": 50000.0,
        "max_global_series_per_user": 1_500_000.0,
        "compactor_blocks_retention_period": 30 * 86400.0,
        "native_histograms_ingestion_enabled": 0.0,
    }
}
# `max_series` is not a Mimir limit: Mimir rejects the whole file.
BROKEN = "overrides:\n  tenant-a:\n    ingestion_rate: 70000\n    max_series: 5\n"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture
def overrides(tmp_path: Path) -> Path:
    path = tmp_path / "overrides.yaml"
    path.write_text(OLD)
    return path


def settings(
    url: str, *, timeout: float = 5.0, poll: float = 0.1, **extra: object
) -> VerifySettings:
    return VerifySettings(mimir_url=url, timeout=timeout, poll_interval=poll, **extra)


def write(path: Path, text: str) -> None:
    target = FileTarget(path)
    target.write(text, expected_version=target.read().version)


# -- against the fake Mimir and real files ----------------------------------------------------


def test_good_write_becomes_visible(overrides: Path, catalogue: Catalogue) -> None:
    with FakeMimir([overrides], catalogue, period=0.2) as mimir:
        write(overrides, GOOD)
        started = time.monotonic()
        result = MimirVerifier(settings(mimir.url)).verify(GOOD_VALUES, catalogue)
        elapsed = time.monotonic() - started
    assert result.ok, result.detail
    assert result.reload_successful is True
    assert "serves all 4 expected values" in result.detail
    assert elapsed < 3


def test_broken_file_keeps_old_config_and_fails(overrides: Path, catalogue: Catalogue) -> None:
    with FakeMimir([overrides], catalogue, period=0.1) as mimir:
        write(overrides, GOOD)
        assert MimirVerifier(settings(mimir.url)).verify(GOOD_VALUES, catalogue).ok
        write(overrides, BROKEN)
        started = time.monotonic()
        result = MimirVerifier(settings(mimir.url, timeout=1.0)).verify(
            {"tenant-a": {"ingestion_rate": 70000}}, catalogue
        )
        elapsed = time.monotonic() - started
        assert "max_series" in mimir.last_error
        assert mimir.config["overrides"]["tenant-a"]["ingestion_rate"] == 50000
    assert not result.ok
    assert result.reload_successful is False
    assert "overrides.tenant-a.ingestion_rate is 50000, expected 70000" in result.detail
    assert "last reload FAILED" in result.detail
    assert "within 1 s" in result.detail
    assert 1.0 <= elapsed < 3


def test_slow_reload_still_verifies_within_timeout(overrides: Path, catalogue: Catalogue) -> None:
    with FakeMimir([overrides], catalogue, period=1.0) as mimir:
        write(overrides, GOOD)
        started = time.monotonic()
        result = MimirVerifier(settings(mimir.url, timeout=5.0, poll=0.2)).verify(
            GOOD_VALUES, catalogue
        )
        elapsed = time.monotonic() - started
    assert result.ok, result.detail
    assert elapsed < 3


def test_nothing_listening_fails_after_timeout_naming_the_url(catalogue: Catalogue) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    result = MimirVerifier(settings(url, timeout=0.5, poll=0.1)).verify(GOOD_VALUES, catalogue)
    elapsed = time.monotonic() - started
    assert not result.ok
    assert result.reload_successful is None
    assert f"cannot reach {url}/runtime_config?mode=diff" in result.detail
    assert "ConnectError" in result.detail
    assert 0.5 <= elapsed < 3


def test_files_merge_left_to_right(tmp_path: Path, catalogue: Catalogue) -> None:
    chart = tmp_path / "runtime.yaml"
    chart.write_text(
        "overrides:\n  tenant-a:\n    max_global_series_per_user: 10\n    ingestion_rate: 1\n"
    )
    ours = tmp_path / "overrides.yaml"
    ours.write_text("overrides:\n  tenant-a:\n    ingestion_rate: 2\n")
    with FakeMimir([chart, ours], catalogue, period=0.1) as mimir:
        result = MimirVerifier(settings(mimir.url)).verify(
            {"tenant-a": {"ingestion_rate": 2, "max_global_series_per_user": 10}}, catalogue
        )
    assert result.ok, result.detail


# -- at the HTTP seam -------------------------------------------------------------------------

MockReply = Callable[[httpx.Request], httpx.Response]


class MimirReply:
    """A Mimir answering with fixed bodies; `requests` lists the paths asked for."""

    def __init__(self, diff: str, full: str | None = None, metrics: str | None = None) -> None:
        self.diff, self.full, self.metrics = diff, full, metrics
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url.raw_path, "ascii"))
        if request.url.path == "/metrics":
            return httpx.Response(200, text=self.metrics if self.metrics is not None else RELOAD_OK)
        if request.url.params.get("mode") == "diff":
            return httpx.Response(200, text=self.diff)
        return httpx.Response(200, text=self.full if self.full is not None else self.diff)


RELOAD_OK = "# TYPE x gauge\ncortex_runtime_config_last_reload_successful 1\n"


class FakeTime:
    """A clock that only moves when the verifier sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def verifier(reply: MockReply, fake_time: FakeTime | None = None, **kw: object) -> MimirVerifier:
    fake_time = fake_time or FakeTime()
    options: dict[str, object] = {"timeout": 10.0, "poll": 1.0, **kw}
    url = str(options.pop("url", "http://mimir.test"))
    return MimirVerifier(
        settings(url, **options),  # type: ignore[arg-type]
        transport=httpx.MockTransport(reply),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )


def test_values_compare_as_mimir_renders_them(catalogue: Catalogue) -> None:
    diff = """\
overrides:
  tenant-a:
    compactor_blocks_retention_period: 4w2d
    max_query_lookback: 720h0m0s
    ingestion_rate: 1.5e+06
    max_global_series_per_user: 1500000
    native_histograms_ingestion_enabled: false
  "123":
    max_label_names_per_series: 40
"""
    expected: dict[str, dict[str, float]] = {
        "tenant-a": {
            "compactor_blocks_retention_period": 30 * 86400,
            "max_query_lookback": 30 * 86400,
            "ingestion_rate": 1_500_000,
            "max_global_series_per_user": 1_499_999.2,  # written (rounded up) as 1500000
            "native_histograms_ingestion_enabled": 0,
        },
        "123": {"max_label_names_per_series": 40},
    }
    result = verifier(MimirReply(diff)).verify(expected, catalogue)
    assert result == VerifyResult(True, result.detail, True)


def test_key_absent_from_diff_is_read_from_full_config(catalogue: Catalogue) -> None:
    # ingestion_rate 10000 equals Mimir's default: `mode=diff` leaves it out.
    diff = "overrides:\n  tenant-a:\n    max_global_series_per_user: 200000\n"
    full = (
        "overrides:\n  tenant-a:\n    max_global_series_per_user: 200000\n"
        "    ingestion_rate: 10000\n"
    )
    reply = MimirReply(diff, full)
    expected = {"tenant-a": {"ingestion_rate": 10000, "max_global_series_per_user": 200000}}
    result = verifier(reply).verify(expected, catalogue)
    assert result.ok, result.detail
    assert reply.requests == [
        "/runtime_config?mode=diff",
        "/runtime_config",
        "/metrics",
    ]


def test_mismatch_polls_until_timeout_and_names_the_first_key(catalogue: Catalogue) -> None:
    fake_time = FakeTime()
    reply = MimirReply("overrides:\n  tenant-a:\n    ingestion_rate: 10\n")
    result = verifier(reply, fake_time, timeout=10.0, poll=1.0).verify(
        {"tenant-b": {"ingestion_rate": 5}, "tenant-a": {"ingestion_rate": 10}}, catalogue
    )
    assert not result.ok
    assert "overrides.tenant-b.ingestion_rate: tenant tenant-b has no entry yet" in result.detail
    assert "within 10 s" in result.detail
    assert result.reload_successful is True
    assert sum(fake_time.sleeps) == pytest.approx(10.0)
    assert len(fake_time.sleeps) == 10


def test_a_wrong_value_in_the_diff_is_named_without_reading_the_full_config(
    catalogue: Catalogue,
) -> None:
    reply = MimirReply("overrides:\n  tenant-a:\n    ingestion_rate: 10\n")
    result = verifier(reply, timeout=1.0).verify(
        {"tenant-b": {"ingestion_rate": 5}, "tenant-a": {"ingestion_rate": 20}}, catalogue
    )
    assert "overrides.tenant-a.ingestion_rate is 10, expected 20" in result.detail
    assert "/runtime_config" not in reply.requests


def test_live_values_with_a_failed_reload_are_not_ok(catalogue: Catalogue) -> None:
    reply = MimirReply(
        "overrides:\n  t:\n    ingestion_rate: 5\n",
        metrics="cortex_runtime_config_last_reload_successful 0\n",
    )
    result = verifier(reply, timeout=2.0).verify({"t": {"ingestion_rate": 5}}, catalogue)
    assert not result.ok
    assert result.reload_successful is False
    assert "the values are live but the last reload failed" in result.detail


def test_missing_reload_metric_is_unknown_not_a_failure(catalogue: Catalogue) -> None:
    reply = MimirReply("overrides:\n  t:\n    ingestion_rate: 5\n", metrics="up 1\n")
    result = verifier(reply).verify({"t": {"ingestion_rate": 5}}, catalogue)
    assert result.ok
    assert result.reload_successful is None
    assert "status unknown" in result.detail


def test_connection_errors_are_retried(catalogue: Catalogue) -> None:
    calls = {"n": 0}
    good = MimirReply("overrides:\n  t:\n    ingestion_rate: 5\n")

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise httpx.ConnectError("connection refused", request=request)
        return good(request)

    result = verifier(flaky).verify({"t": {"ingestion_rate": 5}}, catalogue)
    assert result.ok, result.detail


def test_secrets_never_reach_the_detail(catalogue: Catalogue) -> None:
    token = "Bearer s3cr3t-t0ken-value"

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text=f"bad credentials: {request.headers['Authorization']}")

    fake_time = FakeTime()
    result = verifier(
        echo,
        fake_time,
        url="http://admin:pa55w0rd@mimir.test/prefix/",
        headers={"Authorization": token, "X-Scope-OrgID": "ops"},
    ).verify({"t": {"ingestion_rate": 5}}, catalogue)
    assert not result.ok
    assert "HTTP 401 from http://admin:***@mimir.test/prefix/runtime_config" in result.detail
    assert "check verify.mimirUrl and verify.headers" in result.detail
    assert "s3cr3t" not in result.detail and "pa55w0rd" not in result.detail
    assert fake_time.sleeps == []  # a wrong URL or credential is not waited out


def test_headers_are_sent(catalogue: Catalogue) -> None:
    seen: list[str | None] = []
    good = MimirReply("overrides:\n  t:\n    ingestion_rate: 5\n")

    def check(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("X-Scope-OrgID"))
        return good(request)

    verifier(check, headers={"X-Scope-OrgID": "ops"}).verify(
        {"t": {"ingestion_rate": 5}}, catalogue
    )
    assert seen and set(seen) == {"ops"}


def test_empty_url_is_refused() -> None:
    with pytest.raises(ValueError, match="mimirUrl is empty"):
        MimirVerifier(VerifySettings())


@pytest.mark.parametrize(
    ("raw", "limit", "expected"),
    [
        ("30d", "compactor_blocks_retention_period", 2_592_000.0),
        ("1h30m", "max_query_lookback", 5400.0),
        ("1.5s", "max_query_lookback", 1.5),
        (0, "max_query_lookback", None),  # Mimir renders durations as strings
        (True, "native_histograms_ingestion_enabled", 1.0),
        ("off", "native_histograms_ingestion_enabled", 0.0),
        ("2.5", "ingestion_rate", 2.5),
        ("lots", "ingestion_rate", None),
    ],
)
def test_base_units(raw: object, limit: str, expected: float | None, catalogue: Catalogue) -> None:
    assert base_units(raw, catalogue.limits[limit]) == expected


@pytest.fixture(autouse=True)
def _bounded(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test here finishes in seconds: a hang is a bug, not a slow machine."""
    started = time.monotonic()
    yield
    assert time.monotonic() - started < 10, f"{request.node.name} took too long"
