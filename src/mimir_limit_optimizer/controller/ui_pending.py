"""The Diff viewer's "current content vs pending plan", one page of changed tenants at a time.

Rendering the whole pending file of 10,000 tenants (ruamel dumps ~80,000 lines) and diffing it
took seconds on the first view. The plan already says which tenants change, so a page only
renders those tenants' blocks: the tenant blocks of the current text are located once by a
line scan (`Layout`), a page's blocks are parsed and edited as a small overrides document by
the same code the applier uses (`parse_overrides`, `OverridesDocument.set`) and diffed; line
numbers are mapped back to the file. Files the scan does not understand (anchors, flow style,
tabs, several documents) return None and the caller renders the whole file as before.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.controller.ui_diff import side_by_side
from mimir_limit_optimizer.controller.ui_layout import Layout, scan_layout
from mimir_limit_optimizer.engine.overrides import parse_overrides
from mimir_limit_optimizer.engine.overrides_yaml import OverridesParseError
from mimir_limit_optimizer.engine.plan import Change
from mimir_limit_optimizer.web.ui.model import DiffLine, Impact

TENANTS_PER_PAGE = 50  # changed tenants rendered per page of the pending diff

__all__ = ["TENANTS_PER_PAGE", "Layout", "PendingPages", "scan_layout"]


class PendingPages:
    """Pages of one (current text, plan): tenants in the order the writer leaves them (file
    order, then new tenants by name) and, per tenant, the lines the plan adds before it."""

    def __init__(self, layout: Layout, changes: Sequence[Change], catalogue: Catalogue) -> None:
        self.layout = layout
        self.catalogue = catalogue
        self.by_tenant: dict[str, list[Change]] = {}
        for change in changes:
            self.by_tenant.setdefault(change.tenant, []).append(change)
        order = {t: start for t, (start, _end) in layout.blocks.items()}
        self.tenants = sorted(self.by_tenant, key=lambda t: (order.get(t, math.inf), t))
        self.added_before: list[int] = []  # lines added by the tenants before each one
        total = 0
        for tenant in self.tenants:
            self.added_before.append(total)
            limits = {c.limit for c in self.by_tenant[tenant]}
            if tenant not in layout.blocks:
                total += 1 + len(limits)
            else:  # a new key is a new line, except in a one-line flow mapping (None)
                total += sum(layout.sets(tenant, limit) is False for limit in limits)
        self.impact = tuple(
            Impact(c.tenant, c.limit, c.old if math.isfinite(c.old) else None, c.new)
            for tenant in self.tenants
            for c in self.by_tenant[tenant]
        )

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.tenants) // TENANTS_PER_PAGE))

    def page(self, number: int) -> tuple[tuple[DiffLine, ...], tuple[Impact, ...]] | None:
        """The side-by-side rows and the impact of page `number` (1-based); None when the
        page's blocks do not parse on their own (the caller renders the whole file)."""
        first = (number - 1) * TENANTS_PER_PAGE
        chosen = self.tenants[first : first + TENANTS_PER_PAGE]
        layout = self.layout
        left = ["overrides:\n"]
        left_real: list[int | None] = [None]  # mini line (0-based) -> file line (1-based)
        for tenant in chosen:
            span = layout.blocks.get(tenant)
            if span is None:
                continue
            for i in range(*span):
                text = layout.lines[i]
                left.append(text if text.endswith("\n") else text + "\n")
                left_real.append(i + 1)
        try:
            document = parse_overrides("".join(left), source_name="page")
            for tenant in chosen:
                for c in self.by_tenant[tenant]:
                    document.set(tenant, c.limit, c.new, self.catalogue.limits[c.limit])
        except (OverridesParseError, ValueError):
            return None
        right = document.render()
        right_layout = scan_layout(right)
        if right_layout is None:
            return None
        starts = sorted((s, t) for t, (s, _e) in right_layout.blocks.items())
        rows: list[DiffLine] = []
        for row in side_by_side("".join(left), right)[0]:
            if row.left_no == 1 and row.right_no == 1:
                continue  # the `overrides:` line of the small document
            left_no = left_real[row.left_no - 1] if row.left_no else None
            right_no = self._right_line(row.right_no, starts, first) if row.right_no else None
            rows.append(DiffLine(left_no, row.left, right_no, row.right, row.kind))
        impact = tuple(
            Impact(c.tenant, c.limit, c.old if math.isfinite(c.old) else None, c.new)
            for tenant in chosen
            for c in self.by_tenant[tenant]
        )
        return tuple(rows), impact

    def _right_line(self, mini: int, starts: list[tuple[int, str]], first: int) -> int | None:
        """The line of the written file a line of the page's rendering will be."""
        at = bisect.bisect_right(starts, (mini - 1, "\uffff")) - 1
        if at < 0:
            return None
        mini_start, tenant = starts[at]
        index = self.tenants.index(tenant, first)
        span = self.layout.blocks.get(tenant)
        if span is not None:
            base = span[0]
        else:  # new tenants go after the overrides section (and a new `overrides:` line)
            base = self.layout.end + (1 if self.layout.header is None else 0)
        return base + self.added_before[index] + (mini - 1 - mini_start) + 1
