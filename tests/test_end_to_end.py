"""End to end against a real Prometheus on 127.0.0.1 loaded (promtool backfill) with a
synthetic Mimir cluster: the optimizer's recommendations divide ingester series by the
replication factor, see a throttled tenant's real demand through its discards, call a new
tenant "undefined", agree with the in-process synthetic source, and cost the same number of
queries for 10 and for 100 tenants. Then the `mlo` command itself, as a user runs it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.models import Config, PrometheusSettings, SyntheticSettings
from mimir_limit_optimizer.controller.oneshot import run_cycle
from mimir_limit_optimizer.engine.recommend import enabled_limits
from mimir_limit_optimizer.engine.results import Status
from mimir_limit_optimizer.sources.prometheus import PrometheusSource
from mimir_limit_optimizer.sources.synthetic import (
    SyntheticCluster,
    SyntheticSource,
    generate_cluster,
    write_openmetrics,
)
from tests.promserver import PromServer, start_prometheus

pytestmark = pytest.mark.prometheus

CATALOGUE = load_catalogue()
HISTORY = 2 * 86400.0
STEP = 300.0
# A config a user would write for this cluster: 2 days of history, a day required.
CONFIG = {
    "source": {"kind": "prometheus"},
    "trendAnalysis": {"analysisWindow": "2d", "minHistory": "1d"},
}


def _load(cluster: SyntheticCluster, workdir: Path) -> PromServer:
    text = io.StringIO()
    write_openmetrics(cluster, text, scrape_interval=150)
    return start_prometheus(text.getvalue(), workdir)


class Loaded:
    def __init__(self, server: PromServer, cluster: SyntheticCluster, end: float) -> None:
        self.server, self.cluster, self.end = server, cluster, end


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    from tests.conftest import require_binary

    require_binary("prometheus", "apt-get install -y prometheus")
    require_binary("promtool", "apt-get install -y prometheus")
    end = float(int(time.time() // STEP * STEP) - STEP)  # step-aligned, shortly before now
    settings = SyntheticSettings(tenant_count=12, seed=11, history=HISTORY, step=STEP)
    # RF 2, not the fallback 3: the series division must come from the exported gauge.
    cluster = generate_cluster(settings, end=end, replication_factor=2)
    server = _load(cluster, tmp_path_factory.mktemp("prom"))
    yield Loaded(server, cluster, end)
    server.stop()


def _config(url: str) -> Config:
    return Config.model_validate(
        {**CONFIG, "source": {"kind": "prometheus", "prometheus": {"url": url}}}
    )


def _cycle(loaded: Loaded):
    config = _config(loaded.server.url)
    source = PrometheusSource(config.source.prometheus)
    return run_cycle(config, CATALOGUE, source, now=loaded.end)


def _p95(values: np.ndarray) -> float:
    return float(np.nanpercentile(values, 95))


def test_series_are_divided_by_the_replication_factor(loaded: Loaded) -> None:
    cluster = loaded.cluster
    recs = _cycle(loaded).recommendations
    series = recs.results["max_global_series_per_user"]
    row = recs.tenants.index("tenant-001")
    truth = cluster.series[cluster.index("tenant-001")]  # one replica's worth
    assert series.p95[row] == pytest.approx(_p95(truth), rel=0.02)
    # The gauge said 2; the configured fallback (3) would give 2/3 of the truth.
    assert cluster.replication_factor == 2


def test_a_throttled_tenant_is_recommended_its_real_demand(loaded: Loaded) -> None:
    cluster = loaded.cluster
    cycle = _cycle(loaded)
    result = cycle.recommendations.results["ingestion_rate"]
    row = cycle.recommendations.tenants.index("throttled-001")
    k = cluster.index("throttled-001")
    limit = float(cluster.limits["ingestion_rate"][k])
    true_demand = cluster.samples_demand[k] * (1 + cluster.exemplar_share[k])
    assert result.current[row] == pytest.approx(limit)
    assert result.maximum[row] <= limit * 1.01  # accepted usage never passes the limit...
    assert result.demand[row] == pytest.approx(_p95(true_demand), rel=0.05)  # ...demand does
    assert result.recommended[row] > limit
    assert any("discarded" in reason for reason in result.reasons(row))


def test_a_new_tenant_is_undefined_with_its_reason(loaded: Loaded) -> None:
    recs = _cycle(loaded).recommendations
    row = recs.tenants.index("new-001")
    result = recs.results["ingestion_rate"]
    assert result.status_of(row) is Status.UNDEFINED
    assert "history" in result.reasons(row)[0]
    assert "minHistory" in result.reasons(row)[0]


def test_prometheus_and_the_in_process_synthetic_source_agree(loaded: Loaded) -> None:
    config = _config(loaded.server.url)
    via_prometheus = _cycle(loaded).recommendations
    settings = SyntheticSettings(tenant_count=12, seed=11, history=HISTORY, step=STEP)
    local = SyntheticSource(settings, end=loaded.end, replication_factor=2)
    in_process = run_cycle(config, CATALOGUE, local, now=loaded.end).recommendations
    assert set(via_prometheus.tenants) == set(in_process.tenants)
    for name in ("ingestion_rate", "max_global_series_per_user", "ingestion_burst_size"):
        ours = via_prometheus.results[name]
        theirs = in_process.results[name]
        for tenant in in_process.tenants:
            a = ours.recommended[via_prometheus.tenants.index(tenant)]
            b = theirs.recommended[in_process.tenants.index(tenant)]
            assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=0.02), (name, tenant)


def _queries(server: PromServer) -> float:
    return server.requests_total("/api/v1/query_range") + server.requests_total("/api/v1/query")


def test_query_count_does_not_grow_with_tenants(tmp_path: Path) -> None:
    end = float(int(time.time() // STEP * STEP) - STEP)
    counts = {}
    for tenants in (10, 100):
        settings = SyntheticSettings(tenant_count=tenants, seed=3, history=6 * 3600.0, step=STEP)
        cluster = generate_cluster(settings, end=end)
        server = _load(cluster, tmp_path / str(tenants))
        try:
            config = Config.model_validate(
                {
                    "trendAnalysis": {"analysisWindow": "6h", "minHistory": "1h"},
                    "source": {"kind": "prometheus", "prometheus": {"chunkLength": "2h"}},
                }
            )
            specs = enabled_limits(config, CATALOGUE)
            before = _queries(server)
            source = PrometheusSource(PrometheusSettings(url=server.url, chunk_length=7200))
            obs = source.collect(specs, start=end - 6 * 3600.0, end=end)
            counts[tenants] = _queries(server) - before
            assert len(obs.tenants) == tenants
        finally:
            server.stop()
    assert counts[10] == counts[100]
    assert counts[10] >= 3 * 3  # several signals x 3 chunks of 2h: real queries were made


# --- the command line, as a user runs it -------------------------------------------------


def mlo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mimir_limit_optimizer.cli", *args]
    full_env = {k: v for k, v in os.environ.items() if k not in ("MODE", "MLO_CONFIG")}
    full_env.update(env or {})
    return subprocess.run(
        command, check=False, capture_output=True, text=True, env=full_env, timeout=120
    )


def test_cli_recommend_json_against_prometheus(loaded: Loaded, tmp_path: Path) -> None:
    config = tmp_path / "mlo.yaml"
    config.write_text("trendAnalysis:\n  analysisWindow: 2d\n  minHistory: 1d\n")
    done = mlo("recommend", "--config", str(config), "--prometheus-url", loaded.server.url,
               "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert {"generated_at", "source", "window", "recommendations"} <= set(document)
    assert loaded.server.url in document["source"]
    rows = {(r["tenant"], r["limit"]): r for r in document["recommendations"]}
    throttled = rows[("throttled-001", "ingestion_rate")]
    assert throttled["status"] == "change"
    assert throttled["recommended"] > throttled["current"]
    assert set(throttled["usage"]) == {"p50", "p95", "p99", "max"}
    assert 0 < throttled["confidence"] <= 1
    new = rows[("new-001", "ingestion_rate")]
    assert new["status"] == "undefined" and new["recommended"] is None and new["reasons"]


def test_cli_current_limits_come_from_the_overrides_file(loaded: Loaded, tmp_path: Path) -> None:
    overrides = tmp_path / "runtime.yaml"
    overrides.write_text("overrides:\n  tenant-001:\n    ingestion_rate: 123456\n")
    config = tmp_path / "mlo.yaml"
    config.write_text("trendAnalysis:\n  analysisWindow: 2d\n  minHistory: 1d\n")
    done = mlo("recommend", "--config", str(config), "--prometheus-url", loaded.server.url,
               "--overrides-file", str(overrides), "--format", "json", "--limits",
               "ingestion_rate", "--tenants", "tenant-00*")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["recommendations"]
    assert {r["tenant"] for r in rows} <= {f"tenant-00{i}" for i in range(10)}
    assert {r["limit"] for r in rows} == {"ingestion_rate"}
    assert next(r for r in rows if r["tenant"] == "tenant-001")["current"] == 123456
    assert overrides.read_text() == "overrides:\n  tenant-001:\n    ingestion_rate: 123456\n"


def test_cli_unreachable_prometheus_names_the_url_and_hides_credentials(tmp_path: Path) -> None:
    config = tmp_path / "mlo.yaml"
    config.write_text("source:\n  prometheus:\n    retries: 0\n")  # fail fast: nobody listens
    done = mlo("recommend", "--config", str(config), "--prometheus-url",
               "http://admin:s3cret@127.0.0.1:9", "--format", "json")  # fmt: skip
    assert done.returncode == 1
    assert "127.0.0.1:9" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout
    assert "vector(1)" in done.stderr or "cortex_" in done.stderr  # the failing query


def test_cli_embedded_default_needs_no_configuration(tmp_path: Path) -> None:
    done = mlo("recommend", "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["source"].startswith("synthetic cluster")
    statuses = {r["status"] for r in document["recommendations"]}
    assert statuses == {"change", "unchanged", "undefined"}


def test_cli_bad_config_is_rejected_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("mode: dry-run\ntrendAnalysis:\n  percentil: 95\n")
    done = mlo("recommend", "--config", str(config))
    assert done.returncode == 2
    assert f"{config}:3" in done.stderr
    assert "percentile" in done.stderr


def test_cli_validate_good_and_broken_files(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("overrides:\n  tenant-a:\n    ingestion_rate: 50000\n")
    assert mlo("validate", str(good)).returncode == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "overrides:\n  tenant-a:\n    ingestion_rate: 50000\n    max_samples_per_query: 10\n"
        "    max_global_series_per_user: lots\n"
    )
    done = mlo("validate", str(broken))
    assert done.returncode == 1
    assert f"{broken}:4" in done.stdout and "max_samples_per_query" in done.stdout
    assert f"{broken}:5" in done.stdout


def test_cli_plan_lists_changes_and_writes_nothing(loaded: Loaded, tmp_path: Path) -> None:
    overrides = tmp_path / "runtime.yaml"
    text = "# hand-written\noverrides:\n  throttled-001:\n    ingestion_rate: 100\n"
    overrides.write_text(text)
    config = tmp_path / "mlo.yaml"
    config.write_text("trendAnalysis:\n  analysisWindow: 2d\n  minHistory: 1d\n")
    done = mlo("plan", "--config", str(config), "--prometheus-url", loaded.server.url,
               "--overrides-file", str(overrides), "--limits", "ingestion_rate")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "throttled-001" in done.stdout
    assert "ingestion_rate: 100 samples/s ->" in done.stdout
    assert overrides.read_text() == text


def test_cli_no_matching_tenant_says_so(tmp_path: Path) -> None:
    done = mlo("recommend", "--tenants", "nobody-*", "--format", "json")
    assert done.returncode == 1
    assert "no tenant matches --tenants" in done.stderr


def test_cli_missing_or_malformed_overrides_file_is_an_error(tmp_path: Path) -> None:
    missing = mlo("plan", "--overrides-file", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("overrides:\n  tenant-001:\n    ingestion_rate: [1, 2]\n")
    done = mlo("plan", "--overrides-file", str(bad))
    assert done.returncode == 2 and f"{bad}" in done.stderr and ":3" in done.stderr
    assert bad.read_text() == "overrides:\n  tenant-001:\n    ingestion_rate: [1, 2]\n"


def test_cli_plan_as_patch_and_as_file_for_gitops(tmp_path: Path) -> None:
    overrides = tmp_path / "runtime.yaml"
    text = "# keep me\noverrides:\n  tenant-001:\n    max_queriers_per_tenant: 4\n"
    overrides.write_text(text)
    full = mlo("plan", "--overrides-file", str(overrides), "--format", "file")
    assert full.returncode == 0, full.stderr
    assert full.stdout.startswith("# keep me\n") and "max_queriers_per_tenant: 4" in full.stdout
    checked = tmp_path / "rendered.yaml"
    checked.write_text(full.stdout)
    assert mlo("validate", str(checked)).returncode == 0
    patch = mlo("plan", "--overrides-file", str(overrides), "--format", "patch")
    assert patch.returncode == 0
    assert patch.stdout.startswith("--- a/") and "\n+++ b/" in patch.stdout
    assert any(line.startswith("+    ingestion_rate:") for line in patch.stdout.splitlines())
    assert overrides.read_text() == text  # plan never writes


def test_cli_limits_csv_has_one_field_per_column() -> None:
    import csv

    done = mlo("limits", "--format", "csv")
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert len(rows) > 30
    assert all(len(row) == len(rows[0]) for row in rows)
    assert rows[1][0] == "ingestion_rate"


def test_cli_table_to_a_file_is_a_table(tmp_path: Path) -> None:
    out = tmp_path / "recs.txt"
    done = mlo("recommend", "--limits", "ingestion_rate", "--output", str(out))
    assert done.returncode == 0
    text = out.read_text()
    assert "Recommended limits" in text and "throttled-001" in text and "{" not in text[:200]


class _SlowStart:
    """A loopback HTTP proxy in front of Prometheus that holds its first request back for
    `delay` seconds: a collection through it takes longer than the two seconds after which
    progress is shown, however fast the machine (a lower bound, never a timing assertion)."""

    def __init__(self, upstream: str, delay: float) -> None:
        import http.server
        import threading

        import httpx

        held = threading.Event()
        client = httpx.Client(base_url=upstream, timeout=60)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not held.is_set():
                    held.set()
                    time.sleep(delay)
                answer = client.post(
                    self.path,
                    content=body,
                    headers={"Content-Type": self.headers.get("Content-Type", "")},
                )
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", ""))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        self._client = client

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._client.close()


@pytest.mark.parametrize("stderr", ["pipe", "terminal"])
def test_cli_recommend_shows_progress_of_a_long_collection(
    loaded: Loaded, tmp_path: Path, stderr: str
) -> None:
    import pty
    import threading

    config = tmp_path / "mlo.yaml"
    config.write_text("trendAnalysis:\n  analysisWindow: 2d\n  minHistory: 1d\n")
    proxy = _SlowStart(loaded.server.url, delay=2.5)
    command = [sys.executable, "-m", "mimir_limit_optimizer.cli", "recommend", "--config",
               str(config), "--prometheus-url", proxy.url, "--format", "json"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("MODE", "MLO_CONFIG")}
    try:
        if stderr == "pipe":
            done = subprocess.run(
                command, check=False, capture_output=True, text=True, env=env, timeout=120
            )
            shown = done.stderr
        else:
            # stderr on a pseudo-terminal, as in an interactive shell; stdout stays a pipe.
            leader, follower = pty.openpty()
            chunks: list[bytes] = []

            def drain() -> None:
                while True:
                    try:
                        data = os.read(leader, 65536)
                    except OSError:  # the follower side closed
                        return
                    if not data:
                        return
                    chunks.append(data)

            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
            terminal = {**env, "TERM": "xterm-256color", "COLUMNS": "120"}
            with subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=follower, env=terminal, text=True
            ) as process:
                os.close(follower)
                stdout, _ = process.communicate(timeout=120)
            reader.join(timeout=10)
            os.close(leader)
            done = subprocess.CompletedProcess(command, process.returncode, stdout, "")
            shown = b"".join(chunks).decode(errors="replace")
    finally:
        proxy.close()
    assert done.returncode == 0, shown
    assert json.loads(done.stdout)["recommendations"]  # the collection itself succeeded
    if stderr == "pipe":
        lines = [line for line in shown.splitlines() if line.startswith("querying prometheus")]
        assert lines, shown
        assert "(100%)" in lines[-1]  # the final count once anything was shown
    else:
        assert "querying prometheus" in shown
        assert "━" in shown  # Rich's bar, drawn on the terminal
        assert "(100%)" not in shown  # no log lines on a terminal
