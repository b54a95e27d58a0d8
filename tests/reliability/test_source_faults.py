"""A Prometheus in every fault mode: `run --once --mode prod` never applies from data it
should not trust (docs/reliability.md, items 3, 4, 9, 10), and says so in the audit log and
its exit status."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mimir_limit_optimizer.alerting import Alert
from mimir_limit_optimizer.alerting.model import AlertStatus
from mimir_limit_optimizer.controller.config_provider import ConfigProvider
from mimir_limit_optimizer.controller.service import Service
from tests.reliability.fakeprom import FakePrometheus
from tests.reliability.harness import CATALOGUE, Workdir, run_once, store_view, workdir

# t-busy uses 50K samples/s under a 20K limit (the optimizer raises it); t-idle uses 1K under
# 20K (lowered by at most 10% a cycle); t-exported is only in the overrides exporter (60K).
USAGE = {"t-busy": 50_000.0, "t-idle": 1_000.0, "t-exported": 50_000.0}
EXPORTED = {"t-exported": {"ingestion_rate": 60_000.0}}
OVERRIDES = (
    "overrides:\n  t-busy:\n    ingestion_rate: 20000\n  t-idle:\n    ingestion_rate: 20000\n"
)
SETTINGS = """\
mode: prod
dataDir: {data}
source:
  kind: prometheus
  prometheus:
    url: URL
    retries: 0
    timeout: 2s
target:
  path: {target}
dynamicLimits:
  enabledLimits: [ingestion_rate]
trendAnalysis:
  analysisWindow: 6h
  minHistory: 1h
server:
  enabled: false
"""


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    fake = FakePrometheus(
        USAGE, overrides=EXPORTED, defaults={"ingestion_rate": 10_000.0}, delay=2.5
    )
    yield fake
    fake.stop()


def setup(tmp_path: Path, prom: FakePrometheus) -> Workdir:
    return workdir(tmp_path, SETTINGS.replace("URL", prom.url), OVERRIDES)


def test_healthy_prometheus_applies(tmp_path: Path, prom: FakePrometheus) -> None:
    """The control: with good data the same setup does write, so the fault tests below can
    fail."""
    work = setup(tmp_path, prom)
    assert run_once(work) == 0
    written = work.target.read_text()
    assert "t-busy:\n    ingestion_rate: 40000" in written  # +100% per cycle at most
    view = store_view(work.store_url, work.target)
    [apply] = view.applies()
    updates = [e for e in view.audit if e.action == "update_limits"]
    assert {e.details["revision"] for e in updates} == {apply.id}
    assert not view.open_intents


FAILED = ["http_500", "timeout", "malformed", "wrong_shape", "range_fail", "empty"]


@pytest.mark.parametrize("mode", FAILED)
def test_a_failed_collection_applies_nothing(
    tmp_path: Path, prom: FakePrometheus, mode: str
) -> None:
    """Every range query failing (item 9) or no Mimir series at all (item 10) is a failed
    collection: error audit, non-zero exit, nothing written."""
    work = setup(tmp_path, prom)
    prom.mode = mode
    assert run_once(work) == 1
    assert work.target.read_text() == OVERRIDES
    view = store_view(work.store_url, work.target)
    assert view.revisions == []
    failed = [e for e in view.audit if e.action == "collection_failed"]
    assert failed and failed[0].level == "error"
    if mode == "empty":  # the same message as `mlo recommend`
        assert "returned no tenant (no series with a `user` label)" in failed[0].details["error"]


def test_prometheus_down_applies_nothing(tmp_path: Path, prom: FakePrometheus) -> None:
    work = setup(tmp_path, prom)
    prom.stop()
    assert run_once(work) == 1
    assert work.target.read_text() == OVERRIDES
    assert "collection_failed" in store_view(work.store_url, work.target).actions()


def test_failed_current_limit_queries_apply_nothing(tmp_path: Path, prom: FakePrometheus) -> None:
    """Item 3: without the limits in force, t-exported's 60K would be taken for the catalogue
    default (10K) and cut; nothing is applied, and the audit says why."""
    work = setup(tmp_path, prom)
    prom.mode = "instant_fail"
    assert run_once(work) == 0  # a partial collection: the cycle ran, applied nothing
    assert work.target.read_text() == OVERRIDES
    view = store_view(work.store_url, work.target)
    assert view.applies() == []
    partial = [e for e in view.audit if e.action == "collection_partial"]
    assert partial and "current limits unknown" in str(partial[0].details["unavailable"])


@pytest.mark.parametrize("mode", ["negative", "inf"])
def test_invalid_values_mark_the_tenant_incomplete(
    tmp_path: Path, prom: FakePrometheus, mode: str
) -> None:
    """Item 4: -50000 samples/s (or +Inf) is not demand. The tenant gets no change, with the
    reason; the others are planned as usual."""
    work = setup(tmp_path, prom)
    prom.mode, prom.bad_tenant = mode, "t-idle"
    assert run_once(work) == 0
    written = work.target.read_text()
    assert "t-idle:\n    ingestion_rate: 20000" in written  # not lowered
    assert "t-busy:\n    ingestion_rate: 40000" in written  # the healthy tenant still moves
    view = store_view(work.store_url, work.target)
    assert all(e.tenant != "t-idle" for e in view.audit if e.action == "update_limits")


def test_a_missing_last_hour_is_stale_data(tmp_path: Path, prom: FakePrometheus) -> None:
    """No point for any tenant in the last hour: scrapes or remote-write stopped; planning
    from older data would ignore whatever happened since. Nothing is applied."""
    work = setup(tmp_path, prom)
    prom.mode = "missing_last_hour"
    assert run_once(work) == 0  # partial: the reasons are in the audit log
    assert work.target.read_text() == OVERRIDES
    view = store_view(work.store_url, work.target)
    assert view.applies() == []
    partial = [e for e in view.audit if e.action == "collection_partial"]
    assert partial and "stale data" in str(partial[0].details["unavailable"])


@pytest.mark.parametrize("mode", ["nan", "partial_tenants"])
def test_gaps_never_lower_a_limit_on_missing_data(
    tmp_path: Path, prom: FakePrometheus, mode: str
) -> None:
    """NaN samples and missing tenants are gaps, not zero usage: a tenant without data keeps
    its limit."""
    work = setup(tmp_path, prom)
    prom.mode, prom.bad_tenant = mode, "t-busy"
    assert run_once(work) == 0
    written = work.target.read_text()
    assert "ingestion_rate: 0" not in written

    def limit(tenant: str) -> float:
        return float(written.split(f"{tenant}:\n    ingestion_rate: ")[1].split("\n")[0])

    assert limit("t-busy") >= 20_000, written  # the tenant with gaps is never lowered
    # The healthy idle tenant may be lowered (in larger steps when safe), never below its use.
    assert USAGE["t-idle"] < limit("t-idle") <= 20_000, written


@pytest.mark.parametrize("mode", ["range_fail", "empty"])
def test_a_failed_collection_is_not_ready_and_alerts(
    tmp_path: Path, prom: FakePrometheus, mode: str
) -> None:
    """Items 9 and 10 as `mlo run` shows them: /readyz not ready, a collection alert."""
    work = setup(tmp_path, prom)
    provider = ConfigProvider(work.config, env={}, cli={}, catalogue=CATALOGUE)
    service = Service(provider, CATALOGUE, logger=logging.getLogger("faults"))
    alerts: list[Alert] = []
    service.alerting.emit = alerts.append  # type: ignore[method-assign]
    try:
        assert service.cycle().ok  # ready first, on good data
        assert service.health.readyz(time.time())[0]
        prom.mode = mode
        assert not service.cycle().ok
        ready, body = service.health.readyz(time.time())
        assert not ready and "source unreachable" in body["reasons"][0]
        firing = [a for a in alerts if a.type == "collection_failed"]
        assert firing and firing[-1].status is AlertStatus.FIRING
    finally:
        service.store.close()
