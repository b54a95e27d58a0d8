"""Rendering the catalogue's PromQL templates safely.

Templates use `${name}` placeholders (see `LimitSpec.usage_query`). Only the placeholders
below exist; anything else is a bug in the catalogue and fails loudly. Label values are
escaped for PromQL double-quoted strings and label names are validated, so a selector
value can never change the shape of a query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from mimir_limit_optimizer.catalogue.units import format_duration
from mimir_limit_optimizer.sources.base import PermanentSourceError

# Prometheus' classic label-name syntax (model.LabelNameRE); UTF-8 names would need quoting.
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# `${name}`; a bare `$` (a regex anchor inside `=~"..."`) is left alone.
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
PLACEHOLDERS = ("sel", "rate", "rf")


class PromQLError(PermanentSourceError):
    """A selector or template cannot be rendered into valid PromQL (a configuration or
    catalogue mistake; the message says which)."""


def escape_label_value(value: str) -> str:
    """Escape `value` for the inside of a PromQL double-quoted string.

    PromQL strings use Go's escapes: backslash and the quote must be escaped and a raw
    newline ends the string with an error; other control characters are written as
    `\\xNN` so that the query stays on one line and means exactly `value`.
    """
    out: list[str] = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def check_label_name(name: str) -> str:
    """Return `name` if it is a valid Prometheus label name; raise PromQLError otherwise."""
    if not _LABEL_NAME.match(name):
        raise PromQLError(
            f"selector label name {name!r} is not a valid Prometheus label name: use letters, "
            "digits and underscores, not starting with a digit (e.g. cluster, k8s_namespace)"
        )
    return name


def render_matchers(selectors: Mapping[str, str]) -> str:
    """`{cluster: prod}` -> `cluster="prod"`; comma-joined in key order, empty for `{}`."""
    return ",".join(
        f'{check_label_name(name)}="{escape_label_value(value)}"'
        for name, value in selectors.items()
    )


def replication_factor_expr(matchers: str, default: int) -> str:
    """The replication factor as a scalar: Mimir's own gauge when it is scraped, else
    `default` (mixin-style deduplication of ingester-side series counts)."""
    if default < 1:
        raise PromQLError(f"replication factor must be >= 1, got {default}")
    return f"scalar(max(cortex_distributor_replication_factor{{{matchers}}}) or vector({default}))"


class TemplateRenderer:
    """Renders catalogue templates with fixed selectors, rate window and replication factor.

    Built once per source so that bad selectors fail at construction, not mid-cycle.
    """

    def __init__(
        self, selectors: Mapping[str, str], *, rate_interval: float, replication_factor: int
    ) -> None:
        if rate_interval <= 0:
            raise PromQLError(f"rate interval must be > 0 seconds, got {rate_interval}")
        self.matchers = render_matchers(selectors)
        self._values = {
            "sel": self.matchers,
            "rate": format_duration(rate_interval),
            "rf": replication_factor_expr(self.matchers, replication_factor),
        }

    def render(self, template: str, *, what: str = "query") -> str:
        """Substitute every `${name}`; an unknown or empty placeholder raises PromQLError
        naming `what` (e.g. "usage query of ingestion_rate")."""

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self._values:
                raise PromQLError(
                    f"{what}: unknown placeholder ${{{name}}}; "
                    f"templates may use {', '.join('${' + p + '}' for p in PLACEHOLDERS)}",
                    query=template,
                )
            return self._values[name]

        return _PLACEHOLDER.sub(substitute, template).strip()

    def selector(self, metric: str) -> str:
        """`metric{<matchers>}` with this renderer's selectors."""
        return f"{metric}{{{self.matchers}}}"
