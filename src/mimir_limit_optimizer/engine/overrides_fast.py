"""A line reader for the common shape of a runtime overrides file (internal to `engine.overrides*`).

ruamel.yaml's round-trip composer takes ~13 s on the 40,000 lines of 10,000 tenants; the
service reads the target file every cycle. Most files have one shape, the one the optimizer
writes and people usually write:

```yaml
# comments and blank lines anywhere
overrides:
  tenant-a:               # plain or simply quoted tenant ids
    ingestion_rate: 50000 # one plain or simply quoted scalar per line
  'tenant-b':
```

`read_fast` reads exactly that shape, line by line, and gives up (None) on anything else:
other top-level keys, nested values, multi-line scalars, flow style, anchors, tags, tabs,
escapes, duplicate keys, keys that YAML reads as the same value, non-ASCII text... The caller
then parses with ruamel as before: every answer of this reader must be the one ruamel gives,
so a scalar is resolved and constructed by ruamel's own resolver and round-trip constructor
(same Python types: ScalarInt, ScalarFloat, quoted strings, None), one scalar at a time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode

from mimir_limit_optimizer.engine.overrides_yaml import make_yaml

STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_MAX_KEY = 1000  # ruamel refuses implicit keys over 1024 characters: leave those to it

_NOT_SIMPLE = re.compile(r"[^\x20-\x7e\n]")  # tabs, CR, control and non-ASCII characters
_HEADER = re.compile(r"overrides:(?: *| +#.*)")
_PLAIN_KEY = r"[A-Za-z0-9_.][A-Za-z0-9_./-]*(?: +[A-Za-z0-9_./-]+)*"
KEY_TOKEN = re.compile(
    rf"(?P<plain>{_PLAIN_KEY})" + r"|'(?P<single>(?:[^']|'')*)'" + r'|"(?P<double>[^"\\]*)"'
)
_KEY = re.compile(rf"(?:{KEY_TOKEN.pattern}):(?: *| +#.*)")
_CHILD = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>(?: .*)?)")
_PLAIN_VALUE = re.compile(r"(?:[A-Za-z0-9_.+~/]|-(?=[^ ]))[A-Za-z0-9_.+~/ -]*")
_QUOTED_VALUE = re.compile(r"""(?:'(?:[^']|'')*'|"[^"\\]*")(?= *$| +#)""")
_DECIMAL = re.compile(r"-?[1-9][0-9]*")
_SIMPLE_LIMIT = re.compile(r"( +)([A-Za-z_][A-Za-z0-9_]*): (-?[0-9]+)\n?")
_AFTER_VALUE = re.compile(r" *(?: #.*)?")


@dataclass(frozen=True)
class Scalar:
    """One value as written: `style` None (plain), "'" or '"'; `text` without the quotes."""

    text: str
    style: str | None
    line: int  # 0-based line of the key
    value_line: int  # 0-based line ruamel gives the value (the next token's for an empty one)


@dataclass
class Block:
    """One tenant entry: its key's line, its text as written when it is not a YAML string
    (`123:`), its lines [start, stop) up to the next tenant, and its limits (None: null)."""

    line: int
    raw_key: str | None
    start: int
    stop: int
    limits: dict[str, Scalar] | None
    indent: int | None = None  # column of its limits


@dataclass
class FastOverrides:
    """The file read by `read_fast`: tenants in file order; `indent` is the tenant column."""

    lines: list[str]
    header: int
    indent: int
    tenants: dict[str, Block]
    yaml: YAML
    table: Any
    _values: dict[tuple[str, str | None], Any] = field(default_factory=dict)

    def value(self, scalar: Scalar) -> Any:
        """The scalar as ruamel's round-trip loader constructs it (cached per text and style:
        files repeat values, and a ruamel scalar is not mutated by readers)."""
        cache_key = (scalar.text, scalar.style)
        if cache_key in self._values:
            return self._values[cache_key]
        value = construct(self.yaml, self.table, scalar.text, scalar.style)
        self._values[cache_key] = value
        return value

    # The reads of `OverridesDocument`, answered as its round-trip model answers them.

    def _limits(self, tenant: str) -> dict[str, Scalar] | None:
        block = self.tenants.get(tenant)
        return None if block is None else block.limits

    def limits_of(self, tenant: str) -> list[str]:
        return list(self._limits(tenant) or ())

    def sets(self, tenant: str, limit: str) -> bool:
        return limit in (self._limits(tenant) or ())

    def get(self, tenant: str, limit: str) -> Any:
        scalar = (self._limits(tenant) or {}).get(limit)
        return None if scalar is None else self.value(scalar)

    def line_of(self, tenant: str, limit: str) -> int | None:
        scalar = (self._limits(tenant) or {}).get(limit)
        return None if scalar is None else scalar.value_line + 1


def resolver_table(yaml: YAML) -> Any:
    """ruamel's implicit resolvers for the version it parses this text in (YAML 1.2: the
    reader refuses `%YAML` directives), by first character."""
    return yaml.resolver.versioned_resolver


def resolve(table: Any, text: str, style: str | None) -> str:
    """The tag ruamel's resolver gives a scalar (its `resolve`, without re-selecting the
    version's table on every call, which costs more than the match)."""
    if style is not None:
        return STR_TAG
    candidates = [*table.get(text[0] if text else "", ()), *table.get(None, ())]
    for tag, regexp in candidates:
        if regexp.match(text):
            return str(tag)
    return STR_TAG


def construct(yaml: YAML, table: Any, text: str, style: str | None) -> Any:
    if style is None and _DECIMAL.fullmatch(text):
        return int(text)  # what ruamel's construct_yaml_int returns for these (YAML 1.2)
    node = ScalarNode(resolve(table, text, style), text, style=style)
    constructor = yaml.constructor
    value = constructor.construct_object(node, deep=True)
    constructor.constructed_objects.pop(node, None)  # no per-node bookkeeping left behind
    return value


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_content(line: str) -> bool:
    body = line.strip(" \n")
    return bool(body) and not body.startswith("#")


def _value(rest: str) -> tuple[str, str | None] | None:
    """(text, style) of what follows `name:`; ("", None) for an empty (null) value; None for
    anything this reader leaves to ruamel."""
    body = rest.strip(" \n")
    if not body or body.startswith("#"):
        return "", None
    if body[0] in "'\"":
        found = _QUOTED_VALUE.match(body)
        if found is None or _AFTER_VALUE.fullmatch(body[found.end() :]) is None:
            return None
        quoted = found.group(0)
        inner = quoted[1:-1]
        return (inner.replace("''", "'"), "'") if quoted[0] == "'" else (inner, '"')
    text = body.split(" #", 1)[0].rstrip(" ")
    if _PLAIN_VALUE.fullmatch(text) is None:
        return None
    return text, None


class _Reader:
    def __init__(self, lines: list[str], yaml: YAML) -> None:
        self.lines = lines
        self.yaml = yaml
        self.table = resolver_table(yaml)
        self.tenants: dict[str, Block] = {}
        self.key_values: set[Any] = set()  # constructed non-string tenant keys
        self.names: dict[str, bool] = {}  # limit name -> whether YAML reads it as a string

    def is_string(self, name: str) -> bool:
        known = self.names.get(name)
        if known is None:
            known = self.names[name] = resolve(self.table, name, None) == STR_TAG
        return known

    def tenant(self, line: int, body: str) -> Block | None:
        found = _KEY.fullmatch(body)
        if found is None:
            return None
        plain, single, double = found.group("plain", "single", "double")
        raw_key: str | None = None
        if plain is not None:
            text = plain
            if resolve(self.table, plain, None) != STR_TAG:
                value = construct(self.yaml, self.table, plain, None)
                if value is None or _is_nan(value) or value in self.key_values:
                    return None  # `~:`, or `123:` after `0123:`: leave them to ruamel
                self.key_values.add(value)
                raw_key = plain
        else:
            text = single.replace("''", "'") if single is not None else double
        if len(text) > _MAX_KEY or text in self.tenants:
            return None
        block = Block(line, raw_key, line, line + 1, None)
        self.tenants[text] = block
        return block

    def simple(self, block: Block, line: int, name: str, value: str) -> bool:
        if len(name) > _MAX_KEY or not self.is_string(name):
            return False
        if block.limits is None:
            block.limits = {}
        if name in block.limits:
            return False
        block.limits[name] = Scalar(value, None, line, line)
        return True

    def limit(self, block: Block, line: int, body: str) -> bool:
        found = _CHILD.fullmatch(body)
        if found is None:
            return False
        name = found.group("name")
        value = _value(found.group("rest"))
        if value is None or len(name) > _MAX_KEY or not self.is_string(name):
            return False
        if block.limits is None:
            block.limits = {}
        if name in block.limits:
            return False
        value_line = line
        if value[0] == "" and value[1] is None:
            value_line = self.empty_value_line(line, block.indent, "#" in found.group("rest"))
        block.limits[name] = Scalar(value[0], value[1], line, value_line)
        return True

    def empty_value_line(self, line: int, column: int | None, comment: bool) -> int:
        """The line ruamel gives an empty (null) value: that of the next token, which is the
        next content line (or the end of the text), except that a comment after `name:`
        followed by a sibling key keeps it on its own line."""
        lines = self.lines
        for index in range(line + 1, len(lines)):
            if _is_content(lines[index]):
                return line if comment and _indent(lines[index]) == column else index
        return sum(text.endswith("\n") for text in lines[-1:]) + len(lines) - 1


def read_fast(text: str) -> FastOverrides | None:
    """The file read line by line, or None when its shape is not the common one (then only
    ruamel knows what it means)."""
    if _NOT_SIMPLE.search(text):
        return None
    lines = text.splitlines(keepends=True)
    header: int | None = None
    for index, line in enumerate(lines):
        if _is_content(line):
            if _HEADER.fullmatch(line.rstrip("\n")) is None:
                return None
            header = index
            break
        if line.startswith(("%", "---", "...")):
            return None
    if header is None:
        return None
    yaml = make_yaml()
    reader = _Reader(lines, yaml)
    indent: int | None = None
    block: Block | None = None
    for index in range(header + 1, len(lines)):
        line = lines[index]
        simple = _SIMPLE_LIMIT.fullmatch(line)
        if simple is not None and block is not None and indent is not None:
            # `    name: 123`, most lines of a large file: what `limit` reads, in one match.
            column = len(simple.group(1))
            if column > indent and block.indent in (None, column):
                block.indent = column
                if not reader.simple(block, index, simple.group(2), simple.group(3)):
                    return None
                continue
        if not _is_content(line):
            continue
        column = _indent(line)
        body = line[column:].rstrip("\n")
        if column == 0:
            return None  # another top-level key (or a document marker)
        if indent is None:
            indent = column
        if column == indent:
            if block is not None:
                block.stop = index
            block = reader.tenant(index, body)
            if block is None:
                return None
        elif block is None or column < indent:
            return None
        else:
            if block.indent is None:
                block.indent = column
            if column != block.indent or not reader.limit(block, index, body):
                return None
    if block is not None:
        block.stop = len(lines)
    _extend_last(reader.tenants, lines)
    return FastOverrides(lines, header, indent or 0, reader.tenants, yaml, reader.table)


def _extend_last(tenants: dict[str, Block], lines: list[str]) -> None:
    """Blocks run from their key line to the next tenant's (comments between them included)."""
    if tenants:
        last = next(reversed(tenants.values()))
        last.stop = len(lines)
