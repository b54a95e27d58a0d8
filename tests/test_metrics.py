"""The optimizer's own metrics: every seed metric name exists on a fresh registry with its
type and labels; phases and source queries are timed into their histograms; per-tenant
gauges are computed from the latest recommendations at scrape time, omit undefined values
and forget tenants that disappear; nothing touches the global registry."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.recommend import recommend
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.engine.usage import Observation
from mimir_limit_optimizer.observability.metrics import PHASES, ControllerMetrics

P = "mimir_limit_optimizer_"
NOW = 1_800_000_000.0
STEP = 300.0
T = int(7 * 86400 / STEP)
TS = (NOW - STEP * np.arange(T)[::-1]).astype(np.float64)
CATALOGUE = load_catalogue()


class FakeTimer:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fresh(timer: FakeTimer | None = None) -> tuple[CollectorRegistry, ControllerMetrics]:
    registry = CollectorRegistry()
    if timer is None:
        return registry, ControllerMetrics(registry)
    return registry, ControllerMetrics(registry, timer=timer)


def recommendations(levels: dict[str, float | None], current: float = 500.0) -> Recommendations:
    """ingestion_rate recommendations for tenants at a flat usage level; None = no data
    (the engine reports that tenant undefined)."""
    rows = [np.full(T, np.nan) if level is None else np.full(T, level) for level in levels.values()]
    obs = Observation(
        tenants=tuple(levels),
        timestamps=TS,
        step=STEP,
        usage={"ingestion_rate": np.vstack(rows)},
        current={"ingestion_rate": np.full(len(levels), current)},
    )
    return recommend(obs, Config(), CATALOGUE, now=NOW, limits=["ingestion_rate"])


def families(registry: CollectorRegistry) -> dict[str, tuple[str, set[frozenset[str]]]]:
    """Family name -> (type, the label-name sets of its samples)."""
    return {f.name: (f.type, {frozenset(s.labels) for s in f.samples}) for f in registry.collect()}


# (name as exposed, prometheus_client family name, type, label names)
SEED_METRICS = [
    (f"{P}reconcile_total", f"{P}reconcile", "counter", {"result"}),
    (f"{P}reconcile_duration_seconds", None, "histogram", {"phase"}),
    (f"{P}last_reconcile_timestamp", None, "gauge", set()),
    (f"{P}errors_total", f"{P}errors", "counter", {"component", "reason"}),
    (f"{P}limits_applied_total", f"{P}limits_applied", "counter", set()),
    (f"{P}spikes_detected_total", f"{P}spikes_detected", "counter", set()),
    (f"{P}health_status", None, "gauge", set()),
    (f"{P}tenants_monitored_total", None, "gauge", set()),
    (f"{P}tenant_current_limits", None, "gauge", {"user", "limit_name"}),
    (f"{P}tenant_recommended_limits", None, "gauge", {"user", "limit_name"}),
    (f"{P}spike_multiplier", None, "gauge", {"user", "limit_name"}),
    (f"{P}source_queries_total", f"{P}source_queries", "counter", {"source", "result"}),
    (f"{P}source_query_duration_seconds", None, "histogram", {"source"}),
    (f"{P}config_reloads_total", f"{P}config_reloads", "counter", {"result"}),
    (f"{P}config_last_reload_successful", None, "gauge", set()),
]


def spiky_recommendations() -> Recommendations:
    calm = 1000.0 * (1 + 0.3 * np.sin(TS / 86400 * 2 * np.pi))
    spiky = calm.copy()
    spiky[1000:1006] *= 10  # 30 minutes at 10x: a transient spike
    obs = Observation(
        tenants=("calm", "spiky"),
        timestamps=TS,
        step=STEP,
        usage={"ingestion_rate": np.vstack([calm, spiky])},
        current={"ingestion_rate": np.array([1500.0, 1500.0])},
    )
    return recommend(obs, Config(), CATALOGUE, now=NOW, limits=["ingestion_rate"])


def test_every_seed_metric_has_its_type_and_labels() -> None:
    registry, m = fresh()
    m.reconcile_total.labels(result="success").inc()
    with m.phase("collect"):
        pass
    m.last_reconcile_timestamp.set(NOW)
    m.errors_total.labels(component="source", reason="timeout").inc()
    m.limits_applied_total.inc(3)
    m.spikes_detected_total.inc()
    m.health_status.set(1)
    m.source_queries_total.labels(source="prometheus", result="success").inc()
    m.source_query_duration.labels(source="prometheus").observe(0.2)
    m.config_reloads_total.labels(result="failure").inc()
    m.observe_recommendations(spiky_recommendations())

    found = families(registry)
    for exposed, family, kind, labels in SEED_METRICS:
        key = family or exposed
        assert key in found, exposed
        got_kind, label_sets = found[key]
        assert got_kind == kind, exposed
        own = {frozenset(ls - {"le"}) for ls in label_sets}
        assert own == {frozenset(labels)}, exposed

    get = registry.get_sample_value
    assert get(f"{P}reconcile_total", {"result": "success"}) == 1
    assert get(f"{P}reconcile_duration_seconds_count", {"phase": "collect"}) == 1
    assert get(f"{P}last_reconcile_timestamp") == NOW
    assert get(f"{P}errors_total", {"component": "source", "reason": "timeout"}) == 1
    assert get(f"{P}limits_applied_total") == 3
    assert get(f"{P}spikes_detected_total") == 1
    assert get(f"{P}health_status") == 1
    assert get(f"{P}source_queries_total", {"source": "prometheus", "result": "success"}) == 1
    assert get(f"{P}source_query_duration_seconds_sum", {"source": "prometheus"}) == 0.2
    assert get(f"{P}config_reloads_total", {"result": "failure"}) == 1
    assert get(f"{P}tenants_monitored_total") == 2
    assert get(f"{P}spike_multiplier", {"user": "spiky", "limit_name": "ingestion_rate"}) == (
        pytest.approx(10.0, rel=0.1)
    )
    # No spike for the calm tenant: no sample, not a 0.
    assert get(f"{P}spike_multiplier", {"user": "calm", "limit_name": "ingestion_rate"}) is None


def test_known_label_values_start_at_zero() -> None:
    registry, _ = fresh()
    get = registry.get_sample_value
    for result in ("success", "failure", "skipped"):
        assert get(f"{P}reconcile_total", {"result": result}) == 0
    for name in PHASES:
        assert get(f"{P}reconcile_duration_seconds_count", {"phase": name}) == 0
    assert get(f"{P}config_reloads_total", {"result": "success"}) == 0
    # The service only runs after its configuration loaded.
    assert get(f"{P}config_last_reload_successful") == 1


def test_metrics_live_only_on_the_injected_registry() -> None:
    first, _ = fresh()
    second, _ = fresh()  # a second instance on its own registry does not clash
    assert not any(f.name.startswith(P) for f in REGISTRY.collect())
    assert {f.name for f in first.collect()} == {f.name for f in second.collect()}
    with pytest.raises(ValueError, match="Duplicated"):
        ControllerMetrics(first)


@pytest.mark.parametrize(
    ("elapsed", "bucket", "count_in_bucket"),
    [(0.004, "0.01", 1), (3.0, "2.5", 0), (3.0, "5.0", 1), (700.0, "600.0", 0)],
)
def test_phase_times_into_the_histogram(elapsed: float, bucket: str, count_in_bucket: int) -> None:
    timer = FakeTimer()
    registry, m = fresh(timer)
    with m.phase("apply"):
        timer.now += elapsed
    get = registry.get_sample_value
    assert get(f"{P}reconcile_duration_seconds_sum", {"phase": "apply"}) == pytest.approx(elapsed)
    assert get(f"{P}reconcile_duration_seconds_count", {"phase": "apply"}) == 1
    assert (
        get(f"{P}reconcile_duration_seconds_bucket", {"phase": "apply", "le": bucket})
        == count_in_bucket
    )
    assert get(f"{P}reconcile_duration_seconds_count", {"phase": "collect"}) == 0


def test_phase_is_recorded_when_the_body_raises() -> None:
    timer = FakeTimer()
    registry, m = fresh(timer)
    with pytest.raises(RuntimeError), m.phase("verify"):
        timer.now += 1.5
        raise RuntimeError("verification failed")
    assert registry.get_sample_value(
        f"{P}reconcile_duration_seconds_sum", {"phase": "verify"}
    ) == pytest.approx(1.5)


def test_source_query_counts_success_and_failure_and_times_both() -> None:
    timer = FakeTimer()
    registry, m = fresh(timer)
    with m.source_query("prometheus"):
        timer.now += 0.25
    with pytest.raises(TimeoutError), m.source_query("prometheus"):
        timer.now += 2.0
        raise TimeoutError
    get = registry.get_sample_value
    for result in ("success", "failure"):
        labels = {"source": "prometheus", "result": result}
        assert get(f"{P}source_queries_total", labels) == 1
    labels = {"source": "prometheus"}
    assert get(f"{P}source_query_duration_seconds_count", labels) == 2
    assert get(f"{P}source_query_duration_seconds_sum", labels) == pytest.approx(2.25)


def test_cycle_finished_counts_and_stamps_only_successes() -> None:
    registry, m = fresh()
    get = registry.get_sample_value
    m.cycle_finished("success", now=NOW)
    m.cycle_finished("failure", now=NOW + 60)
    m.cycle_finished("skipped", now=NOW + 120)
    assert get(f"{P}last_reconcile_timestamp") == NOW
    assert [
        get(f"{P}reconcile_total", {"result": r}) for r in ("success", "failure", "skipped")
    ] == [
        1,
        1,
        1,
    ]
    with pytest.raises(ValueError, match="success"):
        m.cycle_finished("partial", now=NOW)


def test_config_reloaded_sets_the_gauge_and_counts() -> None:
    registry, m = fresh()
    get = registry.get_sample_value
    m.config_reloaded(ok=False)
    assert get(f"{P}config_last_reload_successful") == 0
    m.config_reloaded(ok=True)
    assert get(f"{P}config_last_reload_successful") == 1
    assert get(f"{P}config_reloads_total", {"result": "failure"}) == 1
    assert get(f"{P}config_reloads_total", {"result": "success"}) == 1


def test_tenant_gauges_are_absent_before_the_first_observation() -> None:
    registry, _ = fresh()
    assert registry.get_sample_value(f"{P}tenants_monitored_total") is None
    assert f"{P}tenant_current_limits{{" not in generate_latest(registry).decode()


def test_tenant_gauges_follow_the_latest_recommendations() -> None:
    registry, m = fresh()
    get = registry.get_sample_value

    def value(name: str, user: str) -> float | None:
        return get(f"{P}{name}", {"user": user, "limit_name": "ingestion_rate"})

    first = recommendations({"a": 1000.0, "b": 2000.0, "empty": None})
    m.observe_recommendations(first)
    assert get(f"{P}tenants_monitored_total") == 3
    result = first.results["ingestion_rate"]
    assert np.isnan(result.recommended[2])  # the engine could not decide for "empty"
    for i, user in enumerate(("a", "b")):
        assert value("tenant_recommended_limits", user) == result.recommended[i]
        assert value("tenant_current_limits", user) == 500.0
    assert value("tenant_recommended_limits", "empty") is None  # omitted, not 0 or NaN
    assert value("tenant_current_limits", "empty") == 500.0
    text = generate_latest(registry).decode()
    assert "NaN" not in text

    # Arrays are copied: a caller mutating its results later does not change the scrape.
    result.recommended[0] = -1.0
    assert value("tenant_recommended_limits", "a") != -1.0

    m.observe_recommendations(recommendations({"a": 1000.0}))
    assert get(f"{P}tenants_monitored_total") == 1
    assert value("tenant_recommended_limits", "a") is not None
    for user in ("b", "empty"):
        assert value("tenant_recommended_limits", user) is None
        assert value("tenant_current_limits", user) is None


def test_exposition_parses_as_prometheus_text() -> None:
    registry, m = fresh()
    m.limits_applied_total.inc(2)
    m.observe_recommendations(recommendations({"a": 1000.0, "b": None}))
    parsed = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert parsed[f"{P}limits_applied"].samples[0].value == 2
    assert parsed[f"{P}tenants_monitored_total"].type == "gauge"
    users = {s.labels["user"] for s in parsed[f"{P}tenant_recommended_limits"].samples}
    assert users == {"a"}


def test_relevant_mode_exports_planned_recent_and_top_tenants_and_always_the_totals() -> None:
    from mimir_limit_optimizer.config.service import TenantMetricsSettings

    registry = CollectorRegistry()
    settings = TenantMetricsSettings(top_n=1, recent=600.0)
    m = ControllerMetrics(registry, tenant_series=settings)
    get = registry.get_sample_value
    # Usage 100..400 against a limit of 500: "d" (400) is closest to its limit.
    levels: dict[str, float | None] = {"a": 100.0, "b": 200.0, "c": 300.0, "d": 400.0}

    def exported() -> set[str]:
        return {
            user
            for user in levels
            if get(f"{P}tenant_current_limits", {"user": user, "limit_name": "ingestion_rate"})
            is not None
        }

    m.observe_recommendations(recommendations(levels), planned=["a"], now=NOW)
    assert exported() == {"a", "d"}  # planned this cycle, and the top 1 by usage / limit
    assert get(f"{P}tenant_series_omitted") == 2
    first = recommendations(levels).results["ingestion_rate"]
    changes = int(np.count_nonzero(first.status == 0))
    assert get(f"{P}recommendations", {"limit_name": "ingestion_rate", "status": "change"}) == (
        changes
    )
    # "a" stays while its change is recent, and is dropped after `recent`.
    m.observe_recommendations(recommendations(levels), planned=["b"], now=NOW + 300)
    assert exported() == {"a", "b", "d"}
    m.observe_recommendations(recommendations(levels), planned=[], now=NOW + 1200)
    assert exported() == {"d"}


def test_max_series_bounds_the_per_tenant_series_and_none_exports_only_totals() -> None:
    from mimir_limit_optimizer.config.service import TenantMetricsSettings

    levels: dict[str, float | None] = {f"t{i}": 100.0 + i for i in range(10)}
    for settings, count in (
        (TenantMetricsSettings(mode="all", max_series=3), 3),
        (TenantMetricsSettings(mode="none"), 0),
    ):
        registry = CollectorRegistry()
        m = ControllerMetrics(registry, tenant_series=settings)
        m.observe_recommendations(recommendations(levels), now=NOW)
        text = generate_latest(registry).decode()
        assert text.count(f"{P}tenant_current_limits{{") == count
        assert registry.get_sample_value(f"{P}tenant_series_omitted") == 10 - count
        assert registry.get_sample_value(f"{P}tenants_monitored_total") == 10
