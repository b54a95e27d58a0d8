"""Apply a plan to a target safely: render, validate, compare-and-swap write, read back,
record a revision, verify that Mimir loaded it, and roll back when it did not.

Whatever fails, the target holds either its previous content or the new, validated content.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.engine.overrides import (
    OverridesEditError,
    format_problems,
    parse_overrides,
    validate_overrides,
)
from mimir_limit_optimizer.engine.plan import Plan, apply_plan
from mimir_limit_optimizer.store import Revision, Store
from mimir_limit_optimizer.targets.base import ConflictError, Content, Target, TargetError
from mimir_limit_optimizer.targets.verify import MimirVerifier


@dataclass
class ApplyOutcome:
    applied: bool
    revision: Revision | None = None
    # The plan actually written (after conflicts it may differ from the one first proposed).
    plan: Plan | None = None
    # Written, but Mimir did not confirm it and it was not rolled back.
    unverified: bool = False
    rolled_back: bool = False
    detail: str = ""
    errors: list[str] = field(default_factory=list)


class ApplyError(Exception):
    """The plan could not be applied; the target is unchanged."""


def plan_rows(plan: Plan) -> list[dict[str, object]]:
    return [
        {
            "tenant": c.tenant,
            "limit": c.limit,
            "old": c.old,
            "new": c.new,
            "reasons": list(c.reasons),
        }
        for c in plan.changes
    ]


def render_plan_onto(content: Content, plan: Plan, catalogue: Catalogue, source_name: str) -> str:
    """The target's text with `plan` applied; raises ApplyError when the result would not be a
    file Mimir accepts (it is never written then)."""
    document = parse_overrides(content.text, source_name=source_name)
    try:
        apply_plan(document, plan, catalogue)
    except (OverridesEditError, ValueError) as exc:  # e.g. a value behind a YAML anchor
        raise ApplyError(f"cannot edit {source_name}: {exc}") from exc
    text = document.render()
    problems = validate_overrides(text, catalogue, source_name=source_name)
    if problems:
        raise ApplyError(
            "refusing to write: the result would be rejected by Mimir:\n"
            + format_problems(problems, source_name)
        )
    return text


class Applier:
    def __init__(
        self,
        target: Target,
        store: Store,
        catalogue: Catalogue,
        *,
        verifier: MimirVerifier | None,
        rollback_on_failure: bool,
        conflict_retries: int = 5,
        sleep: Callable[[float], None],
        logger: logging.Logger,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self.is_leader = is_leader
        # The slow cycle and the fast protection loop (its own thread) share this applier:
        # one write sequence (read, plan, write, verify) at a time.
        self._lock = threading.RLock()
        self.target = target
        self.store = store
        self.catalogue = catalogue
        self.verifier = verifier
        self.rollback_on_failure = rollback_on_failure
        self.conflict_retries = conflict_retries
        self.sleep = sleep
        self.log = logger

    @property
    def name(self) -> str:
        return self.target.describe()

    def apply(
        self, replan: Callable[[Content], Plan], *, now: float, actor: str = "controller"
    ) -> ApplyOutcome:
        with self._lock:
            return self._apply(replan, now=now, actor=actor)

    def _apply(self, replan: Callable[[Content], Plan], *, now: float, actor: str) -> ApplyOutcome:
        """Read, plan against what was read (`replan`), write with compare-and-swap; on a
        conflict re-read and re-plan, with backoff."""
        for attempt in range(self.conflict_retries + 1):
            content = self.target.read()
            plan = replan(content)
            if not plan.changes:
                return ApplyOutcome(False, detail="nothing to apply")
            text = render_plan_onto(content, plan, self.catalogue, self.name)
            if text == content.text:
                return ApplyOutcome(False, detail="the target already holds these values")
            if self.store.latest_revision(self.name) is None and content.exists:
                # Keep what was there before the optimizer's first write: rollback can reach it.
                self.store.add_revision(
                    target=self.name,
                    content=content.text,
                    plan=[],
                    actor="baseline",
                    created_at=now,
                    kind="baseline",
                    note="content before the first apply",
                )
            if not self.is_leader():  # the lease may have been lost while planning
                raise ApplyError(f"not the leader any more: nothing written to {self.name}")
            try:
                version = self.target.write(text, expected_version=content.version)
            except ConflictError as exc:
                delay = min(8.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)
                self.log.warning(
                    "conflict writing %s (%s); re-planning in %.1fs", self.name, exc, delay
                )
                self.sleep(delay)
                continue
            outcome = self._after_write(content, text, version, plan, now=now, actor=actor)
            outcome.plan = plan
            return outcome
        raise ApplyError(
            f"gave up after {self.conflict_retries + 1} conflicting writes to {self.name}"
        )

    def _after_write(
        self, before: Content, text: str, version: str, plan: Plan, *, now: float, actor: str
    ) -> ApplyOutcome:
        back = self.target.read()
        if back.text != text:
            raise ApplyError(f"read-back of {self.name} differs from what was written")
        revision = self.store.add_revision(
            target=self.name,
            content=text,
            plan=plan_rows(plan),
            actor=actor,
            created_at=now,
            kind="apply",
        )
        if self.verifier is None:
            return ApplyOutcome(True, revision, detail="written and read back")
        expected: dict[str, dict[str, float]] = {}
        for change in plan.changes:
            expected.setdefault(change.tenant, {})[change.limit] = change.new
        result = self.verifier.verify(expected, self.catalogue)
        if result.ok:
            return ApplyOutcome(True, revision, detail=f"Mimir loaded it: {result.detail}")
        if not self.rollback_on_failure:
            return ApplyOutcome(
                True, revision, unverified=True, detail=f"verification failed: {result.detail}"
            )
        if not self.is_leader():
            return ApplyOutcome(
                True, revision, unverified=True,
                detail=f"verification failed, and no longer the leader to roll "
                f"back: the new content is live ({result.detail})",
            )  # fmt: skip
        try:
            self.target.write(before.text, expected_version=back.version)
        except TargetError as exc:
            return ApplyOutcome(
                True, revision, unverified=True,
                detail=f"verification failed and the rollback failed ({exc}): the new content "
                f"is live; restore it with `mlo rollback` ({result.detail})",
            )  # fmt: skip
        rollback = self.store.add_revision(
            target=self.name,
            content=before.text,
            plan=[],
            actor="controller",
            created_at=now,
            kind="rollback",
            note=f"verification failed: {result.detail}",
        )
        return ApplyOutcome(
            False,
            rollback,
            rolled_back=True,
            detail=f"verification failed, rolled back: {result.detail}",
        )

    def restore(self, revision: Revision, *, now: float, actor: str) -> Revision:
        """Write `revision`'s content back byte for byte (mlo rollback)."""
        with self._lock:
            return self._restore(revision, now=now, actor=actor)

    def _restore(self, revision: Revision, *, now: float, actor: str) -> Revision:
        current = self.target.read()
        if current.text == revision.content:
            return revision
        self.target.write(revision.content, expected_version=current.version)
        if self.target.read().text != revision.content:
            raise TargetError(f"read-back of {self.name} differs after rollback")
        return self.store.add_revision(
            target=self.name,
            content=revision.content,
            plan=[],
            actor=actor,
            created_at=now,
            kind="rollback",
            note=f"restored revision {revision.id}",
        )
