"""Current content vs pending plan in pages of changed tenants (controller/ui_pending.py): every
row of every page shows the line the whole-file rendering has at that number, on both sides,
and files the line scan does not understand fall back to the whole-file rendering."""

from __future__ import annotations

import math
import random

import pytest

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.controller import ui_diff, ui_pending
from mimir_limit_optimizer.controller.ui_pending import PendingPages, scan_layout
from mimir_limit_optimizer.engine.overrides import parse_overrides
from mimir_limit_optimizer.engine.plan import Change, Plan, apply_plan

CURRENT = """\
# written by hand, then by the optimizer
overrides:
  # the big one
  tenant-a:
    ingestion_rate: 10000  # raised in March
    max_global_series_per_user: 150000

  'tenant.b':
    ingestion_rate: 5000
  tenant-c:
    ingestion_rate: 7000
  tenant-d: {}
  tenant-e:
    ingestion_burst_size: 100000
  tenant-f: {ingestion_rate: 100}
"""


def changes() -> list[Change]:
    raw = [
        ("tenant-a", "ingestion_rate", 10000, 12000),
        ("tenant-a", "ingestion_burst_size", math.nan, 240000),  # added to a block
        ("tenant.b", "ingestion_rate", 5000, 4500),
        ("tenant-d", "ingestion_rate", math.nan, 3000),
        ("tenant-e", "ingestion_burst_size", 100000, 90000),
        ("tenant-f", "ingestion_burst_size", math.nan, 200),  # a flow mapping stays one line
        ("tenant-new", "ingestion_rate", math.nan, 1000),  # a new tenant, at the end
        ("tenant-new", "max_global_series_per_user", math.nan, 20000),
        ("tenant-z", "ingestion_rate", math.nan, 2000),
    ]
    return [Change(t, limit, old, new, ()) for t, limit, old, new in raw]


@pytest.mark.parametrize("per_page", [1, 2, 50])
def test_every_page_row_is_the_line_of_the_whole_rendering(
    per_page: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ui_pending, "TENANTS_PER_PAGE", per_page)
    catalogue = load_catalogue()
    plan = changes()
    document = parse_overrides(CURRENT)
    apply_plan(document, Plan(tuple(plan)), catalogue)
    whole = document.render().splitlines()
    before = CURRENT.splitlines()
    layout = scan_layout(CURRENT)
    assert layout is not None
    pages = PendingPages(layout, plan, catalogue)
    assert pages.pages == -(-7 // per_page)  # seven tenants change
    assert pages.tenants[-2:] == ["tenant-new", "tenant-z"]  # new tenants last, by name
    seen_right: set[int] = set()
    for number in range(1, pages.pages + 1):
        found = pages.page(number)
        assert found is not None
        rows, impact = found
        assert impact and {i.tenant for i in impact} <= set(pages.tenants)
        for row in rows:
            if row.left_no is not None:
                assert before[row.left_no - 1] == row.left, row
            if row.right_no is not None:
                assert whole[row.right_no - 1] == row.right, row
                seen_right.add(row.right_no)
    changed = {n + 1 for n, line in enumerate(whole) if line not in before}
    assert changed and changed <= seen_right  # every new or edited line is on some page


@pytest.mark.parametrize(
    "text",
    [
        "overrides:\n  a: &base\n    ingestion_rate: 1\n  b: *base\n",  # anchors
        "overrides: {a: {ingestion_rate: 1}}\n",  # flow style at the top
        "overrides:\n\ta:\n\t\tingestion_rate: 1\n",  # tabs
        'overrides:\n  "a\\u0041":\n    ingestion_rate: 1\n',  # escapes in a key
    ],
)
def test_files_the_scan_does_not_understand_fall_back(text: str) -> None:
    assert scan_layout(text) is None


def reference_impact(left: str, right: str) -> set[tuple[str, str, float | None, float | None]]:
    """The impact by the round-trip parser the applier uses."""
    catalogue = load_catalogue()
    before, after = parse_overrides(left), parse_overrides(right)
    out = set()
    for tenant in set(before.tenants()) | set(after.tenants()):
        for name in set(before.limits_of(tenant)) | set(after.limits_of(tenant)):
            spec = catalogue.limits.get(name)
            if spec is None:
                continue
            try:
                old, new = before.number(tenant, spec), after.number(tenant, spec)
            except ValueError:
                continue
            if old != new:
                out.add((tenant, name, old, new))
    return out


IMPACT_LEFT = """\
overrides:
  t1:
    ingestion_rate: 1e6  # scientific
    compactor_blocks_retention_period: 30d
    ingestion_burst_size: '5'
    max_global_series_per_user: 100
  t2: {}
  t3:
    ingestion_rate: 5
  "t5":
    ingestion_rate: 1
"""
IMPACT_RIGHT = """\
overrides:
  t1:
    ingestion_rate: 2000000
    compactor_blocks_retention_period: 720h
    max_global_series_per_user: 100
  t2:
    ingestion_rate: 7
  t4:
    max_global_series_per_user: 10
  "t5":
    ingestion_rate: 1.0
"""


def test_impact_by_the_line_scan_agrees_with_the_round_trip_parser() -> None:
    assert ui_diff._scanned_tenants(IMPACT_LEFT, IMPACT_RIGHT) is not None  # the fast path
    found = {(i.tenant, i.limit, i.before, i.after) for i in ui_diff.impact(
        IMPACT_LEFT, IMPACT_RIGHT, load_catalogue()
    )}  # fmt: skip
    assert found == reference_impact(IMPACT_LEFT, IMPACT_RIGHT)
    assert ("t1", "ingestion_rate", 1e6, 2e6) in found and len(found) == 4


def test_anchored_diff_of_long_texts_rebuilds_the_right_side() -> None:
    rng = random.Random(7)
    for _ in range(30):
        # Like an overrides file: a unique tenant line, then lines repeated all over.
        a: list[str] = []
        for k in range(rng.randint(700, 1000)):
            a.append(f"  tenant-{k}:")
            a.extend(f"    l{rng.randint(0, 5)}: {rng.randint(0, 9)}" for _ in range(3))
        b = list(a)
        for _ in range(rng.randint(1, 30)):
            k = rng.randint(0, len(b) - 1)
            roll = rng.random()
            if roll < 0.4:
                b.insert(k, f"new{rng.randint(0, 99)}")
            elif roll < 0.7:
                del b[k]
            else:
                b[k] = f"changed{rng.randint(0, 99)}"
        codes = ui_diff._opcodes(a, b)
        rebuilt: list[str] = []
        at_a = at_b = 0
        for op, i1, i2, j1, j2 in codes:
            assert (i1, j1) == (at_a, at_b)
            if op == "equal":
                assert a[i1:i2] == b[j1:j2]
            rebuilt += b[j1:j2]
            at_a, at_b = i2, j2
        assert (at_a, at_b) == (len(a), len(b)) and rebuilt == b
        same = sum(i2 - i1 for op, i1, i2, _j1, _j2 in codes if op == "equal")
        assert same >= len(a) - 40 * 4  # each edit disturbs at most its tenant's block
