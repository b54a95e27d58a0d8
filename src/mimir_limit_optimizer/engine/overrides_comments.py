"""Comment-preserving edits of ruamel round-trip maps (internal to `engine.overrides`).

ruamel keeps the comment lines that FOLLOW an item on that item's last leaf (the last scalar
of its subtree). Appending after the item, or deleting it, would move those lines to the
wrong place or drop them. `replace_item`, `append_item` and `remove_item` move them so they
stay in front of whatever followed them in the file. Comments are never deleted: the lines
above a removed key stay where they were.
"""

from __future__ import annotations

import copy
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

from mimir_limit_optimizer.engine.overrides_yaml import has_own_keys, own_keys

_Slot = tuple[Any, Any]  # (container, key or index)


def _last_own_key(mapping: CommentedMap) -> Any:
    if getattr(mapping, "merge", None):
        return own_keys(mapping)[-1]
    return next(reversed(mapping))


def _leaf(container: Any, key: Any) -> _Slot:
    """The last leaf item of `container[key]`'s subtree (or the item itself): where ruamel
    keeps the comment lines that follow the subtree in the file."""
    slot: _Slot = (container, key)
    node = container[key]
    while True:
        if isinstance(node, CommentedMap | CommentedSeq) and node.fa.flow_style():
            return slot  # `{...}` / `[...]` sit on one line: comments go after the item
        if isinstance(node, CommentedMap) and has_own_keys(node):
            slot = (node, _last_own_key(node))
        elif isinstance(node, CommentedSeq) and len(node):
            slot = (node, len(node) - 1)
        else:
            return slot
        node = slot[0][slot[1]]


def _comment_cell(slot: _Slot, *, create: bool) -> tuple[list[Any], int] | None:
    container, key = slot
    index = 0 if isinstance(container, CommentedSeq) else 2
    cell = container.ca.items.get(key)
    if cell is None:
        if not create:
            return None
        cell = [None, None, None, None]
        container.ca.items[key] = cell
    return cell, index


def _append_lines(token: Any, lines: str) -> None:
    value = str(token.value)
    token.value = (value if value.endswith("\n") else value + "\n") + lines


def _detach_trailing(container: Any, key: Any) -> Any:
    """Take the comment lines after item `key`'s subtree, leaving its end-of-line comment.

    Returns a token whose value is "\\n" + those lines (ruamel's shape for "no end-of-line
    comment, then these lines"), or None."""
    found = _comment_cell(_leaf(container, key), create=False)
    if found is None:
        return None
    cell, index = found
    token = cell[index]
    if token is None:
        return None
    head, _, tail = str(token.value).partition("\n")
    if not tail:
        return None
    moved = copy.copy(token)
    moved.value = "\n" + tail
    if head.strip():
        token.value = head + "\n"
    else:
        cell[index] = None
    return moved


def _attach_trailing(container: Any, key: Any, moved: Any) -> None:
    """Put comment lines (a `_detach_trailing` token) after item `key`'s subtree."""
    found = _comment_cell(_leaf(container, key), create=True)
    assert found is not None
    cell, index = found
    if cell[index] is None:
        cell[index] = moved
    else:
        _append_lines(cell[index], str(moved.value)[1:])


def _attach_leading(mapping: CommentedMap, moved: Any) -> None:
    """Put comment lines before the first item of a (nested) mapping."""
    pre = mapping.ca.comment
    if pre and pre[0] is not None:
        _append_lines(pre[0], str(moved.value)[1:])
    elif pre:
        pre[0] = moved
    else:
        mapping.ca.comment = [moved, None]


def replace_item(mapping: CommentedMap, key: Any, value: Any) -> None:
    """`mapping[key] = value` keeping the comment lines that followed the old value after the
    new one (a null tenant entry becoming a mapping must not swallow the next tenant's
    comments)."""
    moved = _detach_trailing(mapping, key) if key in mapping else None
    mapping[key] = value
    if moved is not None:
        _attach_trailing(mapping, key, moved)


def append_item(mapping: CommentedMap, key: Any, value: Any, parent: _Slot | None) -> None:
    """Add `key: value` after the last item of `mapping`; `parent` is where `mapping` lives
    (its container and key), needed when `mapping` is empty."""
    if has_own_keys(mapping):
        moved = _detach_trailing(mapping, _last_own_key(mapping))
    else:
        mapping.fa.set_block_style()
        moved = _detach_trailing(*parent) if parent is not None else None
    mapping[key] = value
    if moved is not None:
        _attach_trailing(mapping, key, moved)


def remove_item(mapping: CommentedMap, key: Any, carry: Any = None) -> Any:
    """Delete `key`, keeping the comment lines that followed it in front of the next item.

    `carry` holds more such lines (of a removed child). Returns the lines it could not place
    because `mapping` is now empty; the caller places them one level up."""
    keys = own_keys(mapping)
    position = keys.index(key)
    moved = _detach_trailing(mapping, key)
    if carry is not None:
        if moved is None:
            moved = carry
        else:
            _append_lines(moved, str(carry.value)[1:])
    del mapping[key]
    mapping.ca.items.pop(key, None)
    if not len(mapping):
        mapping.fa.set_flow_style()  # rendered `{}`; comments then go after it, not before
    if moved is None:
        return None
    if position > 0:
        _attach_trailing(mapping, keys[position - 1], moved)
        return None
    if has_own_keys(mapping):
        _attach_leading(mapping, moved)
        return None
    return moved


def attach_after_empty(mapping: CommentedMap, key: Any, moved: Any) -> None:
    """Place leftovers of `remove_item` after `mapping[key]`, a collection the edit emptied
    (rendered `{}`): where ruamel keeps such lines depends on what follows the item."""
    cell = mapping.ca.items.get(key)
    if cell is not None and cell[2] is not None:
        _append_lines(cell[2], str(moved.value)[1:])
        return
    # The lines carry their own indentation: a fresh token at column 0 keeps it unchanged.
    token = CommentToken(str(moved.value)[1:], CommentMark(0), None)
    keys = own_keys(mapping)
    position = keys.index(key)
    if position + 1 < len(keys):
        following = mapping.ca.items.setdefault(keys[position + 1], [None, None, None, None])
        following[1] = [token, *(following[1] or [])]
    else:
        if mapping.ca.comment is None:
            mapping.ca.comment = [None, None]  # ruamel emits `end` only next to a `comment`
        mapping.ca.end = [token, *(mapping.ca.end or [])]
