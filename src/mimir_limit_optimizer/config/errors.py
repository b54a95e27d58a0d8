"""Configuration errors that name the place (file and line, variable or flag), the key, the
problem and the fix, and the bookkeeping that remembers where every value came from."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# A position inside the configuration tree: mapping keys (str) and sequence indices (int).
KeyPath = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_key_path(path: KeyPath) -> str:
    """`trendAnalysis.percentile`, `dynamicLimits.enabledLimits[3]`, `tenantTierMapping["a*"]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


@dataclass(frozen=True)
class Origin:
    """Where a value came from: a line of the file, an environment variable or a CLI flag."""

    # Shown when there is no file position: "environment variable MODE", "command line --mode".
    source: str
    file: str | None = None
    # 1-based.
    line: int | None = None
    # The key path as the user wrote it, when the loader moved the value (aliases, shorthands).
    written_as: KeyPath | None = None

    def where(self) -> str:
        if self.file is not None and self.line is not None:
            return f"{self.file}:{self.line}"
        return self.file or self.source


DEFAULTS = Origin(source="defaults")


@dataclass
class Origins:
    """Origin of each value that was set, by key path. A value without an entry of its own
    inherits the origin of its closest ancestor (a list item from the flag that set the list)."""

    by_path: dict[KeyPath, Origin] = field(default_factory=dict)

    def set(self, path: KeyPath, origin: Origin) -> None:
        """`path` was (re)set as a whole: forget the origins of what it replaced."""
        for known in [p for p in self.by_path if p[: len(path)] == path]:
            del self.by_path[known]
        self.by_path[path] = origin

    def find(self, path: KeyPath) -> tuple[Origin, KeyPath]:
        """The origin of `path` and the path as the user wrote it."""
        for size in range(len(path), 0, -1):
            origin = self.by_path.get(path[:size])
            if origin is not None:
                if origin.written_as is not None:
                    return origin, origin.written_as + path[size:]
                return origin, path
        return DEFAULTS, path

    def line_of(self, path: KeyPath) -> int | None:
        return self.by_path[path].line if path in self.by_path else None

    def move(self, old: KeyPath, new: KeyPath) -> None:
        """The loader moved a value from `old` to `new`; errors about it still point at `old`."""
        moved = {p: o for p, o in self.by_path.items() if p[: len(old)] == old}
        for path in moved:
            del self.by_path[path]
        for path, origin in moved.items():
            written = origin.written_as or path
            self.by_path[new + path[len(old) :]] = Origin(
                origin.source, origin.file, origin.line, written
            )


class ConfigError(Exception):
    """A configuration mistake, reported where it was made.

    `str()` reads `config.yaml:12: trendAnalysis.percntile: unknown key; did you mean
    'percentile'?`; further mistakes found in the same pass follow, one per line (`more`).
    """

    def __init__(
        self,
        problem: str,
        *,
        key: str = "",
        fix: str | None = None,
        file: str | None = None,
        line: int | None = None,
        source: str | None = None,
        related_lines: tuple[int, ...] = (),
        more: tuple[ConfigError, ...] = (),
    ) -> None:
        self.problem = problem
        self.key = key
        self.fix = fix
        self.file = file
        self.line = line
        # "environment variable MODE", "command line --mode": set when not from the file.
        self.source = source
        # Other lines involved (the first definition of a duplicate key, the other of two
        # conflicting settings).
        self.related_lines = related_lines
        self.more = more
        super().__init__(self._describe())

    @classmethod
    def at(
        cls,
        origin: Origin,
        key: KeyPath,
        problem: str,
        fix: str | None = None,
        related_lines: tuple[int, ...] = (),
    ) -> ConfigError:
        return cls(
            problem,
            key=format_key_path(key),
            fix=fix,
            file=origin.file,
            line=origin.line,
            source=None if origin.file else origin.source,
            related_lines=related_lines,
        )

    @property
    def where(self) -> str:
        if self.file is not None and self.line is not None:
            return f"{self.file}:{self.line}"
        return self.file or self.source or "configuration"

    def _describe(self) -> str:
        parts = [self.where]
        if self.key:
            parts.append(self.key)
        parts.append(f"{self.problem}; {self.fix}" if self.fix else self.problem)
        return ": ".join(parts)

    def __str__(self) -> str:
        return "\n".join([self._describe(), *(e._describe() for e in self.more)])

    def __repr__(self) -> str:
        return f"ConfigError({self._describe()!r})"


def combine(errors: Iterable[ConfigError]) -> ConfigError | None:
    """The first error in file order carrying the others in `more` (None when no errors)."""
    ordered = sorted(
        errors,
        key=lambda e: (e.file is None, e.line if e.line is not None else 1 << 30, e.key),
    )
    if not ordered:
        return None
    first, rest = ordered[0], tuple(ordered[1:])
    return ConfigError(
        first.problem,
        key=first.key,
        fix=first.fix,
        file=first.file,
        line=first.line,
        source=first.source,
        related_lines=first.related_lines,
        more=rest,
    )


@dataclass
class Findings:
    """Warnings and errors collected during one load (so that one run reports them all)."""

    origins: Origins
    errors: list[ConfigError] = field(default_factory=list)
    _warnings: list[tuple[tuple[bool, int, int], str]] = field(default_factory=list)

    @property
    def warnings(self) -> tuple[str, ...]:
        """In file order, then environment and command line in the order they were found."""
        return tuple(text for _, text in sorted(self._warnings, key=lambda w: w[0]))

    def warn(self, path: KeyPath, message: str) -> None:
        origin, written = self.origins.find(path)
        order = (origin.line is None, origin.line or 0, len(self._warnings))
        self._warnings.append((order, f"{origin.where()}: {format_key_path(written)}: {message}"))

    def error(
        self,
        path: KeyPath,
        problem: str,
        fix: str | None = None,
        related_lines: tuple[int, ...] = (),
    ) -> None:
        origin, written = self.origins.find(path)
        self.errors.append(ConfigError.at(origin, written, problem, fix, related_lines))
