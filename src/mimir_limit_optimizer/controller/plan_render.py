"""A plan as it is written: the target's text with the plan applied (refused when Mimir would
reject the result) and the plan's rows as its intent and revision record them."""

from __future__ import annotations

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.controller.apply_outcome import ApplyError
from mimir_limit_optimizer.engine.overrides import (
    OverridesEditError,
    format_problems,
    parse_overrides,
    validate_overrides,
)
from mimir_limit_optimizer.engine.plan import Plan, apply_plan
from mimir_limit_optimizer.targets.base import Content


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
