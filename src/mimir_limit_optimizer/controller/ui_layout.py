"""Where each tenant's block is in a runtime overrides file, found by a scan of its lines (no
YAML parser: ruamel takes seconds on the 40,000-80,000 lines of 10,000 tenants, libyaml about
one second). Only the layout the optimizer writes and people usually write is understood: block
mappings, plain or simply quoted tenant ids, scalar values; anything else (anchors, aliases,
merge keys, tabs, several documents, `overrides` in flow style) gives None and the caller uses
a YAML parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEADER_LINE = re.compile(r"^overrides[ \t]*:[ \t]*(?:#[^\n]*)?$", re.MULTILINE)
_CONTENT = re.compile(r"^( *)[^ \r\n#]", re.MULTILINE)  # a line that is not blank or a comment
_KEY_LINES: dict[str, re.Pattern[str]] = {}  # limit name -> its `  name:` line (compiled once)
_ANY_HEADER = re.compile(r"""^['"]?overrides['"]?\s*:""")
_KEY = re.compile(
    r"""^(?:'((?:[^']|'')*)'|"([^"\\]*)"|([^\s#'"&*!|>{}\[\],%@`][^#]*?))\s*:(?:\s|$)(.*)$"""
)
_UNSUPPORTED = re.compile(r"(?:^|[\s:\-\[{,])[&*][^\s]|<<\s*:|^ *\t", re.MULTILINE)


@dataclass
class Layout:
    """Where each tenant's block is in the text (0-based lines, end exclusive). A block's keys
    and values are read when asked for (most questions concern a few tenants)."""

    lines: list[str]  # the text's lines, with their line ends
    header: int | None  # the `overrides:` line; None when the file has none
    end: int  # the line after the overrides section
    blocks: dict[str, tuple[int, int]]
    flow: set[str] = field(default_factory=set)  # tenants written `t: {a: 1}`
    _entries: dict[str, dict[str, str]] = field(default_factory=dict)

    def block_text(self, tenant: str) -> str:
        start, stop = self.blocks[tenant]
        return "".join(self.lines[start:stop])

    def sets(self, tenant: str, key: str) -> bool | None:
        """Whether the block has a line `key:` (quick: any depth); None for a flow mapping."""
        if tenant in self.flow:
            return None
        pattern = _KEY_LINES.get(key)
        if pattern is None:
            pattern = _KEY_LINES[key] = re.compile(rf"^ +{re.escape(key)}[ \t]*:", re.MULTILINE)
        start, stop = self.blocks[tenant]
        return any(pattern.match(self.lines[i]) for i in range(start + 1, stop))

    def entries(self, tenant: str) -> dict[str, str] | None:
        """The block's direct keys and raw values (comment stripped; "" for a nested value);
        None for a non-empty flow mapping, which stays on its one line when a key is added
        (`t: {}` becomes a block)."""
        if tenant in self.flow:
            return None
        found = self._entries.get(tenant)
        if found is None:
            found = self._entries[tenant] = self._read(tenant)
        return found

    def _read(self, tenant: str) -> dict[str, str]:
        start, stop = self.blocks[tenant]
        out: dict[str, str] = {}
        child: int | None = None  # indentation of the block's keys
        for i in range(start + 1, stop):
            line = self.lines[i].rstrip("\r\n")
            body = line.lstrip(" ")
            if not body or body.startswith("#"):
                continue
            depth = len(line) - len(body)
            if child is None:
                child = depth
            if depth == child:
                match = _KEY.match(body)
                if match is not None:
                    key = match.group(3) or match.group(2) or match.group(1) or ""
                    out[key] = _value(match.group(4))
        return out


def scan_layout(text: str) -> Layout | None:
    lines = text.splitlines(keepends=True)
    if any(line.startswith(("---", "...")) for line in lines[1:]) or "\t" in text:
        return None
    if _UNSUPPORTED.search(text):  # anywhere, even outside `overrides` (e.g. an anchor there)
        return None
    found = _HEADER_LINE.search(text)
    if found is None:
        if any(_ANY_HEADER.match(line) for line in lines):
            return None  # `overrides: {...}` or a quoted key: the whole file is rendered
        return Layout(lines, None, len(lines), {})
    header = text.count("\n", 0, found.start())
    body_from = found.end()
    first = _CONTENT.search(text, body_from)
    if first is None or not first.group(1):  # nothing indented under `overrides:`
        end = len(lines) if first is None else text.count("\n", 0, first.start())
        return Layout(lines, header, end, {})
    indent = len(first.group(1))
    outside = re.compile(rf"^ {{0,{indent - 1}}}[^ \r\n#]", re.MULTILINE).search(text, body_from)
    stop = len(text) if outside is None else outside.start()
    end = len(lines) if outside is None else text.count("\n", 0, outside.start())
    layout = Layout(lines, header, end, {})
    tenant_line = re.compile(rf"^ {{{indent}}}([^ \r\n#][^\n]*)$", re.MULTILINE)
    row, at = header, found.start()
    previous: str | None = None
    for match in tenant_line.finditer(text, body_from, stop):
        row += text.count("\n", at, match.start())
        at = match.start()
        key = _KEY.match(match.group(1))
        if key is None:
            return None
        single, double, plain, rest = key.groups()
        tenant = single.replace("''", "'") if single is not None else double or plain
        if tenant is None or tenant in layout.blocks:
            return None
        if previous is not None:
            layout.blocks[previous] = (layout.blocks[previous][0], row)
        layout.blocks[tenant] = (row, row + 1)
        value = rest.split("#", 1)[0].strip()
        if value.startswith(("{", "[")) and value.replace(" ", "") != "{}":
            layout.flow.add(tenant)
        previous = tenant
    if previous is not None:
        layout.blocks[previous] = (layout.blocks[previous][0], end)
    first_row = text.count("\n", 0, first.start())
    if layout.blocks and min(s for s, _e in layout.blocks.values()) != first_row:
        return None  # something deeper than a tenant before the first tenant
    return layout


def _value(rest: str) -> str:
    """The raw scalar after `key:` without its comment (a quoted `#` is kept)."""
    text = rest.strip()
    if text.startswith(("'", '"')):
        return text
    return text.split(" #", 1)[0].strip() if not text.startswith("#") else ""
