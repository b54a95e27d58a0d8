"""Side-by-side diffs of overrides revisions and their impact (limits up and down)."""

from __future__ import annotations

import difflib
import math
from typing import Literal

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.engine.overrides import OverridesParseError, parse_overrides
from mimir_limit_optimizer.web.ui.model import DiffLine, Impact

MAX_LINES = 20_000  # a diff longer than this is cut (the page says so)


def side_by_side(left: str, right: str) -> tuple[DiffLine, ...]:
    a, b = left.splitlines(), right.splitlines()
    out: list[DiffLine] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.extend(
                DiffLine(i1 + k + 1, a[i1 + k], j1 + k + 1, b[j1 + k], "same")
                for k in range(i2 - i1)
            )
            continue
        span = max(i2 - i1, j2 - j1)
        for k in range(span):
            li, rj = i1 + k, j1 + k
            has_l, has_r = li < i2, rj < j2
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
        if len(out) > MAX_LINES:
            break
    return tuple(out[:MAX_LINES])


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
