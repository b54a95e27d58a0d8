"""The effective configuration as shown to people (`mlo config show`, the startup log):
camelCase keys, durations as `5m`, every secret as `***`."""

from __future__ import annotations

import io
import json
from typing import Any, Literal

from pydantic import SecretStr
from ruamel.yaml import YAML
from ruamel.yaml.representer import RoundTripRepresenter

from mimir_limit_optimizer.config.models import UNUSED_SEED_SECTIONS, Config
from mimir_limit_optimizer.config.secrets import REDACTED, looks_secret, redact_url, url_has_secret

# Mappings whose keys are chosen by the user and whose values are plain strings (not
# SecretStr) although some may be secret, like an `Authorization` header.
_FREE_FORM: frozenset[tuple[str, ...]] = frozenset({("source", "prometheus", "headers")})


def redacted_dump(config: Config) -> dict[str, Any]:
    """Plain, JSON-compatible data of `config`; unused seed sections that are not set are
    left out."""
    typed = config.model_dump(mode="python", by_alias=True)
    shown = config.model_dump(mode="json", by_alias=True)
    for section in UNUSED_SEED_SECTIONS:
        if shown.get(section) is None:
            typed.pop(section, None)
            shown.pop(section, None)
    result: dict[str, Any] = _redact(typed, shown, ())
    return result


class _NullShown(RoundTripRepresenter):
    """Writes None as `null` (not an empty value). Its own class: `add_representer` changes
    the class it is called on for the whole process, and on ruamel's round-trip representer
    that would change how every later overrides file is written."""


_NullShown.add_representer(
    type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
)


def render_config(config: Config, fmt: Literal["yaml", "json"] = "yaml") -> str:
    data = redacted_dump(config)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt != "yaml":
        raise ValueError(f"unknown format {fmt!r}: use 'yaml' or 'json'")
    yaml = YAML(typ="rt", pure=True)
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.Representer = _NullShown
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _redact(typed: Any, shown: Any, path: tuple[str, ...]) -> Any:
    """Walk the python-mode dump (which still holds SecretStr) beside the JSON-mode dump
    (durations as strings, enums as values) and return the latter with secrets masked."""
    if isinstance(typed, SecretStr):
        return REDACTED
    if isinstance(typed, dict) and isinstance(shown, dict):
        free_form = path in _FREE_FORM
        return {
            key: REDACTED
            if free_form and looks_secret(key) and shown[key] is not None
            else _redact(typed.get(key), shown[key], (*path, str(key)))
            for key in shown
        }
    if isinstance(typed, list) and isinstance(shown, list):
        return [_redact(t, s, path) for t, s in zip(typed, shown, strict=True)]
    if isinstance(shown, str) and url_has_secret(shown):
        return redact_url(shown)
    return shown
