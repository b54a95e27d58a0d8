"""The Configuration page's questions: the effective config with each value's origin, secrets
masked in the editor text, validation of edited YAML by the very loader the service uses."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.loader import (
    ENVIRONMENT_VARIABLES,
    ConfigError,
    load_config,
    redacted_dump,
)
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.config.secrets import REDACTED, looks_secret
from mimir_limit_optimizer.web.ui.model import ConfigEntry, Problem

EDITOR_NAME = "config.yaml"


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(data, Mapping) and data:
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    else:
        out[prefix] = data
    return out


def entries(
    config: Config, file_text: str | None, env: Mapping[str, str], cli: Mapping[str, Any]
) -> tuple[ConfigEntry, ...]:
    """Every leaf of the redacted effective config and where it came from (the later of
    file < environment < flag wins, as in the loader)."""
    from_file: set[str] = set()
    if file_text:
        try:
            raw = YAML(typ="safe", pure=True).load(file_text)
        except YAMLError:
            raw = None
        from_file = set(_flatten(raw)) if isinstance(raw, Mapping) else set()
    from_env = {
        dotted: variable
        for variable, dotted in ENVIRONMENT_VARIABLES.items()
        if (env.get(variable) or "").strip()
    }
    from_cli = {k for k, v in cli.items() if v is not None}
    out = []
    for key, value in _flatten(redacted_dump(config)).items():
        if any(key == k or key.startswith(k + ".") for k in from_cli):
            origin = "flag"
        elif key in from_env:
            origin = f"environment ({from_env[key]})"
        elif key in from_file or any(f.startswith(key + ".") for f in from_file):
            origin = "file"
        else:
            origin = "default"
        shown = "" if value is None else str(value)
        out.append(ConfigEntry(key, shown, origin))
    return tuple(out)


def _yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _walk_secrets(node: Any, other: Any, restore: bool) -> bool:
    """Mask (restore=False) or put back from `other` (restore=True) every string value under
    a secret-looking key; True when something changed."""
    changed = False
    if isinstance(node, CommentedMap):
        for key in list(node):
            value = node[key]
            peer = other.get(key) if isinstance(other, Mapping) else None
            if looks_secret(key) and isinstance(value, str):
                if not restore and value != REDACTED:
                    node[key] = REDACTED
                    changed = True
                elif restore and value == REDACTED and isinstance(peer, str):
                    node[key] = peer
                    changed = True
            else:
                changed |= _walk_secrets(value, peer, restore)
    elif isinstance(node, CommentedSeq):
        for k, item in enumerate(node):
            peer = other[k] if isinstance(other, list) and k < len(other) else None
            changed |= _walk_secrets(item, peer, restore)
    return changed


def mask_document(doc: Any) -> bool:
    """Replace every secret-looking string value of a round-trip document with ***; True
    when there was one."""
    return _walk_secrets(doc, None, restore=False)


def masked(text: str) -> str:
    """The file with every secret-looking value shown as ***; unparseable text is not shown
    at all (it might hold a secret the parser cannot locate)."""
    yaml = _yaml()
    try:
        doc = yaml.load(text)
    except YAMLError:
        return "# the configuration file is not valid YAML; fix it on disk\n"
    if not _walk_secrets(doc, None, restore=False):
        return text
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def unmask(edited: str, original: str) -> str:
    """`edited` with each *** under a secret key replaced by the value in `original`."""
    if REDACTED not in edited:
        return edited
    yaml = _yaml()
    try:
        doc, before = yaml.load(edited), yaml.load(original)
    except YAMLError:
        return edited
    if not _walk_secrets(doc, before, restore=True):
        return edited
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def validate(
    text: str, *, env: Mapping[str, str], cli: Mapping[str, Any], catalogue: Catalogue
) -> tuple[Problem, ...]:
    """Problems of `text` as the service's config file, by the service's loader."""
    with tempfile.TemporaryDirectory(prefix="mlo-ui-") as folder:
        path = Path(folder) / EDITOR_NAME
        path.write_text(text, encoding="utf-8")
        try:
            load_config(path, env=env, cli=cli, catalogue=catalogue)
        except ConfigError as exc:
            return tuple(_problem(e, str(path)) for e in (exc, *exc.more))
    return ()


def _problem(error: ConfigError, path: str) -> Problem:
    key = f"{error.key}: " if error.key else ""
    fix = f" ({error.fix})" if error.fix else ""
    where = "" if error.file else f" [{error.source}]" if error.source else ""
    message = f"{key}{error.problem}{fix}{where}".replace(path, EDITOR_NAME)
    return Problem(error.line if error.file else None, message)
