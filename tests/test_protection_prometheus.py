"""Protection against a REAL Prometheus holding a blast scenario (promtool backfill of
`write_fast_openmetrics`): the fast source reads the same values as the synthetic source
(signals, limits, pressure, components down, reload failures) with one instant query per
signal whatever the tenant count; and driven by it, Protection clamps only the blasting
tenant within one fast-loop interval of detection, keeps floors, writes a file Mimir accepts
and recovers to the original file once the blast is over."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mimir_limit_optimizer.config.models import PrometheusSettings
from mimir_limit_optimizer.engine.overrides import validate_overrides
from mimir_limit_optimizer.sources.fast_signals import PrometheusFastSource
from mimir_limit_optimizer.sources.fast_synthetic import (
    Blast,
    FastScenario,
    PressureEpisode,
    SyntheticFastSource,
)
from mimir_limit_optimizer.sources.fast_synthetic_openmetrics import write_fast_openmetrics
from tests.promserver import PromServer, start_prometheus
from tests.test_protection_controller import (
    CATALOGUE,
    ORIGINAL,
    Rig,
    _original_values,
    config,
    scenario,
)

pytestmark = pytest.mark.prometheus

SCRAPE = 15.0


@dataclass
class Loaded:
    server: PromServer
    fast: FastScenario
    end: float
    blast: Blast
    episode: PressureEpisode


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    from tests.conftest import require_binary

    require_binary("prometheus", "apt-get install -y prometheus")
    require_binary("promtool", "apt-get install -y prometheus")
    end = math.floor(time.time() / SCRAPE) * SCRAPE - 60.0
    blast = Blast(
        "gamma", end - 40 * 60, end - 25 * 60, series_factor=4.0, ingestion_factor=3.0, ramp=15.0
    )
    episode = PressureEpisode(
        end - 100 * 60,
        end - 95 * 60,
        pressure={"ingester_memory": 97.0, "distributor_cpu": 91.0},
        components_down={"mimir/ingester": 1},
        reload_failed=True,
    )
    fast = scenario(blasts=(blast,), episodes=(episode,))
    text = io.StringIO()
    write_fast_openmetrics(fast, text, start=end - 2 * 3600, end=end, scrape_interval=SCRAPE)
    server = start_prometheus(text.getvalue(), tmp_path_factory.mktemp("prom-fast"))
    yield Loaded(server, fast, end, blast, episode)
    server.stop()


def source_for(loaded: Loaded) -> PrometheusFastSource:
    cfg = config()
    return PrometheusFastSource(
        PrometheusSettings(url=loaded.server.url), cfg.circuit_breaker.fast_loop, CATALOGUE
    )


def test_prometheus_reads_what_the_synthetic_source_returns(loaded: Loaded) -> None:
    prom = source_for(loaded)
    synthetic = SyntheticFastSource(loaded.fast)
    for at in (loaded.blast.start - 300, loaded.blast.start + 300, loaded.episode.start + 120):
        got, want = prom.read(at), synthetic.read(at)
        assert sorted(got.tenants) == sorted(want.tenants)
        order = [got.tenants.index(t) for t in want.tenants]  # Prometheus sorts tenants
        for name, values in want.signals.items():
            assert np.allclose(got.signal(name)[order], values, rtol=0.01, atol=1e-6), (name, at)
        for limit in ("ingestion_rate", "ingestion_burst_size", "max_global_series_per_user"):
            assert np.array_equal(got.limits[limit][order], want.limits[limit]), limit
        for resource, value in want.pressure.items():
            assert got.pressure[resource] == pytest.approx(value, rel=0.01), (resource, at)
        assert got.components_down == want.components_down
        assert got.reload_ok is want.reload_ok
        assert got.unavailable == {}
    warm = prom.read(loaded.blast.start - 60, warmup=3600.0, percentile=95.0)
    wanted = synthetic.read(loaded.blast.start - 60, warmup=3600.0, percentile=95.0)
    order = [warm.tenants.index(t) for t in wanted.tenants]
    for name, values in wanted.warmup.items():
        assert np.allclose(warm.warmup[name][order], values, rtol=0.02), name


def test_one_instant_query_per_signal_whatever_the_tenant_count(loaded: Loaded) -> None:
    prom = source_for(loaded)
    before = loaded.server.requests_total("/api/v1/query")
    prom.read(loaded.blast.start)
    sent = loaded.server.requests_total("/api/v1/query") - before
    assert (
        sent == prom.query_count == 16
    )  # 6 tenant signals, 6 pressure ratios, up, reload, 2 limits


def test_protection_driven_by_prometheus_clamps_the_blast_and_recovers(
    loaded: Loaded, tmp_path: Path
) -> None:
    rig = Rig(tmp_path, loaded.fast, config())
    prom = source_for(loaded)
    rig.protection.source_factory = lambda _c, _n: prom
    start = loaded.blast.start
    rig.now = start - 300
    rig.run(start + 120)
    opened = rig.events("circuit_breaker_open")
    assert {e.tenant for e in opened} == {"gamma"}
    first = min(e.timestamp for e in opened)
    # Series (a created - removed level) move at the first scrape after the start; 30 s
    # detection window; opened at that tick: at most one interval after detection.
    assert first <= start + SCRAPE + 30 + 15
    clamped = rig.events("clamp_limits")
    assert clamped and min(e.timestamp for e in clamped) == first
    written = rig.path.read_text()
    assert validate_overrides(written, CATALOGUE, source_name="f") == []
    now, before = rig.values(), _original_values()
    assert {t for (t, limit), v in now.items() if before.get((t, limit)) != v} == {"gamma"}
    assert now[("gamma", "ingestion_rate")] >= 15_000.0  # the configured floor
    assert now[("gamma", "max_global_series_per_user")] < 1_000_000.0
    rig.run(loaded.blast.end + 60, every=30.0)
    rig.run(loaded.blast.end + 600, every=60.0)
    assert rig.path.read_text() == ORIGINAL
    assert {e.tenant for e in rig.events("circuit_breaker_closed")} == {"gamma"}
