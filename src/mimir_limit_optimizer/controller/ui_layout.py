"""Where each tenant's block is in a runtime overrides file, found by a scan of its lines (no
YAML parser: ruamel takes seconds on the 40,000-80,000 lines of 10,000 tenants, libyaml about
one second). Only the layout the optimizer writes and people usually write is understood: block
mappings, plain or simply quoted tenant ids, scalar values; anything else (anchors, aliases,
merge keys, tabs, several documents, `overrides` in flow style) gives None and the caller uses
a YAML parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(r"^overrides\s*:\s*(?:#.*)?$")
_ANY_HEADER = re.compile(r"""^['"]?overrides['"]?\s*:""")
_KEY = re.compile(
    r"""^(?:'((?:[^']|'')*)'|"([^"\\]*)"|([^\s#'"&*!|>{}\[\],%@`][^#]*?))\s*:(?:\s|$)(.*)$"""
)
_UNSUPPORTED = re.compile(r"(?:^|[\s:\-\[{,])[&*][^\s]|<<\s*:|^ *\t", re.MULTILINE)


@dataclass(frozen=True)
class Layout:
    """Where each tenant's block is in the current text (0-based lines, end exclusive)."""

    lines: list[str]  # the text's lines, with their line ends
    header: int | None  # the `overrides:` line; None when the file has none
    end: int  # the line after the overrides section
    blocks: dict[str, tuple[int, int]]
    # The limits each block sets (its direct keys); None for a non-empty flow mapping
    # (`t: {a: 1}`), which stays on its one line when a key is added (`t: {}` becomes a block).
    keys: dict[str, frozenset[str] | None]
    # Each block's direct keys and their raw values (comment stripped; "" for a nested
    # value); None for a flow mapping.
    values: dict[str, dict[str, str] | None]


def scan_layout(text: str) -> Layout | None:
    lines = text.splitlines(keepends=True)
    if any(line.startswith(("---", "...")) for line in lines[1:]) or "\t" in text:
        return None
    if _UNSUPPORTED.search(text):  # anywhere, even outside `overrides` (e.g. an anchor there)
        return None
    header = next((i for i, line in enumerate(lines) if _HEADER.match(line.rstrip("\n"))), None)
    if header is None:
        if any(_ANY_HEADER.match(line) for line in lines):
            return None  # `overrides: {...}` or a quoted key: the whole file is rendered
        return Layout(lines, None, len(lines), {}, {}, {})
    blocks: dict[str, tuple[int, int]] = {}
    keys: dict[str, dict[str, str]] = {}
    flow: set[str] = set()
    indent: int | None = None
    current: str | None = None
    child: int | None = None  # indentation of the current block's keys
    end = len(lines)
    for i in range(header + 1, len(lines)):
        line = lines[i].rstrip("\r\n")
        body = line.lstrip(" ")
        if not body or body.startswith("#"):
            continue
        depth = len(line) - len(body)
        if indent is None:
            if depth == 0:
                end = i
                break
            indent = depth
        if depth < indent:
            end = i
            break
        if depth == indent:
            match = _KEY.match(body)
            if match is None:
                return None
            single, double, plain, rest = match.groups()
            tenant = single.replace("''", "'") if single is not None else double or plain
            if tenant is None or tenant in blocks:
                return None
            if current is not None:
                blocks[current] = (blocks[current][0], i)
            current, child = tenant, None
            blocks[tenant] = (i, i + 1)
            keys[tenant] = {}
            value = rest.split("#", 1)[0].strip()
            if value.startswith(("{", "[")) and value.replace(" ", "") != "{}":
                flow.add(tenant)  # a non-empty flow mapping keeps its one line
            continue
        if current is None:
            return None
        if child is None:
            child = depth
        if depth == child:
            match = _KEY.match(body)
            if match is not None:
                key = match.group(3) or match.group(2) or match.group(1) or ""
                keys[current][key] = _value(match.group(4))
    if current is not None:
        blocks[current] = (blocks[current][0], end)
    sets = {t: None if t in flow else frozenset(k) for t, k in keys.items()}
    values = {t: None if t in flow else k for t, k in keys.items()}
    return Layout(lines, header, end, blocks, sets, values)


def _value(rest: str) -> str:
    """The raw scalar after `key:` without its comment (a quoted `#` is kept)."""
    text = rest.strip()
    if text.startswith(("'", '"')):
        return text
    return text.split(" #", 1)[0].strip() if not text.startswith("#") else ""
