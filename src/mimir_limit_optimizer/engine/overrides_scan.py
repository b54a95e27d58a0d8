"""Reading a runtime overrides file once: `scan` makes the structural checks Mimir's loader
makes before it looks at a single limit (syntax, one document, mapping shapes, duplicate keys),
each with its 1-based line, and builds the round-trip document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import DocumentStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mimir_limit_optimizer.engine.overrides_yaml import (
    OVERRIDES_KEY,
    Indent,
    Problem,
    key_path,
    make_yaml,
    own_keys,
)

_NULL_TAG = "tag:yaml.org,2002:null"

# The consequence named in messages about problems that break the reload.
_REJECTS = "Mimir rejects the whole file"


@dataclass
class Scan:
    """Result of reading the text once: structural problems and the first document.

    `data` is the first document as ruamel round-trip objects (None for an empty document,
    or when the text cannot be constructed); `loadable` says whether it could be."""

    problems: list[Problem] = field(default_factory=list)
    loadable: bool = False
    data: Any = None
    indent: Indent = field(default_factory=Indent)
    # (line, column) of each non-string tenant key -> its text as written (yaml.v2 reads keys
    # like `123:` or `true:` as the strings "123" / "true")
    raw_tenant_keys: dict[tuple[int, int], str] = field(default_factory=dict)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def _shape(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return f"the scalar {node.value!r}"


def syntax_problem(exc: YAMLError) -> Problem:
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else int(mark.line) + 1
        message = "not valid YAML: " + str(exc.problem or exc.context or "syntax error")
        if exc.context and exc.context_mark is not None and exc.problem:
            message += f" ({exc.context} at line {int(exc.context_mark.line) + 1})"
        return Problem(line, "", message, f"fix the YAML syntax: {_REJECTS}")
    return Problem(None, "", f"not valid YAML: {exc}", f"fix the YAML syntax: {_REJECTS}")


def _second_document_line(text: str) -> int:
    """1-based line of the second document's start (its `---`)."""
    starts = [e.start_mark for e in make_yaml().parse(text) if isinstance(e, DocumentStartEvent)]
    return int(starts[1].line) + 1


def _guess_indent(root: MappingNode) -> Indent:
    mapping: int | None = None
    sequence: tuple[int, int] | None = None
    stack: list[Node] = [root]
    seen: set[int] = set()
    while stack and (mapping is None or sequence is None):
        node = stack.pop(0)
        if id(node) in seen or not isinstance(node, MappingNode):
            continue
        seen.add(id(node))
        for key, value in node.value:
            column = int(key.start_mark.column)
            if isinstance(value, MappingNode) and not value.flow_style and value.value:
                if mapping is None:
                    mapping = int(value.value[0][0].start_mark.column) - column
                stack.append(value)
            elif isinstance(value, SequenceNode) and not value.flow_style and value.value:
                if sequence is None:
                    dash = int(value.start_mark.column) - column
                    item = int(value.value[0].start_mark.column) - column
                    sequence = (max(item, dash + 2), max(dash, 0))
                stack.extend(v for v in value.value if isinstance(v, MappingNode))
    mapping = mapping if mapping and mapping > 0 else 2
    seq, offset = sequence or (2, 0)
    return Indent(mapping=mapping, sequence=seq, offset=offset)


def _duplicates(node: Node, path: tuple[str, ...], problems: list[Problem], seen: set[int]) -> None:
    """Duplicate keys in every mapping below `node` (yaml.v2 strict mode rejects them all)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _duplicates(item, (*path, str(index)), problems, seen)
        return
    if not isinstance(node, MappingNode):
        return
    first_line: dict[str, int] = {}
    for key, value in node.value:
        if isinstance(key, ScalarNode) and key.value != "<<":
            name = str(key.value)
            if name in first_line:
                problems.append(
                    Problem(
                        _line(key),
                        key_path(*path, name),
                        f"duplicate key {name!r} (first at line {first_line[name]}): {_REJECTS}",
                        "keep one of the two entries",
                    )
                )
            else:
                first_line[name] = _line(key)
        name = str(key.value) if isinstance(key, ScalarNode) else "?"
        _duplicates(value, (*path, name), problems, seen)


def scan(text: str) -> Scan:
    """Compose `text` once, check its structure in the order Mimir's loader meets problems,
    and construct the first document (duplicates allowed, so that one duplicate does not hide
    every other problem; `parse_overrides` refuses them anyway)."""
    result = Scan()
    yaml = make_yaml(allow_duplicate_keys=True)
    try:
        documents = list(yaml.compose_all(text))
    except YAMLError as exc:
        result.problems.append(syntax_problem(exc))
        return result
    if len(documents) > 1:
        result.problems.append(
            Problem(
                _second_document_line(text),
                "",
                f"a second YAML document starts here: {_REJECTS} when it holds more than one",
                "remove the `---` separator and merge the documents, or put the second one in "
                "its own file and list both in -runtime-config.file",
            )
        )
    root = documents[0] if documents else None
    if root is None or _is_null(root):
        result.loadable = True
        return result
    if not isinstance(root, MappingNode):
        result.problems.append(
            Problem(
                _line(root),
                "",
                f"the top level must be a mapping (like `overrides:`), not {_shape(root)}",
                "start the file with `overrides:` and the tenants below it",
            )
        )
        return result
    result.indent = _guess_indent(root)
    _duplicates(root, (), result.problems, set())
    for key, value in root.value:
        if isinstance(key, ScalarNode) and key.value == OVERRIDES_KEY:
            _scan_overrides(value, result)
    try:
        # The constructor of the loader that composed the nodes, as ruamel's own load() does.
        result.data = yaml.constructor.construct_document(root)
    except (YAMLError, ValueError) as exc:  # constructor errors, e.g. `!!int abc`
        result.problems.append(_construction_problem(yaml, root, exc))
        return result
    result.loadable = True
    _merged_tenant_keys(result)
    return result


def _construction_problem(yaml: YAML, root: Node, exc: Exception) -> Problem:
    """A value ruamel cannot build (an explicit tag that does not fit, like `!!int abc`), at
    the line of the first scalar that fails on its own."""
    if isinstance(exc, YAMLError):
        return syntax_problem(exc)
    line = None
    stack: list[Node] = [root]
    while stack and line is None:
        node = stack.pop(0)
        if isinstance(node, MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
        else:
            try:  # a fresh constructor: the failed one holds half-built state
                make_yaml().constructor.construct_object(node)
            except (YAMLError, ValueError):
                line = _line(node)
    return Problem(line, "", f"not valid YAML: {exc}", f"fix the value: {_REJECTS}")


def _merged_tenant_keys(result: Scan) -> None:
    """Tenant keys Mimir reads as different strings but YAML 1.2 as one value (`123` and
    `0123`, `true` and `True`): the round-trip model would silently keep only the first."""
    overrides = result.data.get(OVERRIDES_KEY) if isinstance(result.data, CommentedMap) else None
    if not isinstance(overrides, CommentedMap) or not result.raw_tenant_keys:
        return
    kept = set()
    for key in own_keys(overrides):
        try:
            line, column = overrides.lc.key(key)
        except (KeyError, TypeError):
            continue
        kept.add((int(line), int(column)))
    for (line, column), raw in sorted(result.raw_tenant_keys.items()):
        if (line, column) not in kept and not any(p.line == line + 1 for p in result.problems):
            result.problems.append(
                Problem(
                    line + 1,
                    key_path(OVERRIDES_KEY, raw),
                    f"tenant id {raw} is the same YAML value as an earlier tenant key: YAML "
                    "tools (this one included) merge the two entries",
                    f"quote the tenant ids ('{raw}')",
                )
            )


def _scan_overrides(node: Node, result: Scan) -> None:
    if _is_null(node):
        return
    if not isinstance(node, MappingNode):
        result.problems.append(
            Problem(
                _line(node),
                OVERRIDES_KEY,
                f"`overrides` must be a mapping of tenant ids to limits, not {_shape(node)}",
                "write `overrides:` then one indented `tenant-id:` entry per tenant",
            )
        )
        return
    for key, value in node.value:
        if not isinstance(key, ScalarNode):
            result.problems.append(
                Problem(
                    _line(key),
                    OVERRIDES_KEY,
                    "a tenant id must be a plain string, not a complex key",
                    "write the tenant id as a plain or quoted string",
                )
            )
            continue
        if key.tag != "tag:yaml.org,2002:str":
            mark = key.start_mark
            result.raw_tenant_keys[(int(mark.line), int(mark.column))] = str(key.value)
        if key.value == "<<" or _is_null(value) or isinstance(value, MappingNode):
            continue
        result.problems.append(
            Problem(
                _line(value),
                key_path(OVERRIDES_KEY, key.value),
                f"a tenant entry must be a mapping of limit names to values, not {_shape(value)}",
                "indent the tenant's limits below its id, one `limit_name: value` per line",
            )
        )
