"""The Configuration page's limit table: every catalogue limit with what the config file sets
for it under `dynamicLimits.limitOverrides` and `limits.tenantTiers`, and the edits of that
table applied to the file with ruamel's round trip (comments, order and quoting kept), shown
as a diff, validated by the service's own loader, then saved or downloaded.

Form fields (one per cell; an empty cell removes the key from the file):
- `o:<limit>:<field>`: limitOverrides.<limit>.<field>, field one of OVERRIDE_FIELDS;
- `en:<limit>`: limitOverrides.<limit>.enabled ("", "true", "false");
- `t:<tier>:<limit>`: limits.tenantTiers.<tier>.limits.<limit> (the tier's cap);
- `tb:<tier>`: limits.tenantTiers.<tier>.bufferPercentage.
A cell whose value equals the file's (as numbers, or durations in seconds) is not an edit, so
untouched cells never reformat the file.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from mimir_limit_optimizer.catalogue import Catalogue, LimitSpec
from mimir_limit_optimizer.catalogue.model import LimitType
from mimir_limit_optimizer.catalogue.units import DurationError, parse_duration
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller import ui_config
from mimir_limit_optimizer.controller.ui_diff import side_by_side
from mimir_limit_optimizer.controller.ui_limit_cells import CellError, limit_value, percent
from mimir_limit_optimizer.engine.results import render_value
from mimir_limit_optimizer.web.ui.model import (
    DiffLine,
    LimitCell,
    LimitEditPreview,
    LimitTable,
    LimitTableRow,
    Problem,
    UiError,
)

VALUE_FIELDS = ("defaultValue", "minValue", "maxValue")  # limit values, in the limit's unit
OVERRIDE_FIELDS = (*VALUE_FIELDS, "bufferFactor")  # bufferFactor: percent
OVERRIDES_PATH = ("dynamicLimits", "limitOverrides")
TIERS_PATH = ("limits", "tenantTiers")


def fingerprint(text: str) -> str:
    """Which version of the file a form was made from (a save of an older one is refused)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Edited:
    text: str  # the file after the edits (the input itself when nothing changed)
    changes: list[str] = field(default_factory=list)  # "path: old -> new", file order of edits
    errors: dict[str, str] = field(default_factory=dict)  # form field -> what is wrong


def _yaml(text: str) -> tuple[YAML, Any]:
    """A round-trip YAML with the file's own indentation, and the file's document."""
    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = 4096
    if not text.strip():
        return yaml, CommentedMap()
    try:
        doc, indent, block_seq = load_yaml_guess_indent(text)
    except YAMLError as exc:
        raise UiError(
            f"the configuration file is not valid YAML ({str(exc).splitlines()[0]}): fix it in "
            "the editor above first",
            status=409,
        ) from exc
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise UiError(
            "the configuration file is not a mapping of settings: fix it first", status=409
        )
    if indent:
        yaml.indent(mapping=indent, sequence=indent, offset=block_seq or 0)
    return yaml, doc


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    node = doc
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _limit_key(mapping: Any, name: str, catalogue: Catalogue) -> str:
    """The key the file uses for limit `name` (its deprecated alias, if that is what it has)."""
    if isinstance(mapping, Mapping) and name not in mapping:
        for alias, real in catalogue.aliases.items():
            if real == name and alias in mapping:
                return alias
    return name


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = float(value)
        return str(int(number)) if number.is_integer() and abs(number) < 1e18 else repr(number)
    return str(value)


def _seconds_or_number(value: Any, spec: LimitSpec | None) -> Any:
    """A comparable form of a file value (durations in seconds; numbers as floats)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and spec is not None and spec.type is LimitType.DURATION:
        try:
            return parse_duration(value)
        except DurationError:
            return value
    return value


def table(
    text: str, config: Config, catalogue: Catalogue, *, path: str | None, writable: bool
) -> LimitTable:
    _, doc = _yaml(text)
    overrides = _get(doc, OVERRIDES_PATH)
    tiers_node = _get(doc, TIERS_PATH)
    tiers = tuple(str(t) for t in tiers_node) if isinstance(tiers_node, Mapping) else ()
    enabled = set(config.dynamic_limits.enabled_limits)
    buffer = config.buffer_percentage
    rows = []
    for spec in sorted(catalogue.limits.values(), key=lambda s: (s.name not in enabled, s.name)):
        entry = _get(overrides, (_limit_key(overrides, spec.name, catalogue),))
        cells = [
            LimitCell(f"o:{spec.name}:{name}", name, _shown(_get(entry, (name,))), hint)
            for name, hint in zip(OVERRIDE_FIELDS, _hints(spec, buffer), strict=True)
        ]
        for tier in tiers:
            caps = _get(tiers_node, (tier, "limits"))
            value = _get(caps, (_limit_key(caps, spec.name, catalogue),))
            cells.append(LimitCell(f"t:{tier}:{spec.name}", f"tier {tier}", _shown(value), ""))
        on = _get(entry, ("enabled",))
        rows.append(
            LimitTableRow(
                limit=spec.name,
                unit=spec.unit,
                signal=spec.signal.value,
                mimir_default=render_value(spec.default, spec),
                managed=spec.name in enabled,
                cells=tuple(cells),
                enabled="" if on is None else _shown(on),
            )
        )
    tier_buffers = tuple(
        LimitCell(
            f"tb:{t}", f"tier {t} buffer", _shown(_get(tiers_node, (t, "bufferPercentage"))), ""
        )
        for t in tiers
    )
    return LimitTable(
        path=path,
        base=fingerprint(text),
        writable=writable,
        tiers=tiers,
        tier_buffers=tier_buffers,
        rows=tuple(rows),
    )


def _hints(spec: LimitSpec, buffer: float | None) -> tuple[str, ...]:
    """Placeholders: what applies when the cell is empty."""
    top = (
        "none"
        if not math.isfinite(spec.max_value)
        else render_value(spec.max_value, spec, unit=False)
    )
    applied = spec.buffer_percent if buffer is None else buffer
    return (
        render_value(spec.default, spec, unit=False),
        render_value(spec.min_value, spec, unit=False),
        top,
        f"{applied:g}%",
    )


# -- applying edits --------------------------------------------------------------------------


def apply_edits(text: str, edits: Mapping[str, str], catalogue: Catalogue) -> Edited:
    """The file with the table's edits; errors per form field (then the text is unchanged)."""
    yaml, doc = _yaml(text)
    tiers_node = _get(doc, TIERS_PATH)
    result = Edited(text)
    wanted: list[tuple[tuple[str, ...], Any, LimitSpec | None]] = []
    for name, raw in edits.items():
        try:
            target = _target(name, raw, doc, tiers_node, catalogue)
        except CellError as exc:
            result.errors[name] = str(exc)
            continue
        if target is not None:
            wanted.append(target)
    if result.errors:
        return result
    for path, value, spec in wanted:
        old = _get(doc, path)
        if value is None and old is None:
            continue
        if value is not None and _seconds_or_number(old, spec) == _seconds_or_number(value, spec):
            continue
        if value is None:
            _remove(doc, path)
        else:
            _put(doc, path, value)
        before = "unset" if old is None else _shown(old)
        after = "unset" if value is None else _shown(value)
        result.changes.append(f"{'.'.join(path)}: {before} -> {after}")
    if result.changes:
        out = io.StringIO()
        yaml.dump(doc, out)
        result.text = out.getvalue()
    return result


def _target(
    name: str, raw: str, doc: Any, tiers_node: Any, catalogue: Catalogue
) -> tuple[tuple[str, ...], Any, LimitSpec | None] | None:
    """(key path, new value or None to remove, the limit) of one form field."""
    kind, _, rest = name.partition(":")
    raw = raw.strip()
    if kind == "o":
        limit, _, key = rest.rpartition(":")
        spec = _spec(limit, catalogue)
        if key not in OVERRIDE_FIELDS:
            raise CellError(f"{key!r} is not a field of limitOverrides")
        overrides = _get(doc, OVERRIDES_PATH)
        path = (*OVERRIDES_PATH, _limit_key(overrides, limit, catalogue), key)
        if not raw:
            return path, None, spec
        if key == "bufferFactor":
            return path, percent(raw), None
        return path, limit_value(raw, spec), spec
    if kind == "en":
        spec = _spec(rest, catalogue)
        overrides = _get(doc, OVERRIDES_PATH)
        path = (*OVERRIDES_PATH, _limit_key(overrides, rest, catalogue), "enabled")
        if raw not in ("", "true", "false"):
            raise CellError("enabled must be true, false or empty")
        return path, None if not raw else raw == "true", None
    if kind in ("t", "tb"):
        tier, _, limit = rest.rpartition(":") if kind == "t" else (rest, "", "")
        if not isinstance(tiers_node, Mapping) or tier not in tiers_node:
            raise CellError(f"there is no tier {tier!r} in the file: add it in the editor")
        if kind == "tb":
            return (*TIERS_PATH, tier, "bufferPercentage"), percent(raw) if raw else None, None
        spec = _spec(limit, catalogue)
        caps = _get(tiers_node, (tier, "limits"))
        cap = (*TIERS_PATH, tier, "limits", _limit_key(caps, limit, catalogue))
        return cap, limit_value(raw, spec) if raw else None, spec
    return None  # not a table field (csrf_token, base)


def _spec(limit: str, catalogue: Catalogue) -> LimitSpec:
    spec = catalogue.limits.get(limit)
    if spec is None:
        raise CellError(f"{limit!r} is not a limit of the catalogue")
    return spec


def _put(doc: CommentedMap, path: tuple[str, ...], value: Any) -> None:
    node = doc
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, CommentedMap):
            if child is not None:
                raise UiError(
                    f"{part} in the file is not a mapping: fix it in the editor", status=409
                )
            child = CommentedMap()
            node[part] = child
        node = child
    node[path[-1]] = value


def _remove(doc: CommentedMap, path: tuple[str, ...]) -> None:
    """Remove the key, then each mapping left empty under limitOverrides (a tier stays)."""
    chain: list[CommentedMap] = [doc]
    for part in path[:-1]:
        child = chain[-1].get(part)
        if not isinstance(child, CommentedMap):
            return
        chain.append(child)
    del chain[-1][path[-1]]
    keep = 3 if path[: len(TIERS_PATH)] == TIERS_PATH else 1  # doc, limits, tenantTiers, tier
    for depth in range(len(chain) - 1, keep, -1):
        if len(chain[depth]) == 0:
            del chain[depth - 1][path[depth - 1]]
        else:
            break


# -- the page's two questions: what would change, and saving it ------------------------------


def _masked(text: str) -> str:
    """`text` with secrets as ***, dumped like the edits are (same indentation), so that both
    sides of the diff and the loader's line numbers line up."""
    if not text.strip():
        return text
    yaml, doc = _yaml(text)
    if not ui_config.mask_document(doc):
        return text
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def read_text(path: str | None) -> str:
    """The config file's text; "" without a file (the table then starts a new one)."""
    if path is None:
        return ""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UiError(f"cannot read {path}: {exc}", status=409) from exc


def preview(
    text: str,
    edits: Mapping[str, str],
    base: str,
    *,
    env: Mapping[str, str],
    cli: Mapping[str, Any],
    catalogue: Catalogue,
) -> tuple[Edited, LimitEditPreview]:
    """The edits applied to `text` (refused when the file is not the one the form was made
    from), the loader's verdict on the result and the side-by-side diff, secrets masked."""
    if base != fingerprint(text):
        raise UiError(
            "the configuration file changed since this page was loaded: reload the page and "
            "make the edits again (nothing was applied)",
            status=409,
        )
    edited = apply_edits(text, edits, catalogue)
    problems: tuple[Problem, ...] = ()
    lines: tuple[DiffLine, ...] = ()
    shown = _masked(text)
    if edited.changes:
        problems = ui_config.validate(edited.text, env=env, cli=cli, catalogue=catalogue)
        before, shown = shown, _masked(edited.text)
        lines, _hidden = side_by_side(before, shown)
    result = LimitEditPreview(
        changes=tuple(edited.changes),
        errors=dict(edited.errors),
        problems=problems,
        lines=lines,
        text=shown,
    )
    return edited, result
