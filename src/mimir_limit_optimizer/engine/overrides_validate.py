"""Every reason Mimir would reject, or silently misread, a runtime overrides file.

Mimir decodes the file strictly (gopkg.in/yaml.v2 with `SetStrict(true)`): one unknown key,
one value of the wrong type, a duplicate key or a second document rejects the WHOLE file; a
running Mimir keeps its last good config and a starting one refuses to start. The validator
therefore reports all problems at once, each with its 1-based line, instead of stopping at
the first. It also reports what Mimir accepts but nobody means: an entry for an invalid
tenant id (it never applies), a fractional integer (truncated), a negative count. A null value
is fine: Mimir copies the `limits:` defaults into each tenant before decoding its entry, and
yaml.v3 leaves a field untouched on null, so `ingestion_rate:` keeps the default.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from ruamel.yaml.comments import CommentedMap

from mimir_limit_optimizer.catalogue.model import Catalogue, ValueKind
from mimir_limit_optimizer.engine.overrides_fast import read_fast
from mimir_limit_optimizer.engine.overrides_scan import scan
from mimir_limit_optimizer.engine.overrides_value_rules import value_problem
from mimir_limit_optimizer.engine.overrides_yaml import OVERRIDES_KEY, Problem, key_path, own_keys
from mimir_limit_optimizer.engine.tenants import tenant_id_problem

_REJECTS = "Mimir rejects the whole file"
_COMMENT_FIX = "write comments as `# text` lines, not as quoted keys; or delete the key"


def validate_overrides(
    text: str, catalogue: Catalogue, *, source_name: str = "<overrides>"
) -> list[Problem]:
    """All problems of `text` as a Mimir runtime overrides file, sorted by line.

    `source_name` names the file in problems that quote it (see `format_problems`). A file of
    the common shape is read line by line (`overrides_fast`), others by ruamel: same answer."""
    fast = read_fast(text)
    if fast is None or OVERRIDES_KEY not in catalogue.top_level_keys:
        return validate_full(text, catalogue)
    checker = _Checker(catalogue, {})
    for tenant, block in fast.tenants.items():
        checker.tenant(tenant, block.line + 1)
        for name, scalar in (block.limits or {}).items():
            checker.limit(tenant, name, fast.value(scalar), scalar.line + 1)
    return sorted(checker.problems)


def validate_full(text: str, catalogue: Catalogue) -> list[Problem]:
    """`validate_overrides` by ruamel's full parse (any file)."""
    result = scan(text)
    problems = list(result.problems)
    if isinstance(result.data, CommentedMap):
        problems.extend(_Checker(catalogue, result.raw_tenant_keys).document(result.data))
    return sorted(problems)


def format_problems(problems: Iterable[Problem], source_name: str) -> str:
    """One line per problem, sorted: `file:line: key.path: message (fix)`."""
    lines = []
    for problem in sorted(problems):
        where = source_name if problem.line is None else f"{source_name}:{problem.line}"
        path = f" {problem.key_path}:" if problem.key_path else ""
        fix = f" ({problem.fix})" if problem.fix else ""
        lines.append(f"{where}:{path} {problem.message}{fix}")
    return "\n".join(lines)


def _line(mapping: CommentedMap, key: Any) -> int | None:
    """1-based line of a key: problems of a value point at its key (the value of a null or a
    nested list starts on another line)."""
    try:
        line, _ = mapping.lc.key(key)
    except (KeyError, TypeError):
        return None
    return int(line) + 1


def _text(key: Any) -> str:
    return str(key).lower() if isinstance(key, bool) else str(key)


class _Checker:
    def __init__(self, catalogue: Catalogue, raw_tenant_keys: dict[tuple[int, int], str]):
        self.catalogue = catalogue
        self.raw_tenant_keys = raw_tenant_keys
        self.problems: list[Problem] = []
        self._seen_entries: set[int] = set()

    def _add(self, line: int | None, path: str, message: str, fix: str) -> None:
        self.problems.append(Problem(line, path, message, fix))

    def _comment_key(self, name: str, line: int | None, path: str, reads_as: str) -> None:
        self._add(
            line,
            path,
            f"{name!r} is a key, not a comment: Mimir reads it as {reads_as} and rejects the file",
            _COMMENT_FIX,
        )

    def document(self, root: CommentedMap) -> list[Problem]:
        for key in own_keys(root):
            name = _text(key)
            line = _line(root, key)
            if name.startswith("#"):
                self._comment_key(name, line, key_path(name), "a top-level setting")
            elif name not in self.catalogue.top_level_keys:
                self._add(
                    line,
                    key_path(name),
                    f"unknown top-level key {name!r}: {_REJECTS}",
                    self._top_level_fix(name, root[key]),
                )
            elif name == OVERRIDES_KEY and isinstance(root[key], CommentedMap):
                self._overrides(root[key])
        return self.problems

    def _top_level_fix(self, name: str, value: Any) -> str:
        if name == "limits":
            return (
                "the global `limits` block belongs in Mimir's main configuration; here, "
                "per-tenant values go under `overrides:` then the tenant id"
            )
        if self.catalogue.kind_of(name) is not None:
            return f"per-tenant limits go under `overrides:` then the tenant id: {name} is a limit"
        if isinstance(value, CommentedMap) and any(
            self.catalogue.kind_of(_text(k)) is not None for k in value
        ):
            return "this looks like a tenant entry: indent it under `overrides:`"
        allowed = sorted(self.catalogue.top_level_keys)
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
        if close:
            return f"did you mean {close[0]!r}?"
        return "Mimir's runtime file accepts only: " + ", ".join(allowed)

    def _tenant_id(self, overrides: CommentedMap, key: Any) -> str:
        if isinstance(key, str):
            return key
        try:
            line, column = overrides.lc.key(key)
        except (KeyError, TypeError):
            return _text(key)
        return self.raw_tenant_keys.get((int(line), int(column)), _text(key))

    def _overrides(self, overrides: CommentedMap) -> None:
        for key in own_keys(overrides):
            tenant = self._tenant_id(overrides, key)
            self.tenant(tenant, _line(overrides, key))
            entry = overrides[key]
            if isinstance(entry, CommentedMap) and id(entry) not in self._seen_entries:
                self._seen_entries.add(id(entry))  # an alias (`b: *a`) is checked once, at `a`
                self._entry(tenant, entry)

    def tenant(self, tenant: str, line: int | None) -> None:
        if tenant.startswith("#"):
            self._comment_key(tenant, line, key_path(OVERRIDES_KEY, tenant), "a tenant id")
            return
        problem = tenant_id_problem(tenant)
        if problem is not None:
            self._add(
                line,
                key_path(OVERRIDES_KEY, tenant),
                f"{problem}; Mimir loads the entry but never applies it",
                "use the exact id clients send in X-Scope-OrgID",
            )

    def _entry(self, tenant: str, entry: CommentedMap) -> None:
        for key in own_keys(entry):
            self.limit(tenant, _text(key), entry[key], _line(entry, key))

    def limit(self, tenant: str, name: str, raw: Any, line: int | None) -> None:
        # The key path is built only for a problem: most of 10,000 tenants' values have none.
        if name.startswith("#"):
            self._comment_key(name, line, key_path(OVERRIDES_KEY, tenant, name), "a limit name")
            return
        kind = self.catalogue.kind_of(name)
        if kind is None:
            self._add(
                line,
                key_path(OVERRIDES_KEY, tenant, name),
                f"unknown limit {name!r}: {_REJECTS}",
                self.catalogue.suggest(name),
            )
            return
        self._value(raw, kind, name, tenant, line)

    def _value(self, raw: Any, kind: ValueKind, name: str, tenant: str, line: int | None) -> None:
        if raw is None:
            return  # null keeps the default (see the module docstring)
        problem = value_problem(raw, kind)
        if problem is not None:
            self._add(line, key_path(OVERRIDES_KEY, tenant, name), *problem)
            return
        managed = self.catalogue.limits.get(name)
        counts = managed is not None or kind is ValueKind.INT
        if counts and kind in (ValueKind.INT, ValueKind.FLOAT) and raw < 0:
            zero = (
                " (0 means unlimited)"
                if managed is not None and managed.zero_means_unlimited
                else ""
            )
            self._add(
                line,
                key_path(OVERRIDES_KEY, tenant, name),
                f"negative value {raw}: Mimir expects a count or rate of 0 or more",
                f"write 0 or a positive value{zero}",
            )
