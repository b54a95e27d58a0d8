"""The protection engine as plain tables with an injected clock: every breaker transition
(CLOSED -> OPEN after the detection window or at once on a burst, OPEN -> HALF-OPEN after the
cooldown, step-wise recovery to CLOSED, relapse with a doubled cooldown, pausing on a
breach), auto/manual/hybrid thresholds, adaptation bounded per cycle, clamps within floors and
the maximum depth (and from "unlimited"), the cluster-wide detectors opening only the top
contributors, pressure levels with sustained-for durations, the targeted emergency actions
(freeze once, reduce in proportion to the excess, blanket cut only as an explicit opt-in),
the gradual recovery that a relapse halts, and the state's JSON round trip.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.protection import (
    BreakerState,
    FastObservation,
    Kind,
    Level,
    ProtectionState,
    settle,
    step,
)
from mimir_limit_optimizer.engine.protection.model import (
    SIG_INGESTION,
    SIG_INGESTION_DISCARDED,
    SIG_NEW_SERIES,
    SIG_QUERIES,
    SIG_SERIES,
    SIG_SERIES_DISCARDED,
)

CATALOGUE = load_catalogue()
T0 = 1_700_000_000.0
SERIES = "max_global_series_per_user"
RATE = "ingestion_rate"
BURST = "ingestion_burst_size"
OPEN, CLOSED, HALF = BreakerState.OPEN, BreakerState.CLOSED, BreakerState.HALF_OPEN


def config(**sections: Any) -> Config:
    base: dict[str, Any] = {
        "circuitBreaker": {
            "detectionWindow": "30s",
            "cooldown": "60s",
            "recovery": {"stepPercent": 50, "stepInterval": "30s"},
            "autoConfig": {"realtimeAdaptation": {"warmupWindow": 0}},
        }
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _merge(base[key], value)
        else:
            base[key] = value
    return Config.model_validate(base)


def _merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


class Cluster:
    """Tenants with steady traffic whose values a test changes between ticks."""

    def __init__(self, tenants: tuple[str, ...], **limits: list[float]) -> None:
        n = len(tenants)
        self.tenants = tenants
        self.values = {
            SIG_INGESTION: np.full(n, 1000.0),
            SIG_INGESTION_DISCARDED: np.zeros(n),
            SIG_SERIES: np.full(n, 40_000.0),
            SIG_SERIES_DISCARDED: np.zeros(n),
            SIG_NEW_SERIES: np.full(n, 1.0),
            SIG_QUERIES: np.full(n, 1.0),
        }
        self.limits = {
            RATE: np.full(n, 10_000.0),
            BURST: np.full(n, 200_000.0),
            SERIES: np.full(n, 1_000_000.0),
            "max_query_parallelism": np.full(n, 14.0),
        }
        for name, values in limits.items():
            self.limits[name] = np.array(values, dtype=float)
        self.pressure: dict[str, float] = {}
        self.down: dict[str, int] = {}
        self.reload_ok: bool | None = True
        self.state = ProtectionState()
        self.events: list[Any] = []

    def set(self, signal: str, tenant: str, value: float) -> None:
        self.values[signal][self.tenants.index(tenant)] = value

    def tick(self, cfg: Config, now: float) -> list[Any]:
        obs = FastObservation(
            at=now,
            tenants=self.tenants,
            signals={k: v.copy() for k, v in self.values.items()},
            pressure=dict(self.pressure),
            components_down=dict(self.down),
            reload_ok=self.reload_ok,
        )
        result = step(self.state, obs, self.limits, cfg, CATALOGUE, now=now)
        self.events += result.events
        settle(self.state)
        return result.events

    def breaker(self, tenant: str, kind: Kind) -> BreakerState:
        i = self.state.tenants.index(tenant)
        return BreakerState(int(self.state.breakers[kind.value].state[i]))

    def cap(self, tenant: str, limit: str) -> float | None:
        clamp = self.state.clamps.get((tenant, limit))
        return None if clamp is None or not clamp.active else clamp.desired()

    def actions(self) -> list[str]:
        return [e.action for e in self.events]


def run(cluster: Cluster, cfg: Config, start: float, end: float, every: float = 15.0) -> None:
    t = start
    while t <= end + 1e-9:
        cluster.tick(cfg, t)
        t += every


# --- breaker transitions ------------------------------------------------------------------
def test_series_breaker_lifecycle_closed_open_half_open_closed() -> None:
    cfg = config()
    c = Cluster(("a", "b"))
    run(c, cfg, T0, T0 + 60)  # baseline 40K series
    c.set(SIG_SERIES, "a", 160_000.0)  # 4x: threshold 1.2 x 40K x 1.25 = 60K
    table = [  # (seconds after the blast, state of a's series breaker)
        (0, CLOSED),  # breach seen
        (15, CLOSED),  # 15 s < detection window 30 s
        (30, OPEN),  # sustained: open, series frozen at usage + 5%
    ]
    for offset, expected in table:
        c.tick(cfg, T0 + 75 + offset)
        assert c.breaker("a", Kind.SERIES) is expected, offset
    assert c.cap("a", SERIES) == 168_000.0
    assert c.breaker("b", Kind.SERIES) is CLOSED and c.cap("b", SERIES) is None
    c.tick(cfg, T0 + 105 + 60)  # cooldown passed but still breaching: stays open
    assert c.breaker("a", Kind.SERIES) is OPEN
    c.set(SIG_SERIES, "a", 40_000.0)
    c.tick(cfg, T0 + 180)  # sane after the cooldown: half-open, first step (+50% of 1M)
    assert c.breaker("a", Kind.SERIES) is HALF
    assert c.cap("a", SERIES) == 668_000.0
    c.tick(cfg, T0 + 195)  # 15 s < stepInterval 30 s: no step
    assert c.cap("a", SERIES) == 668_000.0
    c.tick(cfg, T0 + 210)  # second step reaches the target: closed, cap gone
    assert c.breaker("a", Kind.SERIES) is CLOSED
    assert c.cap("a", SERIES) is None
    assert c.actions() == [
        "circuit_breaker_open",
        "circuit_breaker_half_open",
        "circuit_breaker_recovery_step",
        "circuit_breaker_recovery_step",
        "circuit_breaker_closed",
    ]


def test_a_burst_opens_at_once_and_clamps_rate_and_burst_in_proportion() -> None:
    cfg = config()
    c = Cluster(("a",), ingestion_rate=[10_000.0], ingestion_burst_size=[200_000.0])
    run(c, cfg, T0, T0 + 30)  # baseline 1000 samples/s
    # Burst threshold: 1.2 x (10K + 200K / 60 s) x 1.25 = 20K; 25K trips without waiting.
    c.set(SIG_INGESTION, "a", 10_000.0)
    c.set(SIG_INGESTION_DISCARDED, "a", 15_000.0)
    c.tick(cfg, T0 + 45)
    assert c.breaker("a", Kind.INGESTION) is OPEN
    # Rate cap: baseline 1000 x 1.5 = 1500, but the depth (90%) keeps >= 1000, floor 100.
    assert c.cap("a", RATE) == 1500.0
    assert c.cap("a", BURST) == 30_000.0  # 200K x 1500 / 10K
    assert "burst" in c.events[0].details["reason"]


@pytest.mark.parametrize(("depth", "expected"), [(95, 7_500.0), (90, 10_000.0), (50, 50_000.0)])
def test_reductions_stop_at_the_maximum_depth(depth: float, expected: float) -> None:
    """Ingestion cap = baseline 5K x 1.5 = 7.5K, but never below (100 - depth)% of 100K."""
    cfg = config(circuitBreaker={"maxClampDepthPercent": depth})
    c = Cluster(("a",), ingestion_rate=[100_000.0], ingestion_burst_size=[2_000_000.0])
    c.set(SIG_INGESTION, "a", 5_000.0)
    run(c, cfg, T0, T0 + 30)
    c.set(SIG_INGESTION, "a", 100_000.0)
    c.set(SIG_INGESTION_DISCARDED, "a", 300_000.0)
    c.tick(cfg, T0 + 45)  # a burst: open at once
    assert c.breaker("a", Kind.INGESTION) is OPEN
    assert c.cap("a", RATE) == expected
    assert c.cap("a", BURST) == expected * 20  # in proportion (floor 20K, depth alike)


def test_relapse_in_half_open_reopens_tightens_and_doubles_the_cooldown() -> None:
    cfg = config()
    c = Cluster(("a",))
    run(c, cfg, T0, T0 + 60)
    c.set(SIG_SERIES, "a", 160_000.0)
    run(c, cfg, T0 + 75, T0 + 105)
    assert c.breaker("a", Kind.SERIES) is OPEN
    c.set(SIG_SERIES, "a", 40_000.0)
    c.tick(cfg, T0 + 180)
    assert c.breaker("a", Kind.SERIES) is HALF and c.cap("a", SERIES) == 668_000.0
    c.set(SIG_SERIES, "a", 200_000.0)
    c.tick(cfg, T0 + 195)  # a breach not yet sustained: steps pause, still half-open
    assert c.breaker("a", Kind.SERIES) is HALF and c.cap("a", SERIES) == 668_000.0
    c.tick(cfg, T0 + 225)  # sustained 30 s: relapse; the cap tightens to a fresh freeze
    assert c.breaker("a", Kind.SERIES) is OPEN
    assert c.cap("a", SERIES) == 210_000.0  # 200K + 5%
    i = c.state.tenants.index("a")
    assert c.state.breakers["series"].relapses[i] == 1
    assert c.actions()[-1] == "circuit_breaker_relapse"
    c.set(SIG_SERIES, "a", 40_000.0)
    c.tick(cfg, T0 + 225 + 90)  # 90 s < doubled cooldown 120 s
    assert c.breaker("a", Kind.SERIES) is OPEN
    c.tick(cfg, T0 + 225 + 120)
    assert c.breaker("a", Kind.SERIES) is HALF


@pytest.mark.parametrize(
    ("section", "value", "tenant_opens"),
    [
        ("perTenantConfig", {"a": {"enabled": False}}, False),
        ("perTenantConfig", {"a*": {"enabled": False}, "a": {"enabled": True}}, True),
        ("pinned", ["a"], False),
        ("scope", ["a"], False),
    ],
    ids=["disabled", "most-specific-glob-wins", "pinned", "skipped"],
)
def test_tenants_that_may_not_be_touched_never_open(
    section: str, value: Any, tenant_opens: bool
) -> None:
    sections: dict[str, Any] = {}
    if section == "perTenantConfig":
        sections["circuitBreaker"] = {"perTenantConfig": value}
    elif section == "pinned":
        sections["safety"] = {"pinnedTenants": value}
    else:
        sections["tenantScoping"] = {"skipList": value}
    cfg = config(**sections)
    c = Cluster(("a",))
    run(c, cfg, T0, T0 + 30)
    c.set(SIG_SERIES, "a", 400_000.0)
    run(c, cfg, T0 + 45, T0 + 120)
    assert (c.breaker("a", Kind.SERIES) is OPEN) is tenant_opens


# --- thresholds -----------------------------------------------------------------------------
def _thresholds(cfg: Config, c: Cluster) -> dict[Kind, Any]:
    obs = FastObservation(at=T0, tenants=c.tenants, signals=c.values)
    return step(c.state, obs, c.limits, cfg, CATALOGUE, now=T0).thresholds


def test_auto_threshold_is_the_lower_of_limit_based_and_traffic_based() -> None:
    c = Cluster(("low", "high"), ingestion_rate=[2000.0, 1_000_000.0])
    th = _thresholds(config(), c)[Kind.INGESTION]
    # low: 1.5 x 2000 x 1.25 = 3750 (limit) vs max(1.5 x 1000 x 1.25, 1000) = 1875 (traffic)
    assert th.value.tolist() == [1875.0, 1875.0]
    static = config(circuitBreaker={"autoConfig": {"realtimeAdaptation": {"enabled": False}}})
    c2 = Cluster(("low", "high"), ingestion_rate=[2000.0, 1_000_000.0])
    assert _thresholds(static, c2)[Kind.INGESTION].value.tolist() == [3750.0, 1_875_000.0]


def test_query_thresholds_follow_the_baseline_with_a_floor() -> None:
    c = Cluster(("quiet", "busy"))
    c.values[SIG_QUERIES] = np.array([0.0, 100.0])
    th = _thresholds(config(), c)[Kind.QUERY]
    assert th.value.tolist() == [5.0, 250.0]  # floor 5 q/s; 2.0 x 100 x 1.25


def test_manual_and_hybrid_thresholds() -> None:
    manual = config(
        circuitBreaker={
            "mode": "manual",
            "thresholds": {"series": 500_000},
            "perTenantConfig": {"b": {"thresholds": {"series": 70_000}}},
        }
    )
    c = Cluster(("a", "b"))
    assert _thresholds(manual, c)[Kind.SERIES].value.tolist() == [500_000.0, 70_000.0]
    assert _thresholds(manual, Cluster(("a", "b")))[Kind.QUERY].value.tolist() == [
        math.inf,
        math.inf,
    ]
    hybrid = config(
        circuitBreaker={
            "mode": "hybrid",
            "blastProtection": {"tenantOverrides": {"b": {"seriesSpikeThreshold": 90_000}}},
        }
    )
    assert _thresholds(hybrid, Cluster(("a", "b")))[Kind.SERIES].value.tolist() == [
        60_000.0,  # auto: 1.2 x 40K x 1.25
        90_000.0,  # its manual value
    ]
    margins = config(
        circuitBreaker={"autoConfig": {"safetyMargins": {"tenantMargins": {"b": 100}}}}
    )
    assert _thresholds(margins, Cluster(("a", "b")))[Kind.SERIES].value.tolist() == [
        60_000.0,
        96_000.0,  # 1.2 x 40K x 2
    ]


def test_adaptation_moves_baselines_by_the_learning_rate_bounded_per_cycle() -> None:
    cfg = config(
        circuitBreaker={
            "autoConfig": {
                "realtimeAdaptation": {
                    "interval": "60s",
                    "learningRate": 0.5,
                    "maxChangePercent": 20,
                    "percentile": 50,
                }
            }
        }
    )
    c = Cluster(("up", "down"))
    c.tick(cfg, T0)  # baselines start at 40K series
    c.set(SIG_SERIES, "up", 44_000.0)  # +10%: half the gap = +2K (< 20% bound)
    c.set(SIG_SERIES, "down", 10_000.0)  # -75%: half the gap = -15K, bounded to -8K
    run(c, cfg, T0 + 15, T0 + 45)
    assert c.state.baselines["series"].tolist() == [40_000.0, 40_000.0]  # not yet a cycle
    c.tick(cfg, T0 + 60)
    assert c.state.baselines["series"].tolist() == [42_000.0, 32_000.0]


def test_blasting_and_open_tenants_do_not_teach_the_baseline() -> None:
    cfg = config(circuitBreaker={"autoConfig": {"realtimeAdaptation": {"interval": "60s"}}})
    c = Cluster(("a",))
    c.tick(cfg, T0)
    c.set(SIG_SERIES, "a", 400_000.0)
    run(c, cfg, T0 + 15, T0 + 300)
    assert c.breaker("a", Kind.SERIES) is OPEN
    assert c.state.baselines["series"].tolist() == [40_000.0]


# --- clamps ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("limit_value", "floors", "depth", "usage", "expected"),
    [
        (1_000_000.0, {}, 90, 100_000.0, 105_000.0),  # usage + 5%
        (1_000_000.0, {SERIES: 300_000}, 90, 100_000.0, 300_000.0),  # configured floor
        (1_000_000.0, {}, 50, 100_000.0, 105_000.0),  # a freeze ignores the depth
        (8_000.0, {}, 90, 20_000.0, None),  # at or below the catalogue floor (10K): untouched
        (0.0, {}, 90, 100_000.0, 105_000.0),  # from unlimited: no depth bound
    ],
    ids=["freeze", "floor", "depth", "target-below-floor", "unlimited"],
)
def test_series_caps_respect_floors_and_depth(
    limit_value: float, floors: dict[str, float], depth: float, usage: float, expected: float | None
) -> None:
    cfg = config(circuitBreaker={"floors": floors, "maxClampDepthPercent": depth})
    c = Cluster(("a",), max_global_series_per_user=[limit_value])
    c.set(SIG_SERIES, "a", usage / 4)
    run(c, cfg, T0, T0 + 30)
    c.set(SIG_SERIES, "a", usage)
    run(c, cfg, T0 + 45, T0 + 90)
    assert c.breaker("a", Kind.SERIES) is OPEN
    assert c.cap("a", SERIES) == expected


def test_recovery_from_unlimited_takes_the_same_steps_and_restores_zero() -> None:
    cfg = config(circuitBreaker={"recovery": {"stepPercent": 25, "stepInterval": "30s"}})
    c = Cluster(("a",), max_global_series_per_user=[0.0])
    run(c, cfg, T0, T0 + 30)
    c.set(SIG_SERIES, "a", 100_000.0)
    run(c, cfg, T0 + 45, T0 + 75)
    assert c.cap("a", SERIES) == 105_000.0
    c.set(SIG_SERIES, "a", 40_000.0)
    caps = []
    for k in range(6):
        c.tick(cfg, T0 + 150 + 30 * k)
        caps.append(c.cap("a", SERIES))
    # +25% of the starting cap per step, rounded up to readable values (131,250 -> 132,000);
    # the 4th step restores "unlimited" (0).
    assert caps == [132_000.0, 159_000.0, 186_000.0, None, None, None]
    assert c.breaker("a", Kind.SERIES) is CLOSED


def test_query_breaker_halves_parallelism_down_to_its_floor() -> None:
    cfg = config()
    c = Cluster(("a", "b"), max_query_parallelism=[14.0, 1.0])
    c.values[SIG_QUERIES] = np.array([10.0, 10.0])
    run(c, cfg, T0, T0 + 30)
    c.values[SIG_QUERIES] = np.array([500.0, 500.0])
    run(c, cfg, T0 + 45, T0 + 90)
    assert c.breaker("a", Kind.QUERY) is OPEN and c.cap("a", "max_query_parallelism") == 7.0
    assert c.breaker("b", Kind.QUERY) is OPEN and c.cap("b", "max_query_parallelism") is None


# --- cluster-wide detectors -----------------------------------------------------------------
def test_a_global_blast_opens_only_the_top_contributors() -> None:
    cfg = config(
        circuitBreaker={
            "blastProtection": {
                "ingestionSpikeThreshold": 50_000,
                "topContributorShare": 80,
                "maxTenantsPerEvent": 5,
            },
            # per-tenant thresholds out of the way: only the global detector acts
            "mode": "manual",
        }
    )
    tenants = ("big", "mid", "small", "quiet")
    c = Cluster(tenants, ingestion_rate=[1e6] * 4)
    c.values[SIG_INGESTION] = np.array([10_000.0, 10_000.0, 10_000.0, 10_000.0])
    run(c, cfg, T0, T0 + 30)
    # Excess above baselines: big 30K, mid 8K, small 2K, quiet 0 -> 80% of 40K = big + mid.
    c.values[SIG_INGESTION] = np.array([40_000.0, 18_000.0, 12_000.0, 10_000.0])
    c.tick(cfg, T0 + 45)
    assert "blast_detected" not in c.actions()  # not sustained yet
    c.tick(cfg, T0 + 75)
    opened = [t for t in tenants if c.breaker(t, Kind.INGESTION) is OPEN]
    assert opened == ["big", "mid"]
    detected = next(e for e in c.events if e.action == "blast_detected")
    assert detected.details["contributors"] == ["big", "mid"]
    c.values[SIG_INGESTION] = np.full(4, 10_000.0)
    c.tick(cfg, T0 + 90)
    assert c.actions()[-1] == "blast_cleared"


def test_a_global_blast_nobody_caused_opens_nothing() -> None:
    cfg = config(circuitBreaker={"mode": "manual", "blastProtection": {"querySpikeThreshold": 100}})
    c = Cluster(("a", "b"))
    c.values[SIG_QUERIES] = np.array([80.0, 80.0])  # steady since the start: the baseline
    run(c, cfg, T0, T0 + 60)
    detected = next(e for e in c.events if e.action == "blast_detected")
    assert detected.details["attributable"] is False
    assert all(c.breaker(t, Kind.QUERY) is CLOSED for t in ("a", "b"))


# --- pressure levels --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("resource", "percent", "held", "level"),
    [
        ("ingester_series", 80.0, 45, Level.NORMAL),  # 45 s < 1 m
        ("ingester_series", 80.0, 60, Level.WARNING),
        ("ingester_series", 92.0, 60, Level.EMERGENCY),
        ("ingester_series", 96.0, 60, Level.PANIC),
        ("ingester_cpu", 91.0, 105, Level.NORMAL),  # cpu: 2 m
        ("ingester_cpu", 91.0, 120, Level.PANIC),  # cpu panic threshold 90
        ("ingester_memory", 86.0, 60, Level.PANIC),  # memory panic threshold 85
        ("distributor_memory", 84.0, 60, Level.WARNING),  # emergency = min(90, panic 85)
        ("ingestion", 74.0, 600, Level.NORMAL),
    ],
)
def test_levels_need_their_sustained_for(
    resource: str, percent: float, held: float, level: Level
) -> None:
    cfg = config(
        emergency={"warningActions": [], "emergencyActions": [], "panicMode": {"actions": []}}
    )
    c = Cluster(("a",))
    c.pressure[resource] = percent
    run(c, cfg, T0, T0 + held)
    assert Level(c.state.pressure.level) is level


def test_components_down_and_reload_failures_raise_their_levels() -> None:
    cfg = config(emergency={"componentDownLevel": "emergency", "emergencyActions": ["alert"]})
    c = Cluster(("a",))
    c.down = {"mimir/ingester": 1}
    run(c, cfg, T0, T0 + 45)
    assert Level(c.state.pressure.level) is Level.NORMAL
    c.tick(cfg, T0 + 60)
    assert Level(c.state.pressure.level) is Level.EMERGENCY
    c.down = {}
    c.reload_ok = False
    c.tick(cfg, T0 + 75)  # reload failures count at once (sustainedFor.reload 0s)
    assert Level(c.state.pressure.level) is Level.WARNING


# --- emergency actions and recovery -------------------------------------------------------------
def _pressure_cluster() -> Cluster:
    c = Cluster(("blaster", "steady", "small"), max_global_series_per_user=[1e6, 1e6, 1e6])
    c.values[SIG_SERIES] = np.array([100_000.0, 200_000.0, 20_000.0])
    return c


def test_emergency_freezes_growth_once_and_never_ratchets_down() -> None:
    cfg = config(emergency={"sustainedFor": {"series": "0s"}, "actionInterval": "30s"})
    c = _pressure_cluster()
    run(c, cfg, T0, T0 + 30)
    c.pressure["ingester_series"] = 92.0
    c.tick(cfg, T0 + 45)
    assert Level(c.state.pressure.level) is Level.EMERGENCY
    assert [c.cap(t, SERIES) for t in c.tenants] == [105_000.0, 210_000.0, 21_000.0]
    c.values[SIG_SERIES] = np.array([90_000.0, 150_000.0, 20_000.0])  # churn lowers usage
    run(c, cfg, T0 + 60, T0 + 180)
    assert [c.cap(t, SERIES) for t in c.tenants] == [105_000.0, 210_000.0, 21_000.0]


def test_panic_reduces_top_contributors_in_proportion_never_below_baseline() -> None:
    cfg = config(
        emergency={"sustainedFor": {"series": "0s"}, "panicMode": {"actions": ["reduce_limits"]}}
    )
    c = _pressure_cluster()
    run(c, cfg, T0, T0 + 30)  # baselines 100K, 200K, 20K
    c.values[SIG_SERIES] = np.array([400_000.0, 300_000.0, 20_000.0])  # excess 300K and 100K
    c.pressure["ingester_series"] = 100.0
    # per-tenant breakers out of the way: this is about the emergency action
    c.tick(
        cfg.model_copy(
            update={"circuit_breaker": cfg.circuit_breaker.model_copy(update={"enabled": False})}
        ),
        T0 + 45,
    )
    assert Level(c.state.pressure.level) is Level.PANIC
    # Shed 15% of 720K = 108K, split 3:1 by excess: 81K and 27K; "small" has no excess.
    assert c.cap("blaster", SERIES) == 319_000.0
    assert c.cap("steady", SERIES) == 273_000.0
    assert c.cap("small", SERIES) is None


def test_a_blanket_cut_happens_only_as_an_explicit_opt_in_and_keeps_floors() -> None:
    base = {"sustainedFor": {"series": "0s"}}
    for actions, cut in ((["alert", "reduce_top_contributors"], False), (["blanket_cut"], True)):
        cfg = config(emergency={**base, "panicMode": {"actions": actions}})
        c = Cluster(("a", "b"), max_global_series_per_user=[1e6, 12_000.0])
        run(c, cfg, T0, T0 + 30)
        c.pressure["ingester_series"] = 99.0
        c.tick(cfg, T0 + 45)
        if cut:
            assert c.cap("a", SERIES) == 500_000.0
            assert c.cap("b", SERIES) == 10_000.0  # 6K would break the catalogue floor
        else:
            assert c.cap("a", SERIES) is None and c.cap("b", SERIES) is None


def test_exempt_tenants_are_never_touched_by_emergency_actions() -> None:
    cfg = config(emergency={"sustainedFor": {"series": "0s"}, "exemptTenants": ["steady"]})
    c = _pressure_cluster()
    run(c, cfg, T0, T0 + 15)
    c.pressure["ingester_series"] = 92.0
    c.tick(cfg, T0 + 30)
    assert c.cap("steady", SERIES) is None and c.cap("blaster", SERIES) == 105_000.0


def test_recovery_is_gradual_and_a_relapse_halts_it() -> None:
    cfg = config(
        emergency={
            "sustainedFor": {"series": "0s"},
            "recovery": {"stableFor": "60s", "stepPercent": 25, "stepInterval": "30s"},
        }
    )
    c = _pressure_cluster()
    run(c, cfg, T0, T0 + 15)
    c.pressure["ingester_series"] = 92.0
    c.tick(cfg, T0 + 30)  # frozen at 105K (target 1M)
    c.pressure["ingester_series"] = 50.0
    run(c, cfg, T0 + 45, T0 + 90)  # stable 45 s < 60 s: nothing yet
    assert c.cap("blaster", SERIES) == 105_000.0
    c.tick(cfg, T0 + 105)  # stable 60 s: first step, +25% of 1M
    assert c.cap("blaster", SERIES) == 355_000.0
    c.pressure["ingester_series"] = 80.0  # relapse: over the warning threshold
    c.tick(cfg, T0 + 135)
    assert c.actions()[-1] == "emergency_recovery_halted"
    assert c.cap("blaster", SERIES) == 355_000.0
    c.pressure["ingester_series"] = 50.0
    run(c, cfg, T0 + 150, T0 + 195)  # stable again from 150: 45 s
    assert c.cap("blaster", SERIES) == 355_000.0
    run(c, cfg, T0 + 210, T0 + 300)  # steps at 210, 240, 270: 605K, 855K, restored
    assert c.cap("blaster", SERIES) is None
    assert "emergency_recovery_complete" in c.actions()
    assert c.state.clamps == {}  # nothing was written: the entries are forgotten


# --- state ----------------------------------------------------------------------------------------
def test_state_round_trips_through_json() -> None:
    cfg = config()
    c = Cluster(("a", "b"))
    run(c, cfg, T0, T0 + 30)
    c.set(SIG_SERIES, "a", 400_000.0)
    c.pressure["ingester_series"] = 80.0
    run(c, cfg, T0 + 45, T0 + 120)
    text = json.dumps(c.state.to_json())
    again = ProtectionState.from_json(json.loads(text))
    assert json.dumps(again.to_json()) == text
    assert again.clamps == c.state.clamps
    with pytest.raises(ValueError, match="version"):
        ProtectionState.from_json({**json.loads(text), "version": 99})


def test_a_tick_over_20000_tenants_is_fast() -> None:
    """Vectorised over tenants: a tick over 20,000 tenants with a few blasting stays well
    under the fast loop's 15 s (the budget here is 2 s, on a slow CI machine)."""
    n = 20_000
    tenants = tuple(f"tenant-{i:05d}" for i in range(n))
    c = Cluster(tenants)
    cfg = config()
    c.tick(cfg, T0)
    c.values[SIG_SERIES][:10] = 400_000.0
    started = time.perf_counter()
    run(c, cfg, T0 + 15, T0 + 60)
    assert time.perf_counter() - started < 2.0
    assert sum(c.breaker(t, Kind.SERIES) is OPEN for t in tenants[:12]) == 10


def test_caps_are_readable_values_within_the_floor_rules() -> None:
    """30,010 -> 30,000 (tighter); a value whose rounding down would break the floor or the depth
    bound is rounded up instead; a freeze at usage + margin is rounded up (keeps its margin)."""
    from mimir_limit_optimizer.engine.protection.clamps import bounded

    cfg = config(circuitBreaker={"maxClampDepthPercent": 90})
    limit = "max_global_series_per_user"
    assert bounded(30_010.0, 100_000.0, limit, cfg, CATALOGUE) == 30_000.0
    assert bounded(123_456.0, 1_000_000.0, limit, cfg, CATALOGUE) == 123_000.0
    # The depth bound (90% of 1M: nothing below 100K): 100,050 must not round to 100,000 - 1.
    assert bounded(50_000.0, 1_000_000.0, limit, cfg, CATALOGUE) == 100_000.0
    floored = config(circuitBreaker={"floors": {limit: 30_010}, "maxClampDepthPercent": 99})
    assert bounded(30_010.0, 100_000.0, limit, floored, CATALOGUE) == 30_100.0
    assert bounded(168_420.0, 1_000_000.0, limit, cfg, CATALOGUE, depth=False) == 169_000.0
