"""Read a configuration file into plain Python data plus the line of every key.

ruamel.yaml's composer gives the node tree with positions: we check it for a second document
and for duplicate keys (which a YAML loader would otherwise resolve by silently keeping one),
then construct plain dicts, lists and scalars with the round-trip loader, recording lines.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mimir_limit_optimizer.config.errors import (
    ConfigError,
    KeyPath,
    Origin,
    Origins,
    format_key_path,
)

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class RawDocument:
    """A configuration file as plain data; `origins` holds the line of every key and item."""

    data: dict[str, Any]
    origins: Origins


def parse_yaml(text: str, file: str) -> RawDocument:
    """Parse `text` (the contents of `file`); raise ConfigError on any YAML-level mistake."""
    yaml = YAML(typ="rt", pure=True)
    try:
        documents = list(yaml.compose_all(text))
    except MarkedYAMLError as exc:
        raise _syntax_error(exc, file) from exc
    except YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", file=file) from exc
    if not documents:
        return RawDocument({}, Origins())
    if len(documents) > 1:
        raise ConfigError(
            "a second YAML document",
            file=file,
            line=_separator_line(text, documents[1].start_mark.line),
            fix="the configuration is one document: remove the '---' separator "
            "and merge the two parts",
        )
    root = documents[0]
    if isinstance(root, ScalarNode) and str(root.tag).endswith(":null"):
        return RawDocument({}, Origins())
    if not isinstance(root, MappingNode):
        raise ConfigError(
            "the configuration must be a mapping of keys",
            file=file,
            line=root.start_mark.line + 1,
            fix="start with top-level keys such as `mode: dry-run`",
        )
    _check_duplicates(root, (), file, set())

    try:
        loaded = yaml.load(text)
    except MarkedYAMLError as exc:  # e.g. a bad explicit tag (`!!int abc`)
        raise _syntax_error(exc, file) from exc
    origins = Origins()
    data = _plain(loaded, (), file, origins)
    if not isinstance(data, dict):  # pragma: no cover - the node check above rules it out
        raise ConfigError("the configuration must be a mapping of keys", file=file, line=1)
    return RawDocument(data, origins)


def _separator_line(text: str, content_line: int) -> int:
    """1-based line of the `---` that starts the document whose content is at `content_line`
    (0-based); the content line itself when there is no marker."""
    lines = text.splitlines()
    for index in range(min(content_line, len(lines) - 1), -1, -1):
        if lines[index].startswith("---"):
            return index + 1
    return content_line + 1


def _syntax_error(exc: MarkedYAMLError, file: str) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem:
        problem = f"{exc.context}: {problem}"
    return ConfigError(
        f"YAML syntax error: {problem}",
        file=file,
        line=mark.line + 1 if mark is not None else None,
        fix="check the indentation, quoting and the ':' after each key on this line "
        "and the one above",
    )


def _check_duplicates(node: Node, path: KeyPath, file: str, seen: set[int]) -> None:
    """Reject a key given twice in one mapping, naming both lines."""
    if id(node) in seen:  # anchors/aliases share nodes; visit each once
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        first_line: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                _check_duplicates(value_node, path, file, seen)
                continue
            identity = (str(key_node.tag), str(key_node.value))
            line = key_node.start_mark.line + 1
            if identity in first_line:
                key = format_key_path((*path, key_node.value))
                raise ConfigError(
                    f"duplicate key (first defined on line {first_line[identity]}, "
                    f"again on line {line})",
                    key=key,
                    file=file,
                    line=line,
                    related_lines=(first_line[identity],),
                    fix="keep one of them and merge the settings into it (YAML would "
                    "silently drop one)",
                )
            first_line[identity] = line
            _check_duplicates(value_node, (*path, key_node.value), file, seen)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicates(item, (*path, index), file, seen)


def _line(container: Any, key: Any) -> int | None:
    """1-based line of a key (mapping) or item (sequence); None for merged-in keys."""
    positions = getattr(getattr(container, "lc", None), "data", None)
    if not positions or key not in positions:
        return None
    return int(positions[key][0]) + 1


def _plain(value: Any, path: KeyPath, file: str, origins: Origins) -> Any:
    """ruamel's round-trip types (CommentedMap, ScalarFloat, ...) as plain Python values."""
    if isinstance(value, dict):
        result: dict[Any, Any] = {}
        for key, item in value.items():
            line = _line(value, key)
            plain_key = _plain_key(key)
            if plain_key is None:
                where = origins.find(path)[0].line if line is None else line
                raise ConfigError(
                    "empty key",
                    key=format_key_path(path),
                    file=file,
                    line=where,
                    fix="write a name before the ':'",
                )
            if line is not None:
                origins.set((*path, plain_key), Origin(file, file, line))
            result[plain_key] = _plain(item, (*path, plain_key), file, origins)
        return result
    if isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            line = _line(value, index)
            if line is not None:
                origins.set((*path, index), Origin(file, file, line))
            items.append(_plain(item, (*path, index), file, origins))
        return items
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        # ScalarBoolean (an int subclass) comes back for anchored booleans.
        return bool(value) if type(value).__name__ == "ScalarBoolean" else int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dt.date):
        return value
    return str(value)  # tagged scalars and other exotica: the text, for the models to judge


def _plain_key(key: Any) -> str | None:
    """Mapping keys are names: `9-17`, `1: x` and `true: x` all read as strings."""
    if key is None:
        return None
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)
