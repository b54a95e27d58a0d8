"""Revisions and diffs for the UI's Diff viewer: side-by-side diffs of revisions, of the
current content and of the pending plan, with their impact; computed once per pair of texts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from mimir_limit_optimizer.controller.ui_diff import impact, side_by_side
from mimir_limit_optimizer.controller.ui_parts import ServiceParts
from mimir_limit_optimizer.controller.ui_pending import PendingPages, scan_layout
from mimir_limit_optimizer.engine.overrides import parse_overrides
from mimir_limit_optimizer.engine.plan import Change, Plan, apply_plan
from mimir_limit_optimizer.engine.results import CHANGE, Recommendations
from mimir_limit_optimizer.targets.base import TargetError
from mimir_limit_optimizer.web.ui.model import Impact, RevisionDiff, RevisionView, UiError

DIFF_CACHE = 16  # diffs kept
ROWS_PER_PAGE = 500  # rows of a side-by-side diff of two texts per page


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


class RevisionReader:
    def __init__(
        self,
        parts: ServiceParts,
        snapshot: Callable[[], tuple[Recommendations | None, int]],
    ) -> None:
        self.p = parts
        self._snapshot = snapshot
        self._lock = threading.Lock()
        self._diff_cache: dict[tuple[int, int, str, str], RevisionDiff] = {}
        self._pending: tuple[tuple[int, str], tuple[str, str]] | None = None
        self._pending_impact: tuple[int, tuple[Impact, ...]] | None = None
        # (cycle version, target version) -> the pages of current vs pending, rendered ones.
        self._pages: tuple[tuple[int, str], PendingPages, dict[int, RevisionDiff]] | None = None

    def revisions(self) -> tuple[RevisionView, ...]:
        return tuple(
            RevisionView(r.id, r.created_at, r.kind, r.actor, r.sha256, len(r.plan), r.note)
            for r in self.p.store.revisions(self.p.applier.name, limit=200)
        )

    def _content(self, revision: int | None) -> tuple[str, str]:
        """(title, text) of a revision; None = the pending plan rendered onto the target."""
        if revision is None:
            recs, version = self._snapshot()
            try:
                current = self.p.applier.target.read()
            except TargetError as exc:
                raise UiError(f"cannot read {self.p.applier.name}: {exc}", status=503) from exc
            if recs is None:
                return "pending plan (no cycle yet)", current.text
            key = (version, current.version or "")
            if self._pending is not None and self._pending[0] == key:
                return self._pending[1]
            plan = _bare_plan(recs)  # reasons are on the tenant page; rendering 70k costs
            try:
                document = parse_overrides(current.text, source_name=self.p.applier.name)
                apply_plan(document, plan, self.p.catalogue)
                text = document.render()
            except Exception as exc:  # an unrenderable plan is shown, not raised
                raise UiError(f"the pending plan cannot be rendered: {exc}", status=409) from exc
            pending = (f"pending plan ({len(plan)} change(s), before guards and caps)", text)
            self._pending_impact = (
                hash(text),
                tuple(Impact(c.tenant, c.limit, _finite(c.old), c.new) for c in plan.changes),
            )
            self._pending = (key, pending)
            return pending
        found = self.p.store.revision(revision)
        if found is None or found.target != self.p.applier.name:
            raise UiError(f"no revision {revision} of {self.p.applier.name}", status=404)
        return f"revision {found.id} ({found.kind}, {found.actor})", found.content

    def current_content(self) -> tuple[str, str]:
        try:
            return "current content of the target", self.p.applier.target.read().text
        except TargetError as exc:
            raise UiError(f"cannot read {self.p.applier.name}: {exc}", status=503) from exc

    def _pending_page(self, page: int) -> RevisionDiff | None:
        """Current content vs pending plan, one page of changed tenants (ui_pending.py);
        None when the fast path does not apply (the whole file is rendered instead)."""
        recs, version = self._snapshot()
        if recs is None:
            return None
        try:
            current = self.p.applier.target.read()
        except TargetError as exc:
            raise UiError(f"cannot read {self.p.applier.name}: {exc}", status=503) from exc
        key = (version, current.version or str(hash(current.text)))
        with self._lock:
            cached = self._pages if self._pages is not None and self._pages[0] == key else None
        if cached is None:
            layout = scan_layout(current.text)
            if layout is None:
                return None
            cached = (key, PendingPages(layout, _bare_plan(recs).changes, self.p.catalogue), {})
            with self._lock:
                self._pages = cached
        pages, shown = cached[1], cached[2]
        if not 1 <= page <= pages.pages:
            raise UiError(f"page must be between 1 and {pages.pages}", status=404)
        if page not in shown:
            found = pages.page(page)
            if found is None:
                return None
            lines, page_impact = found
            shown[page] = RevisionDiff(
                "current content of the target",
                f"pending plan ({len(pages.impact)} change(s), before guards and caps)",
                lines, pages.impact, 0, page=page, pages=pages.pages,
                tenants=len(pages.tenants), page_impact=page_impact,
            )  # fmt: skip
        return shown[page]

    def diff(self, left: int | None, right: int | None, page: int = 1) -> RevisionDiff:
        if left is None and right is None:
            fast = self._pending_page(page)
            if fast is not None:
                return fast
        left_title, left_text = self._content(left) if left is not None else self.current_content()
        right_title, right_text = self._content(right)
        # Revisions never change and the pending plan changes once per cycle: a diff is
        # computed once per pair of texts (the pending plan of 10k tenants takes seconds).
        key = (hash(left_text), hash(right_text), left_title, right_title)
        with self._lock:
            cached = self._diff_cache.get(key)
        if cached is not None:
            return _rows_page(cached, page)
        lines, hidden = side_by_side(left_text, right_text)
        planned = self._pending_impact
        if (
            left is None
            and right is None
            and planned is not None
            and planned[0] == hash(right_text)
        ):
            changed = planned[1]  # current vs pending: the plan itself says what changes
        else:
            changed = impact(left_text, right_text, self.p.catalogue)
        result = RevisionDiff(
            left_title,
            right_title,
            lines,
            changed,
            hidden,
            tenants=len({c.tenant for c in changed}),
        )
        with self._lock:
            if len(self._diff_cache) >= DIFF_CACHE:
                self._diff_cache.pop(next(iter(self._diff_cache)))
            self._diff_cache[key] = result
        return _rows_page(result, page)


def _rows_page(whole: RevisionDiff, page: int) -> RevisionDiff:
    """One page of ROWS_PER_PAGE rows of a side-by-side diff."""
    pages = max(1, -(-len(whole.lines) // ROWS_PER_PAGE))
    if not 1 <= page <= pages:
        raise UiError(f"page must be between 1 and {pages}", status=404)
    if pages == 1:
        return whole
    first = (page - 1) * ROWS_PER_PAGE
    return replace(whole, lines=whole.lines[first : first + ROWS_PER_PAGE], page=page, pages=pages)


def _bare_plan(recs: Recommendations) -> Plan:
    """The changes the recommendations ask for, without rendering their reasons."""
    changes = []
    for result in recs.results.values():
        for i in np.flatnonzero(result.status == CHANGE).tolist():
            changes.append(
                Change(
                    recs.tenants[i], result.spec.name, float(result.current[i]),
                    float(result.recommended[i]), (),
                )
            )  # fmt: skip
    changes.sort(key=lambda c: (c.tenant, c.limit))
    return Plan(tuple(changes))
