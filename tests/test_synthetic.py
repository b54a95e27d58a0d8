"""The synthetic Mimir cluster is deterministic, its archetypes behave as named (throttled
tenants are clipped at their ingestion_rate with the rest discarded, blasts hit the series
limit, new tenants are absent before they appear), and `SyntheticSource.collect` returns
exactly what the catalogue's PromQL computes over the cluster's OpenMetrics rendering in a
REAL Prometheus (which also proves the replication-factor deduplication)."""

from __future__ import annotations

import io
import re
import time
from typing import Any

import httpx
import numpy as np
import pytest

from mimir_limit_optimizer.catalogue import LimitSpec, LimitType, SignalKind, load_catalogue
from mimir_limit_optimizer.config.models import SyntheticSettings
from mimir_limit_optimizer.engine.usage import FloatArray
from mimir_limit_optimizer.sources.synthetic import (
    SyntheticCluster,
    SyntheticSource,
    generate_cluster,
    write_openmetrics,
)
from mimir_limit_optimizer.sources.synthetic_model import DISCARD_REASONS
from mimir_limit_optimizer.sources.synthetic_openmetrics import EMITTED_METRICS
from tests.promserver import PromServer

END = 1_800_000_000.0  # a fixed "now" for pure tests
# Mimir's tenant id rules: at most 150 of [0-9a-zA-Z!-_.*'()], not "." / ".." / __mimir_cluster.
TENANT_ID = re.compile(r"^[0-9a-zA-Z!\-_.*'()]{1,150}$")
RF_EXPR = "scalar(max(cortex_distributor_replication_factor) or vector(3))"


def _cluster(count: int = 24, seed: int = 42, history: float = 7 * 86400.0) -> SyntheticCluster:
    return generate_cluster(
        SyntheticSettings(tenant_count=count, seed=seed, history=history, step=300), end=END
    )


def _arrays(cluster: SyntheticCluster) -> dict[str, Any]:
    arrays: dict[str, Any] = {
        name: getattr(cluster, name)
        for name in (
            "timestamps",
            "samples_demand",
            "samples_accepted",
            "series_demand",
            "series",
            "requests",
            "exemplars_received",
            "exemplars_stored",
            "metadata",
            "first_index",
        )
    }
    arrays.update({f"discards {k}": v for k, v in cluster.discards.items()})
    arrays.update({f"limit {k}": v for k, v in cluster.limits.items()})
    return arrays


def test_same_seed_same_cluster_other_seed_other_cluster() -> None:
    one, two, other = _cluster(seed=3), _cluster(seed=3), _cluster(seed=4)
    assert one.tenants == two.tenants == other.tenants
    for name, array in _arrays(one).items():
        assert np.array_equal(array, _arrays(two)[name], equal_nan=True), name
    assert not np.array_equal(one.samples_demand, other.samples_demand, equal_nan=True)
    assert not np.array_equal(one.series, other.series, equal_nan=True)


def test_shapes_window_and_read_only() -> None:
    cluster = _cluster(count=24, history=86400.0)
    n, t = 24, 289  # one day at 5m, both ends included
    assert len(cluster.tenants) == n
    assert cluster.timestamps.shape == (t,)
    assert cluster.timestamps[-1] == END
    assert cluster.timestamps[0] == END - 86400.0
    assert np.all(np.diff(cluster.timestamps) == 300.0)
    for name, array in _arrays(cluster).items():
        if name.startswith("limit") or name == "first_index":
            assert array.shape == (n,), name
        elif name != "timestamps":
            assert array.shape == (n, t), name
        assert not array.flags.writeable, name
    assert set(cluster.discards) == set(DISCARD_REASONS)


def test_tenant_ids_are_valid_and_archetypes_come_first() -> None:
    cluster = _cluster(count=24)
    assert all(TENANT_ID.match(t) and t not in {".", ".."} for t in cluster.tenants)
    assert len(set(cluster.tenants)) == len(cluster.tenants)
    assert cluster.tenants[:5] == (
        "throttled-001",
        "blast-001",
        "new-001",
        "bursty-001",
        "labels-001",
    )
    assert cluster.tenants[5] == "tenant-001"
    assert {kind: len(names) for kind, names in cluster.archetypes.items()} == {
        "throttled": 1,
        "blast": 1,
        "new": 1,
        "bursty": 1,
        "labels": 1,
    }


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1, ("throttled-001",)),
        (3, ("throttled-001", "blast-001", "new-001")),
        (5, ("throttled-001", "blast-001", "new-001", "bursty-001", "labels-001")),
    ],
)
def test_small_clusters_keep_one_of_each_archetype_while_they_last(
    count: int, expected: tuple[str, ...]
) -> None:
    assert _cluster(count=count, history=86400.0).tenants == expected


def test_big_clusters_have_several_of_each_archetype() -> None:
    cluster = _cluster(count=1000, history=86400.0)
    assert len(cluster.archetypes["throttled"]) == 50
    assert len(cluster.archetypes["new"]) == 40
    assert "tenant-001" in cluster.tenants


def test_throttled_tenant_is_clipped_at_its_limit_and_the_rest_is_discarded() -> None:
    cluster = _cluster()
    row = cluster.index("throttled-001")
    limit = cluster.limits["ingestion_rate"][row]
    demand, accepted = cluster.samples_demand[row], cluster.samples_accepted[row]
    discarded = cluster.discards["rate_limited"][row]
    # Mimir's limiter is charged samples + exemplars.
    charged = accepted + cluster.exemplars_received[row]
    per_sample = 1.0 + cluster.exemplar_share[row]
    assert cluster.overridden["ingestion_rate"][row]
    assert np.all(charged <= limit * (1 + 1e-12))
    assert np.max(demand * per_sample) > limit
    assert np.all(discarded >= 0) and discarded.sum() > 0
    np.testing.assert_allclose(accepted + discarded, demand, rtol=1e-12)
    # Only the part above the limit is lost.
    expected = np.maximum(demand - limit / per_sample, 0.0)
    np.testing.assert_allclose(discarded, expected, rtol=1e-9, atol=1e-9)


def test_plain_tenants_are_not_throttled_and_have_daily_cycles() -> None:
    cluster = _cluster()
    plain = [cluster.index(t) for t in cluster.tenants if t.startswith("tenant-")]
    assert np.all(cluster.discards["rate_limited"][plain] == 0)
    assert np.all(cluster.discards["per_user_series_limit"][plain] == 0)
    day = cluster.samples_demand[plain, -288:]
    assert np.all(day.max(axis=1) > 1.1 * day.min(axis=1))
    growth = cluster.series_demand[plain, -288:].mean(axis=1) / cluster.series_demand[
        plain, :288
    ].mean(axis=1)
    assert (growth > 1.05).any() and (growth < 0.95).any()  # some grow, some decline


def test_new_tenant_exists_only_for_the_last_hours() -> None:
    cluster = _cluster()
    row = cluster.index("new-001")
    first = int(cluster.first_index[row])
    hours = (cluster.timestamps[-1] - cluster.timestamps[first]) / 3600
    assert 2.5 <= hours <= 6.5
    for array in (cluster.samples_accepted, cluster.series, cluster.metadata):
        assert np.all(np.isnan(array[row, :first]))
        assert np.all(np.isfinite(array[row, first:]))
    for reason in DISCARD_REASONS:
        assert np.all(np.isnan(cluster.discards[reason][row, :first]))
        assert np.all(cluster.discards[reason][row, first:] == 0)
    assert not cluster.overridden["ingestion_rate"][row]
    assert np.all(cluster.first_index[[cluster.index("throttled-001"), -1]] == 0)


def test_blast_jumps_late_and_is_discarded_while_above_its_series_limit() -> None:
    cluster = _cluster()
    row = cluster.index("blast-001")
    limit = cluster.limits["max_global_series_per_user"][row]
    demand, series = cluster.series_demand[row], cluster.series[row]
    discarded = cluster.discards["per_user_series_limit"][row]
    above = demand > limit
    first_above = int(np.argmax(above))
    assert above.any()
    assert first_above > 0.75 * len(demand)  # late in the window
    assert np.max(demand[:first_above]) < 0.7 * limit  # a jump, not a slow climb
    assert np.all(series <= limit)
    assert np.all((discarded > 0) == above)
    assert np.all(cluster.discards["rate_limited"][row] == 0)


def test_label_value_discards_belong_to_the_labels_tenant() -> None:
    cluster = _cluster()
    discards = cluster.discards["label_value_too_long"]
    row = cluster.index("labels-001")
    assert discards[row].sum() > 0
    others = np.delete(discards, row, axis=0)
    assert np.nansum(others) == 0


def test_bursty_tenant_is_noisier_and_its_bursts_get_clipped() -> None:
    cluster = _cluster()
    bursty = cluster.index("bursty-001")
    plain = [cluster.index(t) for t in cluster.tenants if t.startswith("tenant-")]

    def roughness(rows: Any) -> Any:
        demand = cluster.samples_demand[rows]
        return np.median(np.abs(np.diff(np.log(demand), axis=-1)), axis=-1)

    assert roughness(bursty) > np.max(roughness(plain))
    assert cluster.discards["rate_limited"][bursty].sum() > 0


def test_overrides_document_lists_exactly_the_overridden_tenants() -> None:
    cluster = _cluster()
    doc = cluster.overrides_document()["overrides"]
    assert set(doc) == cluster.overridden_tenants
    assert 0 < len(doc) < len(cluster.tenants)
    throttled = doc["throttled-001"]
    assert throttled["ingestion_rate"] == cluster.limits["ingestion_rate"][0]
    for limits in doc.values():
        for name, value in limits.items():
            assert isinstance(value, float if name in {"ingestion_rate", "request_rate"} else int)


def test_generation_covers_every_tenant_and_point() -> None:
    """2,500 tenants x 7 days at 5m in one array per signal (its speed is measured in bench/,
    not asserted here)."""
    cluster = _cluster(count=2500)
    assert cluster.samples_demand.shape == (2500, 2017)
    finite = np.isfinite(cluster.samples_demand)
    assert finite.mean() > 0.9  # scrape gaps are NaN by design, but rare
    assert (cluster.samples_demand[finite] >= 0).all()


def _spec(name: str, signal: SignalKind, **extra: Any) -> LimitSpec:
    return LimitSpec(
        name=name,
        type=LimitType.COUNT,
        default=extra.pop("default", 0.0),
        unit="",
        signal=signal,
        category="test",
        description="",
        checked_against="test",
        **extra,
    )


def test_source_collects_usage_discards_and_current_limits() -> None:
    settings = SyntheticSettings(tenant_count=8, seed=5, history=2 * 86400.0, step=300)
    source = SyntheticSource(settings, end=END)
    cluster = source.cluster
    catalogue = load_catalogue()
    specs = [
        *catalogue.limits.values(),
        _spec(
            "max_label_value_length",
            SignalKind.DISCARD,
            discard_query="sum by (user) (rate(cortex_discarded_samples_total"
            '{reason="label_value_too_long",${sel}}[${rate}]))',
            discard_reasons=("label_value_too_long",),
            default=2048.0,
        ),
        _spec("max_fetched_chunks_per_query", SignalKind.USAGE, usage_query="sum by (user) (x)"),
    ]
    calls: list[tuple[int, int, str]] = []
    start = END - 86400.0
    obs = source.collect(
        specs, start=start, end=END, progress=lambda d, t, label: calls.append((d, t, label))
    )

    assert source.describe() == "synthetic cluster (8 tenants, seed 5)"
    assert calls == [(i + 1, len(specs), s.name) for i, s in enumerate(specs)]
    assert obs.tenants == cluster.tenants
    assert obs.timestamps[0] == start and obs.timestamps[-1] == END and obs.step == 300.0
    # The limiter (and the catalogue's usage query) counts samples + exemplars.
    charged = cluster.samples_accepted + cluster.exemplars_received
    np.testing.assert_array_equal(obs.usage["ingestion_rate"], charged[:, -289:])
    np.testing.assert_array_equal(obs.usage["max_global_series_per_user"], cluster.series[:, -289:])
    assert obs.unavailable["max_fetched_chunks_per_query"] == (
        "the synthetic cluster does not simulate max_fetched_chunks_per_query"
    )
    exists = cluster.exists()[:, -289:]
    labels = obs.discards["max_label_value_length"]
    assert np.all(np.isnan(labels) == ~exists)
    assert labels[cluster.index("labels-001")].sum() > 0
    if "max_label_names_per_series" in obs.discards:  # zeros, not NaN, where tenants exist
        assert np.all(obs.discards["max_label_names_per_series"][exists] == 0)
    for name, values in obs.current.items():
        assert not np.isnan(values).any(), name
        assert len(obs.current_origin[name]) == len(cluster.tenants)
    defaults = ~cluster.overridden["ingestion_rate"]
    assert np.all(obs.current["ingestion_rate"][defaults] == 10_000)
    assert obs.current["max_fetched_chunks_per_query"].tolist() == [0.0] * 8


def test_source_answers_every_simulated_limit_of_the_shipped_catalogue() -> None:
    source = SyntheticSource(SyntheticSettings(tenant_count=6, history=86400.0), end=END)
    catalogue = load_catalogue()
    obs = source.collect(list(catalogue.limits.values()), start=END - 86400.0, end=END)
    simulated = {
        name
        for name, spec in catalogue.limits.items()
        if name in source.cluster.limits and spec.signal in (SignalKind.USAGE, SignalKind.DISCARD)
    }
    assert {"ingestion_rate", "max_global_series_per_user"} <= simulated
    assert not simulated & set(obs.unavailable), obs.unavailable
    others = {
        name
        for name, spec in catalogue.limits.items()
        if name not in source.cluster.limits
        and spec.signal in (SignalKind.USAGE, SignalKind.DISCARD)
    }
    for name in others:
        assert obs.unavailable[name] == f"the synthetic cluster does not simulate {name}"
    for name, spec in catalogue.limits.items():
        if spec.signal in (SignalKind.DERIVED, SignalKind.POLICY):
            assert name not in obs.unavailable and name not in obs.usage
            assert name in obs.current


def test_source_reports_a_query_on_a_metric_it_does_not_emit() -> None:
    source = SyntheticSource(SyntheticSettings(tenant_count=3, history=3600.0), end=END)
    spec = _spec(
        "max_global_series_per_user",
        SignalKind.USAGE,
        usage_query="sum by (user) (cortex_ingester_active_series{${sel}}) / ${rf}",
    )
    obs = source.collect([spec], start=END - 3600, end=END)
    assert "cortex_ingester_active_series" in obs.unavailable[spec.name]
    assert spec.name not in obs.usage


def _families(text: str) -> list[str]:
    names = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.append(line.split()[2])
    return names


def test_openmetrics_is_well_formed_and_counters_only_grow() -> None:
    cluster = _cluster(count=6, history=6 * 3600.0)
    out = io.StringIO()
    write_openmetrics(cluster, out, scrape_interval=60)
    text = out.getvalue()
    assert text.endswith("# EOF\n")
    families = _families(text)
    assert len(families) == len(set(families))
    series: dict[str, list[tuple[float, float]]] = {}
    family_order: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, value, stamp = line.rsplit(" ", 2)
        name = key.split("{")[0]
        family = next(f for f in families if name in (f, f + "_total"))
        if not family_order or family_order[-1] != family:
            assert family not in family_order, f"{family} is not contiguous"
            family_order.append(family)
        series.setdefault(key, []).append((float(stamp), float(value)))
    for key, samples in series.items():
        stamps = [s for s, _ in samples]
        assert stamps == sorted(stamps), key
        if key.split("{")[0].endswith("_total"):
            values = [v for _, v in samples]
            assert values == sorted(values), f"counter {key} decreased"
    assert max(s for s, _ in series["cortex_distributor_replication_factor"]) == END
    created = [k for k in series if k.startswith("cortex_ingester_memory_series_created_total")]
    assert len(created) == 3 * 6  # RF ingesters x tenants
    kinds = dict(line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE "))
    names = {f"{f}_total" if kind == "counter" else f for f, kind in kinds.items()}
    assert names == EMITTED_METRICS
    assert {key.split("{")[0] for key in series} <= EMITTED_METRICS


def test_openmetrics_rejects_a_scrape_interval_that_cannot_reproduce_rates() -> None:
    cluster = _cluster(count=2, history=3600.0)
    for interval in (300.0, 200.0, 0.0):
        with pytest.raises(ValueError, match="scrape_interval"):
            write_openmetrics(cluster, io.StringIO(), scrape_interval=interval)


def _render(template: str) -> str:
    return template.replace("${sel}", "").replace("${rate}", "5m").replace("${rf}", RF_EXPR)


def _query_range(server: PromServer, query: str, cluster: SyntheticCluster) -> FloatArray:
    """(N, T) result of a range query at the cluster's timestamps; NaN where no sample."""
    response = httpx.get(
        f"{server.url}/api/v1/query_range",
        params={
            "query": query,
            "start": repr(float(cluster.timestamps[0])),
            "end": repr(float(cluster.timestamps[-1])),
            "step": repr(cluster.step),
        },
        timeout=30,
    )
    body = response.json()
    assert body["status"] == "success", f"{query}: {body}"
    out = np.full((len(cluster.tenants), len(cluster.timestamps)), np.nan)
    for result in body["data"]["result"]:
        row = cluster.index(result["metric"]["user"])
        stamps, values = zip(*result["values"], strict=True)
        cols = np.rint((np.asarray(stamps, dtype=float) - cluster.timestamps[0]) / cluster.step)
        out[row, cols.astype(int)] = np.asarray(values, dtype=float)
    return out


@pytest.mark.prometheus
def test_collect_matches_the_catalogue_promql_in_a_real_prometheus(
    prometheus_factory: Any,
) -> None:
    # Data must end shortly before now: Prometheus drops blocks older than its retention.
    end = float(int(time.time()) - 60)
    settings = SyntheticSettings(tenant_count=6, seed=7, history=12 * 3600.0, step=300)
    source = SyntheticSource(settings, end=end)
    cluster = source.cluster
    text = io.StringIO()
    write_openmetrics(cluster, text, scrape_interval=150)
    server: PromServer = prometheus_factory(text.getvalue())

    specs = list(load_catalogue().limits.values())
    obs = source.collect(specs, start=cluster.timestamps[0], end=end)
    exists = cluster.exists()
    checked: list[str] = []
    queries = 0
    for spec in specs:
        pairs = (
            ("usage", spec.usage_query, obs.usage.get(spec.name)),
            ("discards", spec.discard_query, obs.discards.get(spec.name)),
        )
        for what, template, expected in pairs:
            if template is None or expected is None:
                continue
            actual = _query_range(server, _render(template), cluster)
            queries += 1
            if what == "discards":  # no discard series = no discards, for existing tenants
                actual = np.where(np.isnan(actual) & exists, 0.0, actual)
            label = f"{what} of {spec.name}"
            assert np.array_equal(np.isnan(actual), np.isnan(expected)), label
            np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9, err_msg=label)
            checked.append(label)

    assert {
        "usage of ingestion_rate",
        "discards of ingestion_rate",
        "usage of max_global_series_per_user",
        "discards of max_global_series_per_user",
    } <= set(checked)
    # The scenario really exercised throttling, blasts and the RF division.
    assert np.nansum(obs.discards["ingestion_rate"]) > 0
    assert np.nansum(obs.discards["max_global_series_per_user"]) > 0
    assert server.requests_total("/api/v1/query_range") >= queries
