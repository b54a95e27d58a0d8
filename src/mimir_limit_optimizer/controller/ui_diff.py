"""Side-by-side diffs of overrides revisions and their impact (limits up and down)."""

from __future__ import annotations

import difflib
import math
from typing import Literal

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.engine.overrides import OverridesParseError, parse_overrides
from mimir_limit_optimizer.web.ui.model import DiffLine, Impact

MAX_ROWS = 2_000  # rows of a side-by-side diff shown; the rest is counted, not rendered
CONTEXT = 3  # unchanged lines kept around each change
EXACT_UP_TO = 20_000  # lines per side matched by difflib; longer texts are paired by position


def _opcodes(a: list[str], b: list[str]) -> list[tuple[str, int, int, int, int]]:
    if max(len(a), len(b)) <= EXACT_UP_TO:
        matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
        return [(op, i1, i2, j1, j2) for op, i1, i2, j1, j2 in matcher.get_opcodes()]
    # Large files (10k tenants): difflib is quadratic on YAML's many repeated lines. The
    # optimizer edits values in place and appends keys, so pairing lines by position shows
    # the same changes at linear cost.
    out: list[tuple[str, int, int, int, int]] = []
    common = min(len(a), len(b))
    for i in range(common):
        op = "equal" if a[i] == b[i] else "replace"
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1], i + 1, out[-1][3], i + 1)
        else:
            out.append((op, i, i + 1, i, i + 1))
    if len(a) != len(b):
        out.append(("replace", common, len(a), common, len(b)))
    return out


def side_by_side(left: str, right: str) -> tuple[tuple[DiffLine, ...], int]:
    """Rows of the changes with CONTEXT unchanged lines around each, at most MAX_ROWS, and
    how many changed rows were left out."""
    a, b = left.splitlines(), right.splitlines()
    out: list[DiffLine] = []
    hidden = 0
    codes = _opcodes(a, b)
    for n, (op, i1, i2, j1, j2) in enumerate(codes):
        if op == "equal":
            size = i2 - i1
            keep = range(size)
            if size > 2 * CONTEXT:
                head = range(CONTEXT) if n > 0 else range(0)
                tail = range(size - CONTEXT, size) if n < len(codes) - 1 else range(0)
                keep = [*head, *tail]  # type: ignore[assignment]
            rows = [DiffLine(i1 + k + 1, a[i1 + k], j1 + k + 1, b[j1 + k], "same") for k in keep]
            if len(out) + len(rows) <= MAX_ROWS:
                out.extend(rows)
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            li, rj = i1 + k, j1 + k
            has_l, has_r = li < i2, rj < j2
            if len(out) >= MAX_ROWS:
                hidden += 1
                continue
            kind: Literal["changed", "removed", "added"] = (
                "changed" if has_l and has_r else "removed" if has_l else "added"
            )
            out.append(
                DiffLine(
                    li + 1 if has_l else None,
                    a[li] if has_l else "",
                    rj + 1 if has_r else None,
                    b[rj] if has_r else "",
                    kind,
                )
            )
    return tuple(out), hidden


def impact(left: str, right: str, catalogue: Catalogue) -> tuple[Impact, ...]:
    """Every managed tenant x limit whose value differs between the two files."""
    try:
        before, after = parse_overrides(left), parse_overrides(right)
    except OverridesParseError:
        return ()
    out: list[Impact] = []
    for tenant in sorted(set(before.tenants()) | set(after.tenants())):
        names = set(before.limits_of(tenant)) | set(after.limits_of(tenant))
        for name in sorted(names):
            spec = catalogue.limits.get(name)
            if spec is None:
                continue
            try:
                old, new = before.number(tenant, spec), after.number(tenant, spec)
            except ValueError:
                continue
            if old == new or (old is not None and new is not None and math.isclose(old, new)):
                continue
            out.append(Impact(tenant, name, old, new))
    return tuple(out)
