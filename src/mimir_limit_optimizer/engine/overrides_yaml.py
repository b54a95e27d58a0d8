"""YAML mechanics behind the runtime overrides model (internal to `engine.overrides*`): the
problem and parse-error types, key paths, the round-trip YAML instance that keeps a file's
layout, and the keys a mapping holds itself.

Reading and structural checks live in `overrides_scan`, what Mimir's decoder accepts for each
value kind in `overrides_value_rules`, comment-preserving edits in `overrides_comments`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import total_ordering
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

OVERRIDES_KEY = "overrides"


@total_ordering
@dataclass(frozen=True)
class Problem:
    """One reason Mimir would reject (or silently misread) a runtime overrides file.

    `line` is 1-based, None for problems of the file as a whole. Problems sort by line, then
    key path, then message (file-level problems first)."""

    line: int | None
    key_path: str
    message: str
    fix: str

    def _key(self) -> tuple[int, str, str]:
        return (-1 if self.line is None else self.line, self.key_path, self.message)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Problem):
            return NotImplemented
        return self._key() < other._key()


class OverridesParseError(ValueError):
    """The text is not a runtime overrides file Mimir could load (or this model could edit)."""

    def __init__(self, source_name: str, line: int | None, message: str) -> None:
        self.source_name = source_name
        self.line = line
        self.message = message
        where = source_name if line is None else f"{source_name}:{line}"
        super().__init__(f"{where}: {message}")


def key_path(*parts: object) -> str:
    """`overrides.tenant-a.ingestion_rate`; a part with a dot, space, quote or nothing in it
    is double-quoted so the path stays unambiguous (tenant ids may contain dots)."""
    out = []
    for part in parts:
        text = str(part)
        if text == "" or any(c in text for c in ".\"' \t[]"):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append(text)
    return ".".join(out)


@dataclass(frozen=True)
class Indent:
    """Block indentation of a file, so that an edited file keeps its layout."""

    mapping: int = 2
    sequence: int = 2
    offset: int = 0


def make_yaml(indent: Indent = Indent(), *, allow_duplicate_keys: bool = False) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1 << 16  # never fold long strings: a folded line is a diff nobody asked for
    yaml.allow_unicode = True
    yaml.allow_duplicate_keys = allow_duplicate_keys
    yaml.indent(mapping=indent.mapping, sequence=indent.sequence, offset=indent.offset)
    return yaml


def dump(yaml: YAML, data: Any) -> str:
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def own_keys(mapping: CommentedMap) -> list[Any]:
    """Keys written in this mapping, without those merged in through `<<: *anchor`."""
    if getattr(mapping, "merge", None):
        return [key for key, _ in mapping.non_merged_items()]
    return list(mapping)


def has_own_keys(mapping: CommentedMap) -> bool:
    if getattr(mapping, "merge", None):
        return bool(own_keys(mapping))
    return len(mapping) > 0
