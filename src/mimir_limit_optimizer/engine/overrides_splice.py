"""Edits of a large overrides file without re-serialising it (internal to `engine.overrides`).

ruamel takes ~13 s to render the 40,000 lines of 10,000 tenants, after ~13 s to parse them.
An edit touches a few hundred tenants, and ruamel writes a tenant's block the same way
whatever surrounds it, so only the touched blocks are written:

- each edit is answered (changed or not, values read back, lines) as the round-trip model
  answers it, from the line reader's values (`_Entry`), and recorded;
- `render` rewrites a block whose edits are all `set`s of bare `name: value` lines line by
  line (each new value spelled by one small ruamel dump); other touched blocks (removals,
  end-of-line comments, new tenants after the last one), with their neighbours when a tenant
  is dropped (its comment lines go to the previous one), are parsed as one small ruamel
  document, the edits replayed, rendered and cut back into place.

That gives the full render's text only if ruamel leaves every untouched line as written:
`splice_safe` checks the file is in ruamel's own output form (the layout the optimizer
writes): single space after `key:`, no lines of spaces, nested keys at twice the tenant
indentation, a final newline, what precedes the tenants, and every distinct value and tenant
key spelled as ruamel spells it (one round trip of a small document holding each once).
Otherwise, for the edits whose result depends on more than the neighbours (removing an
entry's first key in a block with comments), and whenever a step does not come out as
expected, the whole file is rendered by ruamel as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.comments import CommentedMap

from mimir_limit_optimizer.catalogue.model import LimitSpec
from mimir_limit_optimizer.engine.overrides_fast import (
    KEY_TOKEN,
    STR_TAG,
    FastOverrides,
    Scalar,
    resolve,
)
from mimir_limit_optimizer.engine.overrides_values import limit_yaml_value, replacement
from mimir_limit_optimizer.engine.overrides_yaml import Indent, dump, make_yaml

_DECIMAL = re.compile(r"-?[1-9][0-9]*")
_SAFE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # a plain string ruamel writes as is
_YAML11_WORDS = re.compile(r"(?i)y|n|yes|no|on|off|true|false|null")  # quoting may differ
_EOL_COMMENT = re.compile(r"(?: +#.*)?")

# One edit as called: ("set", tenant, limit, value, spec) or ("remove", tenant, limit).
Op = tuple[Any, ...]
# Builds the full round-trip document of a text (`overrides.parse_full`), typed loosely here
# to keep this module below `overrides` in the import order.
Parse = Callable[[str], Any]


def written(scalar: Scalar) -> str:
    """The scalar as the file spells it."""
    if scalar.style == "'":
        return "'" + scalar.text.replace("'", "''") + "'"
    if scalar.style == '"':
        return '"' + scalar.text + '"'
    return scalar.text


def _key_text(fast: FastOverrides, line: int) -> str | None:
    """The tenant key as written when its line is `  key:` (and maybe a comment), else None."""
    text = fast.lines[line][fast.indent :].rstrip("\n")
    found = KEY_TOKEN.match(text)
    if found is None or text[found.end() : found.end() + 1] != ":":
        return None
    if _EOL_COMMENT.fullmatch(text[found.end() + 1 :]) is None:
        return None
    return found.group(0)


def _round_trips(body: str, indent: int = 2) -> bool:
    yaml = make_yaml(Indent(mapping=indent))
    return dump(yaml, yaml.load(body)) == body


def splice_safe(fast: FastOverrides) -> bool:
    """True when ruamel's full render leaves every line of the file as written."""
    lines = fast.lines
    if not fast.tenants or not lines[-1].endswith("\n"):
        return False
    if any(line.endswith(" \n") and not line.strip() for line in lines):
        return False  # a line of spaces (ruamel keeps those of comments)
    child = 2 * fast.indent
    values: set[str] = set()
    keys: set[str] = set()
    for block in fast.tenants.values():
        key = _key_text(fast, block.line)
        if key is None or (block.limits and block.indent != child):
            return False
        if not _SAFE_KEY.fullmatch(key) or _YAML11_WORDS.fullmatch(key):
            keys.add(key)
        if resolve(fast.table, key, None) != STR_TAG and not _DECIMAL.fullmatch(key):
            keys.add(key)
        for name, scalar in (block.limits or {}).items():
            token = written(scalar)
            expected = " " * child + name + ":" + (f" {token}" if token else "")
            line = lines[scalar.line].rstrip("\n")
            if not line.startswith(expected) or not _EOL_COMMENT.fullmatch(line[len(expected) :]):
                return False
            if token and not _DECIMAL.fullmatch(token):
                values.add(token)
    # What precedes the tenants (comments, the `overrides:` line): ruamel drops a leading
    # blank line or trailing spaces there.
    prefix = "".join(lines[: fast.header + 1])
    if not _round_trips(prefix + " " * fast.indent + "t:\n" + " " * child + "a: 1\n", fast.indent):
        return False
    if values:
        body = "".join(f"  k{i}: {v}\n" for i, v in enumerate(sorted(values)))
        if not _round_trips("t:\n" + body):
            return False
    if keys:
        return _round_trips("".join(f"{k}:\n  a: 1\n" for k in sorted(keys)))
    return True


@dataclass
class _Entry:
    """An edited tenant as the round-trip model has it after the edits: its limits' values in
    order, or None for a null entry; `present` False once its last limit was removed (the
    entry is dropped). `lines`: the 1-based line ruamel recorded for each key of the file's
    entry, which it keeps answering even for a key removed then set again."""

    limits: dict[str, Any] | None
    present: bool
    lines: dict[str, int] = field(default_factory=dict)


@dataclass
class Splice:
    """The edits of one document whose text is `fast`'s, and what they changed so far.

    An edit is answered here the way `OverridesDocument`'s round-trip model answers it (same
    return value, same values read back) and recorded; `render` replays the records on the
    round-trip model of the touched blocks."""

    fast: FastOverrides
    original: str
    parse: Parse
    order: dict[str, None]  # tenants in the order the edited document has them
    ops: list[Op] = field(default_factory=list)
    edited: dict[str, _Entry] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)  # tenants of the file an edit dropped
    added: bool = False  # a tenant was appended after the last one
    whole: bool = False  # an edit only a render of the whole file gets right
    emitted: dict[tuple[type, Any], str] = field(default_factory=dict)

    @classmethod
    def of(cls, fast: FastOverrides, original: str, parse: Parse) -> Splice:
        return cls(fast, original, parse, dict.fromkeys(fast.tenants))

    def entry(self, tenant: str) -> _Entry:
        found = self.edited.get(tenant)
        if found is None:
            block = self.fast.tenants.get(tenant)
            if block is None:
                found = _Entry(None, False)
            elif block.limits is None:
                found = _Entry(None, True)
            else:
                limits = {name: self.fast.value(v) for name, v in block.limits.items()}
                lines = {name: v.value_line + 1 for name, v in block.limits.items()}
                found = _Entry(limits, True, lines)
            self.edited[tenant] = found
        return found

    def set(self, tenant: str, limit: str, value: float, spec: LimitSpec) -> bool:
        """`OverridesDocument.set` once its arguments are checked."""
        new: Any = limit_yaml_value(value, spec)
        entry = self.entry(tenant)
        limits = entry.limits
        if entry.present and limits is not None and limit in limits:
            written = replacement(limits[limit], new, spec)
            if written is None:
                return False
            limits[limit] = written
        elif entry.present and limits is not None:
            limits[limit] = new
        elif entry.present:  # a null entry: ruamel puts a new mapping there
            entry.limits, entry.lines = {limit: new}, {}
        else:
            entry.limits, entry.present, entry.lines = {limit: new}, True, {}
            self.order[tenant] = None
            self.added = True
        self.ops.append(("set", tenant, limit, value, spec))
        return True

    def remove(self, tenant: str, limit: str) -> bool:
        """`OverridesDocument.remove` of a limit the tenant sets."""
        entry = self.entry(tenant)
        assert entry.limits is not None
        if next(iter(entry.limits)) == limit and len(entry.limits) > 1 and self._spaced(tenant):
            # The comment lines after the entry's first key become the comment before its
            # mapping, which ruamel writes or drops depending on what precedes the tenant.
            self.whole = True
        del entry.limits[limit]
        if not entry.limits:
            entry.limits, entry.present = None, False
            del self.order[tenant]
            if tenant in self.fast.tenants:
                self.dropped.add(tenant)
        self.ops.append(("remove", tenant, limit))
        return True

    def _spaced(self, tenant: str) -> bool:
        """Whether the tenant's block in the file has comment or blank lines."""
        block = self.fast.tenants.get(tenant)
        lines = self.fast.lines[block.start : block.stop] if block else []
        return any(not line.strip() or line.lstrip().startswith("#") for line in lines)

    # The reads of an edited tenant.

    def limits_of(self, tenant: str) -> list[str]:
        entry = self.entry(tenant)
        return list(entry.limits or ()) if entry.present else []

    def sets(self, tenant: str, limit: str) -> bool:
        entry = self.entry(tenant)
        return entry.present and limit in (entry.limits or ())

    def get(self, tenant: str, limit: str) -> Any:
        return (self.entry(tenant).limits or {}).get(limit) if self.sets(tenant, limit) else None

    def line_of(self, tenant: str, limit: str) -> int | None:
        return self.entry(tenant).lines.get(limit) if self.sets(tenant, limit) else None

    # -- rendering -----------------------------------------------------------------------------

    def _replay(self, doc: Any, skip: Any = frozenset()) -> Any:
        for op in self.ops:
            if op[1] in skip:
                continue
            if op[0] == "set":
                doc.set(*op[1:])
            else:
                doc.remove(*op[1:])
        return doc

    def render_full(self) -> str:
        return str(self._replay(self.parse(self.original)).render())

    def _emitted(self, value: Any) -> str:
        """`value` as ruamel writes it after `key: ` (one small dump per distinct value)."""
        key = (type(value), value)
        found = self.emitted.get(key)
        if found is None:
            text = dump(make_yaml(), CommentedMap([("k", value)]))
            found = self.emitted[key] = text[len("k: ") :].rstrip("\n")
        return found

    def _text_block(self, tenant: str) -> list[str] | None:
        """The tenant's block after its edits, written line by line without ruamel, when all
        its edits are `set`s and every changed line is a bare `name: value`; else None."""
        block = self.fast.tenants[tenant]
        entry = self.edited[tenant]
        if block.limits is None or entry.limits is None or tenant in self.dropped:
            return None
        if any(op[0] != "set" for op in self.ops if op[1] == tenant):
            return None
        pad = " " * (2 * self.fast.indent)
        lines = self.fast.lines[block.start : block.stop]
        for name, scalar in block.limits.items():
            value = entry.limits[name]
            if value is self.fast.value(scalar):
                continue  # unchanged (a set to the same value)
            token = written(scalar)
            if (
                lines[scalar.line - block.start]
                != pad + name + ":" + f" {token}" * bool(token) + "\n"
            ):
                return None  # an end-of-line comment: ruamel decides where it goes
            lines[scalar.line - block.start] = f"{pad}{name}: {self._emitted(value)}\n"
        added = [
            f"{pad}{n}: {self._emitted(v)}\n"
            for n, v in entry.limits.items()
            if n not in block.limits
        ]
        after = list(block.limits.values())[-1].line - block.start + 1
        return [*lines[:after], *added, *lines[after:]]

    def render(self) -> str:
        if self.whole:
            return self.render_full()
        fast = self.fast
        blocks = list(fast.tenants.values())
        position = {tenant: index for index, tenant in enumerate(fast.tenants)}
        last = len(blocks) - 1
        texts: dict[int, list[str]] = {}
        # A dropped tenant's comment lines go to its neighbour; new tenants after the last.
        touched: set[tuple[int, bool]] = {(last, False)} if self.added else set()
        for tenant in {op[1] for op in self.ops if op[1] in position}:
            text = self._text_block(tenant)
            if text is None or (self.added and position[tenant] == last):
                touched.add((position[tenant], tenant in self.dropped))
            else:
                texts[position[tenant]] = text
        ranges: list[list[int]] = []
        for index, dropped in sorted(touched):
            low, high = (max(0, index - 1), min(last, index + 1)) if dropped else (index, index)
            if ranges and low <= ranges[-1][1] + 1:
                ranges[-1][1] = max(ranges[-1][1], high)
            else:
                ranges.append([low, high])
        for low, high in ranges:  # a neighbour in a range is rendered by ruamel, edits and all
            for index in range(low, high + 1):
                texts.pop(index, None)
        lines = fast.lines
        pieces: list[tuple[int, int, str]] = [
            (blocks[i].start, blocks[i].stop, "".join(text)) for i, text in texts.items()
        ]
        if ranges:
            names = list(fast.tenants)
            rendered = self._render_ranges(ranges, blocks, {names[i] for i in texts})
            if rendered is None:
                return self.render_full()
            pieces.extend(rendered)
        out: list[str] = []
        kept = 0
        for start, stop, chunk in sorted(pieces):
            out.append("".join(lines[kept:start]))
            out.append(chunk)
            kept = stop
        out.append("".join(lines[kept:]))
        return "".join(out)

    def _render_ranges(
        self, ranges: list[list[int]], blocks: list[Any], skip: Collection[str]
    ) -> list[tuple[int, int, str]] | None:
        """Ranges of blocks rendered by ruamel as one small document, cut back into place;
        None when that does not come out as expected (the caller renders the whole file)."""
        fast = self.fast
        lines = fast.lines
        prefix = "".join(lines[: fast.header + 1])
        spans = [
            (fast.header + 1 if low == 0 else blocks[low].start, blocks[high].stop)
            for low, high in ranges
        ]
        small = prefix + "".join("".join(lines[start:stop]) for start, stop in spans)
        doc = self._replay(self.parse(small), skip)
        rendered = str(doc.render())
        if spans == [(fast.header + 1, len(lines))]:
            return [(0, len(lines), rendered)]
        if not doc.tenants() or not rendered.startswith(prefix):
            return None
        out = rendered[len(prefix) :].splitlines(keepends=True)
        cuts: list[int] = []
        at = 0
        for low, _high in ranges:
            if low == 0:
                cuts.append(0)
                continue
            first = lines[blocks[low].start]
            while at < len(out) and out[at] != first:
                at += 1
            if at == len(out):
                return None
            cuts.append(at)
        cuts.append(len(out))
        return [
            (start, stop, "".join(out[cuts[n] : cuts[n + 1]]))
            for n, (start, stop) in enumerate(spans)
        ]
