"""Side-by-side diffs of overrides revisions and their impact (limits up and down)."""

from __future__ import annotations

import bisect
import difflib
import math
import re
from collections import Counter
from typing import Any, Literal

import yaml

from mimir_limit_optimizer.catalogue import Catalogue, LimitSpec
from mimir_limit_optimizer.catalogue.model import LimitType
from mimir_limit_optimizer.catalogue.units import parse_duration
from mimir_limit_optimizer.controller.ui_layout import scan_layout
from mimir_limit_optimizer.engine.overrides import OverridesParseError, parse_overrides
from mimir_limit_optimizer.web.ui.model import DiffLine, Impact

MAX_ROWS = 20_000  # rows of a side-by-side diff kept (paged); the rest is counted, not shown
CONTEXT = 3  # unchanged lines kept around each change
EXACT_UP_TO = 2_000  # lines per side difflib matches at once; longer texts are anchored first


Opcode = tuple[str, int, int, int, int]


def _opcodes(a: list[str], b: list[str]) -> list[Opcode]:
    if max(len(a), len(b)) <= EXACT_UP_TO:
        matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
        return [(op, i1, i2, j1, j2) for op, i1, i2, j1, j2 in matcher.get_opcodes()]
    return _anchored(a, b)


def _anchored(a: list[str], b: list[str]) -> list[Opcode]:
    """Patience diff: lines found once in each text (a tenant's `name:` line) and in the same
    order on both sides anchor the texts; difflib matches the short stretches between anchors.
    difflib alone is quadratic on YAML's many repeated lines (seconds at 8,000 lines)."""
    count_a, count_b = Counter(a), Counter(b)
    where_b = {line: j for j, line in enumerate(b) if count_b[line] == 1}
    pairs = [(i, where_b[x]) for i, x in enumerate(a) if count_a[x] == 1 and x in where_b]
    out: list[Opcode] = []
    i0 = j0 = 0
    for i, j in [*_increasing(pairs), (len(a), len(b))]:
        if i > i0 or j > j0:
            if max(i - i0, j - j0) <= EXACT_UP_TO:
                matcher = difflib.SequenceMatcher(a=a[i0:i], b=b[j0:j], autojunk=False)
                stretch: list[Opcode] = [
                    (op, p, q, r, t) for op, p, q, r, t in matcher.get_opcodes()
                ]
            else:
                stretch = _positional(a[i0:i], b[j0:j])
            out.extend((op, i0 + p, i0 + q, j0 + r, j0 + s) for op, p, q, r, s in stretch)
        if i < len(a):
            out.append(("equal", i, i + 1, j, j + 1))
        i0, j0 = i + 1, j + 1
    merged: list[Opcode] = []
    for code in out:
        if code[1] == code[2] and code[3] == code[4]:
            continue
        if merged and code[0] == "equal" and merged[-1][0] == "equal":
            merged[-1] = ("equal", merged[-1][1], code[2], merged[-1][3], code[4])
        else:
            merged.append(code)
    return merged


def _increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest run of `pairs` (ordered by their first item) increasing in the second."""
    tails: list[int] = []  # the second item ending the best run of each length
    ends: list[int] = []  # index in pairs of that end
    before = [-1] * len(pairs)
    for k, (_i, j) in enumerate(pairs):
        at = bisect.bisect_left(tails, j)
        if at == len(tails):
            tails.append(j)
            ends.append(k)
        else:
            tails[at] = j
            ends[at] = k
        before[k] = ends[at - 1] if at else -1
    run: list[tuple[int, int]] = []
    k = ends[-1] if ends else -1
    while k >= 0:
        run.append(pairs[k])
        k = before[k]
    return run[::-1]


def _positional(a: list[str], b: list[str]) -> list[Opcode]:
    """Lines paired by position (linear): for long stretches without any anchor."""
    out: list[Opcode] = []
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


class _UnsureError(ValueError):
    """A scalar the line scan leaves to a YAML parser."""


_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_QUOTED = re.compile(r"""^(?:'([^']*)'|"([^"\\]*)")\s*(?:#.*)?$""")


class _Quoted(str):
    """A quoted scalar: a string to Mimir even when it looks like a number."""

    __slots__ = ()


def _scalar(raw: str) -> Any:
    """A plain or simply quoted YAML 1.2 scalar as ruamel reads it."""
    if not raw or raw in ("~", "null", "Null", "NULL"):
        return None
    if raw[0] in "'\"":
        quoted = _QUOTED.match(raw)
        if quoted is None:
            raise _UnsureError(raw)
        return _Quoted(quoted.group(1) if quoted.group(1) is not None else quoted.group(2))
    if raw in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return raw[0] in "tT"
    if raw.lstrip("+-").isdigit():
        return int(raw)
    if _FLOAT.match(raw):
        return float(raw)
    if raw[0] in "0.+-" and raw[:2] not in ("0s", "0m", "0h", "0d"):
        raise _UnsureError(raw)  # 0x1F, 0o17, .inf, signed durations: leave them to a parser
    return raw


def _scanned_tenants(left: str, right: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """tenant -> {key: raw scalar text} on each side by the line scan, for the tenants whose
    blocks differ as text; None when the scan does not apply to both."""
    before, after = scan_layout(left), scan_layout(right)
    if before is None or after is None:
        return None
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for tenant in set(before.blocks) | set(after.blocks):
        both = tenant in before.blocks and tenant in after.blocks
        if both and before.block_text(tenant) == after.block_text(tenant):
            continue
        for layout, out in ((before, old), (after, new)):
            if tenant in layout.blocks:
                entries = layout.entries(tenant)
                if entries is None:
                    return None  # a flow mapping: a YAML parser reads it
                out[tenant] = entries
    return old, new


def _loaded_tenants(text: str) -> dict[str, dict[Any, Any]] | None:
    """tenant -> its mapping by libyaml (20x ruamel's pure-Python loader); None for anything
    unusual (the round-trip parser then decides)."""
    loader = getattr(yaml, "CSafeLoader", None)  # absent without a libyaml build
    if loader is None:
        return None
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError:
        return None
    if data is None:
        return {}
    overrides = data.get("overrides") if isinstance(data, dict) else False
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        return None
    out: dict[str, dict[Any, Any]] = {}
    for tenant, entry in overrides.items():
        if not isinstance(tenant, str) or not isinstance(entry, dict | None):
            return None  # `123:` or `yes:` keys, odd entries: YAML 1.1 and 1.2 may differ
        out[tenant] = entry or {}
    return out


def _fast_number(raw: Any, spec: LimitSpec) -> float | None:
    if raw is None:
        return None
    if spec.type is LimitType.BOOL:
        if not isinstance(raw, bool):
            raise ValueError(raw)
        return 1.0 if raw else 0.0
    if spec.type is LimitType.DURATION:
        return parse_duration(raw) if isinstance(raw, str) else float(raw)
    if isinstance(raw, bool | _Quoted) or not isinstance(raw, int | float | str):
        raise ValueError(raw)
    value = float(raw)  # libyaml (YAML 1.1) reads `1e6` as a string
    return float(math.trunc(value)) if spec.type in (LimitType.COUNT, LimitType.BYTES) else value


def _fast_impact(left: str, right: str, catalogue: Catalogue) -> tuple[Impact, ...] | None:
    """The impact from the line scan (raw scalars, read only for tenants whose entries differ
    as text) or libyaml; None when neither applies."""
    scanned = _scanned_tenants(left, right)
    scalar: Any = _scalar
    if scanned is not None:
        before, after = scanned
    else:
        loaded = _loaded_tenants(left), _loaded_tenants(right)
        if loaded[0] is None or loaded[1] is None:
            return None
        before, after = loaded[0], loaded[1]
        scalar = _same
    out: list[Impact] = []
    try:
        for tenant in sorted(set(before) | set(after)):
            old_entry, new_entry = before.get(tenant, {}), after.get(tenant, {})
            if old_entry == new_entry:
                continue
            for name in sorted(set(old_entry) | set(new_entry), key=str):
                spec = catalogue.limits.get(name) if isinstance(name, str) else None
                if spec is None:
                    continue
                try:
                    old = _fast_number(scalar(old_entry.get(name, "")), spec)
                    new = _fast_number(scalar(new_entry.get(name, "")), spec)
                except _UnsureError:
                    raise
                except (ValueError, TypeError):
                    continue
                if old == new or (old is not None and new is not None and math.isclose(old, new)):
                    continue
                out.append(Impact(tenant, name, old, new))
    except _UnsureError:
        return None
    return tuple(out)


def _same(value: Any) -> Any:
    return None if value == "" else value


def impact(left: str, right: str, catalogue: Catalogue) -> tuple[Impact, ...]:
    """Every managed tenant x limit whose value differs between the two files."""
    fast = _fast_impact(left, right, catalogue)
    if fast is not None:
        return fast
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
