"""The one planning pipeline (engine/planning.py) on hand-made arrays: every change carries the
engine's target beside the next step (a tenant using 2K samples/s on a 10K limit is heading to
about 2.4K while the next write is 9K), bounds that contain the target, protection and budget
caps, the safety caps with their reasons, and a move beyond safety.maxChangePercent that is
stepped within it instead of being held back forever."""

from __future__ import annotations

import numpy as np
import pytest

from mimir_limit_optimizer.engine.cost.enforce import Cap
from mimir_limit_optimizer.engine.plan import Change, Plan
from mimir_limit_optimizer.engine.planning import (
    GuardInputs,
    bounds,
    combine,
    item_rows,
    plan_cycle,
)
from mimir_limit_optimizer.engine.protection.guard import ProtectionCap
from mimir_limit_optimizer.engine.safety import apply_safety
from tests.test_engine import CATALOGUE, NOW, config, daily, observe


def _plan(guards: GuardInputs | None = None, **sections: object):
    obs = observe(
        {"ingestion_rate": [daily(2000.0, 0.0), daily(6000.0, 0.0), daily(50_000.0, 0.0)]},
        current={"ingestion_rate": [10_000.0, 10_000.0, 10_000.0]},
        tenants=["quiet", "steady", "busy"],
    )
    # Lowerings in the 10% steps of changePolicy (no larger "safe lowering" steps).
    sections.setdefault("trendAnalysis", {"adaptive": {"safeLoweringPercent": 0}})
    cfg = config(dynamicLimits={"enabledLimits": ["ingestion_rate"]}, **sections)
    return plan_cycle(obs, {}, cfg, CATALOGUE, guards=guards or GuardInputs(), now=NOW, limits=None)


def test_each_change_carries_the_target_and_the_next_step() -> None:
    plan = _plan()
    item = next(i for i in plan.items if i.tenant == "quiet")
    assert item.step == 9000.0  # lowering is limited to 10% per cycle
    assert item.target == pytest.approx(2400.0, rel=0.05)  # 2K x 1.2 buffer, readable
    assert item.held is None
    busy = next(i for i in plan.items if i.tenant == "busy")
    assert busy.step == 20_000.0 and busy.target == 60_000.0  # a raise: +100% per cycle
    row = next(r for r in item_rows(plan) if r["tenant"] == "quiet")
    assert (row["target"], row["recommended"], row["held"]) == (2400, 9000, None)


def test_bounds_contain_the_target_and_widen_with_less_confidence() -> None:
    plan = _plan()
    result = plan.recommendations.results["ingestion_rate"]
    for i in range(len(plan.recommendations.tenants)):
        lower, upper = bounds(result, i)
        assert lower <= result.target_of(i) <= upper
    confident = bounds(result, 0)
    result.confidence[0] = 0.2
    assert bounds(result, 0)[1] > confident[1]


def test_a_move_beyond_max_change_percent_is_stepped_within_it() -> None:
    plan = _plan(safety={"maxChangePercent": 30})
    busy = next(i for i in plan.items if i.tenant == "busy")
    assert busy.held is None and busy.step == 13_000.0  # 10K + 30%, readable, within
    assert "safety.maxChangePercent (30%)" in busy.reasons[-1]
    assert busy.target == 60_000.0  # the engine's answer is still shown


def test_a_step_that_readable_rounding_cannot_make_is_held_with_the_cap_named() -> None:
    cfg = config(safety={"maxChangePercent": 0.001})
    burst = Plan((Change("t", "max_queriers_per_tenant", 10.0, 100.0, ("r",)),))
    result = apply_safety(burst, cfg, last_changed={}, now=NOW, catalogue=CATALOGUE)
    (held,) = result.held_back
    assert held.reason.startswith("held: a +900% move exceeds safety.maxChangePercent")
    # A count steps in whole units, as far as the cap allows.
    cfg = config(safety={"maxChangePercent": 50})
    stepped = apply_safety(burst, cfg, last_changed={}, now=NOW, catalogue=CATALOGUE)
    assert [c.new for c in stepped.allowed.changes] == [15.0]


def test_safety_caps_hold_with_their_reasons() -> None:
    plan = _plan(safety={"pinnedTenants": ["quiet"], "maxTenantsPerCycle": 1})
    held = {i.tenant: i.held for i in plan.items}
    assert held["quiet"] == "pinned: listed in safety.pinnedTenants"
    assert held["busy"] is None  # raises first
    assert held["steady"] is not None and "maxTenantsPerCycle" in held["steady"]
    assert [c.tenant for c in plan.writes.changes] == ["busy"]
    cooled = _plan(GuardInputs(last_changed={("busy", "ingestion_rate"): NOW - 60}))
    assert next(i for i in cooled.items if i.tenant == "busy").held.startswith("cooldown")


def test_protection_caps_hold_and_budget_caps_shape_the_plan_only_when_acting() -> None:
    caps = {("busy", "ingestion_rate"): ProtectionCap(12_000.0, ("blast",))}
    plan = _plan(GuardInputs(protection=caps))
    busy = next(i for i in plan.items if i.tenant == "busy")
    assert busy.step == 12_000.0 and "held at 12000 by protection (blast)" in busy.reasons
    cap = Cap("steady", "ingestion_rate", 5000.0, 1000.0, False, "tenant:steady", "month",
              1.0, 2.0, 3.0, 0.1, "budget: over")  # fmt: skip
    dry = _plan(GuardInputs(budget=(cap,), budget_acting=False))
    assert next(i for i in dry.items if i.tenant == "steady").step != 5000.0
    assert [o.note for o in dry.budget] == ["capped"]  # reported as "would cap"
    prod = _plan(GuardInputs(budget=(cap,), budget_acting=True))
    assert next(i for i in prod.items if i.tenant == "steady").step == 5000.0


def test_combined_guards_keep_the_lower_protection_cap() -> None:
    key = ("a", "ingestion_rate")
    merged = combine(
        [
            GuardInputs(protection={key: ProtectionCap(5.0)}),
            GuardInputs(protection={key: ProtectionCap(3.0)}, budget_acting=True),
        ],
        {("a", "x"): 1.0},
    )
    assert merged.protection[key].value == 3.0 and merged.budget_acting
    assert merged.last_changed == {("a", "x"): 1.0}


def test_the_target_stays_put_while_the_steps_walk_towards_it() -> None:
    first = _plan()
    steps = {i.tenant: i.step for i in first.items}
    obs = observe(
        {"ingestion_rate": [daily(2000.0, 0.0), daily(6000.0, 0.0), daily(50_000.0, 0.0)]},
        current={"ingestion_rate": [steps["quiet"], steps["steady"], steps["busy"]]},
        tenants=["quiet", "steady", "busy"],
    )
    cfg = config(
        dynamicLimits={"enabledLimits": ["ingestion_rate"]},
        trendAnalysis={"adaptive": {"safeLoweringPercent": 0}},
    )
    again = plan_cycle(obs, {}, cfg, CATALOGUE, guards=GuardInputs(), now=NOW)
    for before, after in zip(first.items, again.items, strict=True):
        assert after.target == before.target
        assert abs(after.step - after.target) < abs(before.step - before.target)


# --- protection's decisions, pure (engine/protection/guard.py) ----------------------------------
def test_the_value_in_force_is_the_override_then_the_source_then_the_defaults() -> None:
    from mimir_limit_optimizer.engine.protection.guard import in_force

    cfg = config(dynamicLimits={"limitOverrides": {"ingestion_rate": {"defaultValue": 7000}}})
    values = in_force(
        cfg,
        CATALOGUE,
        ["a", "b", "c"],
        {"ingestion_rate": np.array([1.0, np.nan, np.nan])},
        {"b": {"ingestion_rate": 2.0}},
    )
    assert values["ingestion_rate"].tolist() == [1.0, 2.0, 7000.0]
    series = CATALOGUE.limits["max_global_series_per_user"].default
    assert values["max_global_series_per_user"].tolist() == [series] * 3


def test_clamp_writes_tighten_restore_and_leave_other_peoples_values_alone() -> None:
    from mimir_limit_optimizer.engine.overrides import parse_overrides
    from mimir_limit_optimizer.engine.protection import Clamp
    from mimir_limit_optimizer.engine.protection.guard import clamp_writes

    doc = parse_overrides(
        "overrides:\n  a:\n    ingestion_rate: 10000\n  b:\n    ingestion_rate: 5000\n"
        "  c:\n    ingestion_rate: 9000\n"
    )
    clamps = {
        ("a", "ingestion_rate"): Clamp(target=10000.0, since=NOW, breaker=4000.0),
        # b: protection wrote 5000 and the clamp is released: restore 8000.
        ("b", "ingestion_rate"): Clamp(target=8000.0, since=NOW, written=5000.0),
        # c: protection wrote 3000, someone set 9000 since: theirs now.
        ("c", "ingestion_rate"): Clamp(target=8000.0, since=NOW, written=3000.0),
    }
    asked = clamp_writes(clamps, doc, CATALOGUE, acting=True)
    got = {w.key[0]: (w.change.old, w.change.new, w.tightening) for w in asked.writes}
    assert got == {"a": (10000.0, 4000.0, True), "b": (5000.0, 8000.0, False)}
    assert asked.forget == (("c", "ingestion_rate"),)
    assert clamps[("c", "ingestion_rate")].written == 3000.0  # decided, not done: no mutation
    idle = clamp_writes(clamps, doc, CATALOGUE, acting=False)
    assert [w.key[0] for w in idle.writes] == ["b"]  # switched off: only restores
