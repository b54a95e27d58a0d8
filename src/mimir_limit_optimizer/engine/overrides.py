"""Mimir's runtime overrides file as an editable document: text in, text out.

```yaml
overrides:
  tenant-a:
    ingestion_rate: 50000
    compactor_blocks_retention_period: 30d
```

The file is edited in ruamel.yaml's round-trip mode: comments, key order, quoting, blank
lines, tenants and keys the optimizer does not manage all survive an edit, and a document
nobody edited renders as the exact input text. Values are written in the type Mimir's strict
decoder expects (see `limit_yaml_value`); numbers inside the optimizer are in base units
(per second, count, bytes, seconds, 1.0/0.0 for booleans) as in `catalogue.model.LimitSpec`.

A tenant inherits every limit it does not set from the global `limits` block: this module
reports only what the file says (NaN / None when it says nothing).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import numpy.typing as npt
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import SingleQuotedScalarString

from mimir_limit_optimizer.catalogue.model import LimitSpec
from mimir_limit_optimizer.engine.overrides_comments import (
    append_item,
    attach_after_empty,
    remove_item,
    replace_item,
)
from mimir_limit_optimizer.engine.overrides_fast import FastOverrides, read_fast
from mimir_limit_optimizer.engine.overrides_read import current_limits, frame
from mimir_limit_optimizer.engine.overrides_read import position as key_position
from mimir_limit_optimizer.engine.overrides_scan import scan
from mimir_limit_optimizer.engine.overrides_splice import Splice, splice_safe
from mimir_limit_optimizer.engine.overrides_validate import format_problems, validate_overrides
from mimir_limit_optimizer.engine.overrides_value_rules import (
    YAML11_FALSE,
    YAML11_TRUE,
    value_problem,
)
from mimir_limit_optimizer.engine.overrides_values import (
    OverridesEditError,
    OverridesValueError,
    limit_yaml_value,
    number_of,
    replacement,
)
from mimir_limit_optimizer.engine.overrides_yaml import (
    OVERRIDES_KEY,
    Indent,
    OverridesParseError,
    Problem,
    dump,
    make_yaml,
    own_keys,
)
from mimir_limit_optimizer.engine.tenants import tenant_id_problem

__all__ = [
    "OverridesDocument",
    "OverridesEditError",
    "OverridesParseError",
    "OverridesValueError",
    "Problem",
    "current_limits",
    "format_problems",
    "limit_yaml_value",
    "parse_overrides",
    "validate_overrides",
]

FloatArray = npt.NDArray[np.float64]

_YAML11_BOOLS = YAML11_TRUE | YAML11_FALSE


class OverridesDocument:
    """One runtime overrides file, parsed for reading and comment-preserving edits.

    Build it with `parse_overrides`. Tenant ids are the strings Mimir sees: `123:` is tenant
    "123". Edits never reorder: new tenants and keys go after the existing ones."""

    def __init__(
        self,
        *,
        data: CommentedMap | None,
        original: str,
        source_name: str,
        indent: Indent,
        raw_tenant_keys: dict[tuple[int, int], str],
        fast: FastOverrides | None = None,
    ) -> None:
        self.source_name = source_name
        self._original = original
        self._changed = False
        # The file read line by line (see `overrides_fast`): reads come from it until an edit
        # needs the round-trip model, built then from the same text.
        self._fast = fast
        self._splice: Splice | None = None  # edits of `fast` (see `overrides_splice`)
        if fast is None:
            self._load(data, indent, raw_tenant_keys)

    def _load(
        self, data: CommentedMap | None, indent: Indent, raw_tenant_keys: dict[tuple[int, int], str]
    ) -> None:
        original = self._original
        self._yaml = make_yaml(indent)
        self._prefix, self._suffix = frame(original, empty=data is None)
        self._root: CommentedMap = data if data is not None else CommentedMap()
        self._tenant_keys: dict[str, Any] = {}
        # Tenants whose entry is an alias of an earlier one (`b: *a`): copied before an edit.
        self._aliases: set[str] = set()
        overrides = self._overrides()
        if overrides is not None:
            entries: set[int] = set()
            for key in own_keys(overrides):
                text = key if isinstance(key, str) else None
                if text is None:
                    position = key_position(overrides, key)
                    fallback = str(key).lower() if isinstance(key, bool) else str(key)
                    text = raw_tenant_keys.get(position, fallback) if position else fallback
                self._tenant_keys.setdefault(text, key)
                entry = overrides[key]
                if isinstance(entry, CommentedMap):
                    if id(entry) in entries:
                        self._aliases.add(text)
                    entries.add(id(entry))

    # -- reading ------------------------------------------------------------------------------

    @property
    def changed(self) -> bool:
        """True once an edit changed a value (`render()` then re-serialises the document)."""
        return self._changed

    def _overrides(self) -> CommentedMap | None:
        value = self._root.get(OVERRIDES_KEY)
        return value if isinstance(value, CommentedMap) else None

    def _entry(self, tenant: str) -> CommentedMap | None:
        overrides = self._overrides()
        key = self._tenant_keys.get(tenant)
        if overrides is None or key is None:
            return None
        entry = overrides.get(key)
        return entry if isinstance(entry, CommentedMap) else None

    def _full(self) -> None:
        """Build the round-trip model of the text the line reader read (for an edit)."""
        if self._fast is None:
            return
        result = scan(self._original)
        if result.problems:  # the line reader accepts only files without any
            first = min(result.problems)
            raise OverridesParseError(self.source_name, first.line, _with_path(first))
        self._fast = None
        self._load(result.data, result.indent, result.raw_tenant_keys)

    def _editor(self) -> Splice | None:
        """Where an edit of a line-read document goes: its splice when the file is in
        ruamel's own output form, else (None) the round-trip model of the whole file."""
        if self._fast is None or self._splice is not None:
            return self._splice
        if not splice_safe(self._fast):
            self._full()
            return None
        name = self.source_name
        self._splice = Splice.of(self._fast, self._original, lambda t: parse_full(t, name))
        return self._splice

    def _edited(self, tenant: str) -> Splice | None:
        """The splice that answers for a tenant an edit touched (None when not edited)."""
        splice = self._splice
        return splice if splice is not None and tenant in splice.edited else None

    def tenants(self) -> list[str]:
        """Tenant ids in file order (including entries with invalid ids or no limits)."""
        if self._splice is not None:
            return list(self._splice.order)
        if self._fast is not None:
            return list(self._fast.tenants)
        return list(self._tenant_keys)

    def limits_of(self, tenant: str) -> list[str]:
        """Keys the tenant's entry sets (own and merged through `<<`), in file order."""
        edited = self._edited(tenant)
        if edited is not None:
            return edited.limits_of(tenant)
        if self._fast is not None:
            return self._fast.limits_of(tenant)
        entry = self._entry(tenant)
        return [] if entry is None else [str(k) for k in entry]

    def get(self, tenant: str, limit: str) -> Any | None:
        """The raw YAML value of `limit` for `tenant` (a ruamel scalar, list or map), or None
        when the file does not set it. A key written as null also reads as None."""
        edited = self._edited(tenant)
        if edited is not None:
            return edited.get(tenant, limit)
        if self._fast is not None:
            return self._fast.get(tenant, limit)
        entry = self._entry(tenant)
        return None if entry is None else entry.get(limit)

    def line_of(self, tenant: str, limit: str) -> int | None:
        """1-based line of `limit`'s value for `tenant`; None if absent or added by an edit."""
        edited = self._edited(tenant)
        if edited is not None:
            return edited.line_of(tenant, limit)
        if self._fast is not None:
            return self._fast.line_of(tenant, limit)
        entry = self._entry(tenant)
        if entry is None or limit not in entry:
            return None
        position = key_position(entry, limit, value=True)
        return None if position is None else position[0] + 1

    def sets(self, tenant: str, limit: str) -> bool:
        """True when the tenant's entry has the key, even with a null value: in a list of
        runtime files a later file's key (null included) replaces an earlier file's value."""
        edited = self._edited(tenant)
        if edited is not None:
            return edited.sets(tenant, limit)
        if self._fast is not None:
            return self._fast.sets(tenant, limit)
        entry = self._entry(tenant)
        return entry is not None and limit in entry

    def number(self, tenant: str, spec: LimitSpec) -> float | None:
        """The limit in base units (seconds for durations, 1.0/0.0 for booleans), or None when
        the file does not set it. An explicit null also reads as None: Mimir copies the
        `limits:` defaults into the tenant before decoding it (`validation.Limits`
        unmarshalling), and yaml.v3 leaves a field untouched on null, so null keeps the
        default (it is not 0).

        Raises OverridesValueError when the value is of a type Mimir rejects: then Mimir is
        not running this file at all (it keeps its last good one)."""
        if not self.sets(tenant, spec.name):
            return None
        raw = self.get(tenant, spec.name)
        if raw is None:
            return None
        problem = value_problem(raw, spec.value_kind)
        if problem is not None:
            raise OverridesValueError(
                self.source_name, self.line_of(tenant, spec.name), tenant, spec.name, problem[0]
            )
        return number_of(raw, spec)

    # -- editing ------------------------------------------------------------------------------

    def set(self, tenant: str, limit: str, value: float, spec: LimitSpec) -> bool:
        """Set `tenant`'s `limit` to `value` (base units), written as `limit_yaml_value`.

        Creates the `overrides` map and the tenant entry when absent (appended after the
        existing ones). Returns False, leaving the text untouched, when the file already says
        the same thing (`50000.0` for 50000, `720h` for 30 days): no churn, no reload."""
        if limit != spec.name:
            raise ValueError(f"limit {limit!r} does not match its spec {spec.name!r}")
        problem = tenant_id_problem(tenant)
        if problem is not None:
            raise ValueError(f"cannot write tenant {tenant!r}: {problem}")
        new = limit_yaml_value(value, spec)
        editor = self._editor()
        if editor is not None:
            changed = editor.set(tenant, limit, value, spec)
            self._changed = self._changed or changed
            return changed
        self._full()
        entry = self._writable_entry(tenant)
        if entry is not None and limit in entry:
            written = replacement(entry[limit], new, spec)
            if written is None:
                return False
            replace_item(entry, limit, written)
        elif entry is not None:
            append_item(entry, limit, new, self._tenant_slot(tenant))
        else:
            self._add_tenant(tenant, CommentedMap([(limit, new)]))
        self._changed = True
        return True

    def remove(self, tenant: str, limit: str) -> bool:
        """Stop overriding `limit` for `tenant` (it then inherits the global default). A tenant
        entry left empty is dropped. Returns False when there was nothing to remove."""
        if not self.sets(tenant, limit):
            return False
        editor = self._editor()
        if editor is not None:
            changed = editor.remove(tenant, limit)
            self._changed = self._changed or changed
            return changed
        self._full()
        entry = self._entry(tenant)
        assert entry is not None
        if limit not in own_keys(entry):
            raise OverridesEditError(
                f"overrides.{tenant}.{limit} comes from a YAML merge key (<<: *anchor); "
                "removing it means editing the anchored entry: do it by hand"
            )
        entry = self._writable_entry(tenant)
        assert entry is not None
        leftover = remove_item(entry, limit)
        if len(entry) == 0:
            overrides = self._overrides()
            assert overrides is not None
            leftover = remove_item(overrides, self._tenant_keys.pop(tenant), leftover)
        if leftover is not None:
            attach_after_empty(self._root, OVERRIDES_KEY, leftover)
        self._changed = True
        return True

    def _tenant_slot(self, tenant: str) -> tuple[Any, Any]:
        return (self._overrides(), self._tenant_keys[tenant])

    def _writable_entry(self, tenant: str) -> CommentedMap | None:
        """The tenant's own mapping, safe to edit without touching another tenant; a null
        entry becomes an empty mapping; None when the tenant has no entry."""
        overrides = self._overrides()
        key = self._tenant_keys.get(tenant)
        if overrides is None or key is None:
            return None
        entry = overrides[key]
        if entry is None:
            entry = CommentedMap()
            replace_item(overrides, key, entry)
            return entry
        if not isinstance(entry, CommentedMap):
            raise OverridesEditError(f"overrides.{tenant} is not a mapping: fix the file first")
        if tenant in self._aliases:
            # An alias (`tenant-b: *a`): give this tenant its own copy, leave the anchor alone.
            entry = copy.deepcopy(entry)
            entry.anchor.value = None
            overrides[key] = entry
            self._aliases.discard(tenant)
        elif entry.anchor.value is not None:
            raise OverridesEditError(
                f"overrides.{tenant} is a YAML anchor (&{entry.anchor.value}) that other entries "
                "may reuse; editing it would change them too: give the tenant its own entry"
            )
        return entry

    def _add_tenant(self, tenant: str, entry: CommentedMap) -> None:
        # `yes:` / `off:` are strings to Mimir's decoder but booleans to YAML 1.1 tools that
        # may handle the file on its way (Helm, sigs.k8s.io/yaml): quote them.
        key: str = SingleQuotedScalarString(tenant) if tenant in _YAML11_BOOLS else tenant
        overrides = self._root.get(OVERRIDES_KEY)
        if OVERRIDES_KEY not in self._root:
            append_item(self._root, OVERRIDES_KEY, CommentedMap([(key, entry)]), None)
        elif overrides is None:
            replace_item(self._root, OVERRIDES_KEY, CommentedMap([(key, entry)]))
        elif isinstance(overrides, CommentedMap):
            append_item(overrides, key, entry, (self._root, OVERRIDES_KEY))
        else:
            raise OverridesEditError("`overrides` is not a mapping: fix the file first")
        self._tenant_keys[tenant] = key

    # -- writing ------------------------------------------------------------------------------

    def render(self) -> str:
        """The file's text: the input itself while nothing changed, else the edited document
        (stable: rendering a re-parsed rendering gives the same text)."""
        if not self._changed:
            return self._original
        if self._splice is not None:
            return self._splice.render()
        body = dump(self._yaml, self._root) if len(self._root) else ""
        return self._prefix + body + self._suffix


def parse_overrides(text: str, *, source_name: str = "<overrides>") -> OverridesDocument:
    """Parse a runtime overrides file for reading and editing.

    Raises OverridesParseError (with the 1-based line) for what makes the file unusable:
    invalid YAML, more than one document, a top level that is not a mapping, `overrides` or a
    tenant entry that is not a mapping, duplicate keys (message names both lines). A null
    `overrides:` or tenant entry is accepted as empty (Mimir treats it the same). Unknown keys
    and wrong value types are not parse errors: `validate_overrides` reports them."""
    fast = read_fast(text)
    if fast is None:
        return parse_full(text, source_name=source_name)
    return OverridesDocument(
        data=None,
        original=text,
        source_name=source_name,
        indent=Indent(),
        raw_tenant_keys={},
        fast=fast,
    )


def parse_full(text: str, source_name: str = "<overrides>") -> OverridesDocument:
    """`parse_overrides` by ruamel's full parse, whatever the file's shape."""
    result = scan(text)
    if result.problems:
        first = min(result.problems)
        raise OverridesParseError(source_name, first.line, _with_path(first))
    return OverridesDocument(
        data=result.data,
        original=text,
        source_name=source_name,
        indent=result.indent,
        raw_tenant_keys=result.raw_tenant_keys,
    )


def _with_path(problem: Problem) -> str:
    return f"{problem.key_path}: {problem.message}" if problem.key_path else problem.message
