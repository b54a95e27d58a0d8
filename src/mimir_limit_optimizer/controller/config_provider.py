"""The effective config of a running service, reloaded when its file changes.

A changed file takes effect at the next cycle, only after it passed everything start-up
checks and the reload rules below. Anything else keeps the last good config and is reported
through `on_failure` (log line, metric, audit event, alert); putting the good file back is
reported through `on_recovered` (metric back to 1, alert resolved).

Start-up refuses a given file that is empty or holds only comments, as reloads do.

Reload rules (docs/configuration.md, "Hot reload"):
- a file that is empty or holds only comments is refused (a truncated or half-written file,
  never "all defaults");
- a file missing keys that the running file set is refused (a truncated file would otherwise
  fall back to defaults: dry-run, the synthetic source, ...); to remove a key, restart;
- a change to a key in `RESTART_ONLY` is refused with a log line naming it: the parts built
  from them (source kind and URL, target, store, servers, leader election, verifier) live for
  the whole process;
- the new config must build: `check` builds the source and the target from it (a token file
  that cannot be read, a URL that cannot work), as start-up does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.loader import ConfigError, LoadedConfig, load_config
from mimir_limit_optimizer.config.models import Config

# Config attribute paths whose change needs a restart, with their names as written in files.
RESTART_ONLY: tuple[tuple[tuple[str, ...], str], ...] = (
    (("source", "kind"), "source.kind"),
    (("source", "prometheus", "url"), "source.prometheus.url"),
    (("source", "prometheus", "path_prefix"), "source.prometheus.pathPrefix"),
    (("source", "prometheus", "tenant"), "source.prometheus.tenant"),
    (("target",), "target"),
    (("store",), "store"),
    (("data_dir",), "dataDir"),
    (("server",), "server"),
    (("leader_election",), "leaderElection"),
    (("verify",), "verify"),
)
# Missing keys named in one message; the rest are counted.
_SHOWN_KEYS = 5


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """Names of the restart-only keys whose values differ between `old` and `new`."""
    changed: list[str] = []
    for path, name in RESTART_ONLY:
        before: Any = old
        after: Any = new
        for part in path:
            before, after = getattr(before, part), getattr(after, part)
        if before != after:
            changed.append(name)
    return changed


def missing_keys(old: LoadedConfig, new: LoadedConfig) -> list[str]:
    """Key paths the running file set that the new file lacks, dotted, in file order."""
    gone = old.file_keys - new.file_keys
    # Report the outermost missing key only (`source` rather than `source` and `source.kind`).
    top = sorted(p for p in gone if not any(p[:i] in gone for i in range(1, len(p))))
    return [".".join(p) for p in top]


class ConfigProvider:
    def __init__(
        self,
        path: str | Path | None,
        *,
        env: Mapping[str, str],
        cli: Mapping[str, Any],
        catalogue: Catalogue,
        cli_flags: Mapping[str, str] | None = None,
        on_reload: Callable[[LoadedConfig], None] | None = None,
        on_failure: Callable[[ConfigError], None] | None = None,
        on_recovered: Callable[[LoadedConfig], None] | None = None,
        check: Callable[[Config], None] | None = None,
    ) -> None:
        self.path = Path(path) if path else None
        self._env, self._cli, self._catalogue = dict(env), dict(cli), catalogue
        self._flags = dict(cli_flags or {})
        self._on_reload, self._on_failure = on_reload, on_failure
        self._on_recovered = on_recovered
        # Builds the parts a config needs (source, target); raises ConfigError when it cannot.
        self.check = check
        self._digest = self._file_digest()
        # The first load fails loudly (ConfigError): a bad config is rejected at start-up.
        self.loaded = self._load()
        if self.path is not None and not self.loaded.file_keys:
            # A service started on an emptied file would run on defaults (the synthetic
            # source, and with --mode prod write synthetic tenants to a real target).
            raise ConfigError(
                "the file is empty or holds only comments",
                file=str(self.path),
                fix="restore its content, or start without --config to run the embedded "
                "default (synthetic source)",
            )
        self._failed_digest: str | None = None

    def set_callbacks(
        self,
        *,
        on_reload: Callable[[LoadedConfig], None] | None = None,
        on_failure: Callable[[ConfigError], None] | None = None,
        on_recovered: Callable[[LoadedConfig], None] | None = None,
        check: Callable[[Config], None] | None = None,
    ) -> None:
        """Wire the service's reporting (it is built after the first load)."""
        self._on_reload, self._on_failure = on_reload, on_failure
        self._on_recovered, self.check = on_recovered, check

    def _load(self) -> LoadedConfig:
        return load_config(
            self.path, env=self._env, cli=self._cli, catalogue=self._catalogue,
            cli_flags=self._flags,
        )  # fmt: skip

    @property
    def config(self) -> Config:
        return self.loaded.config

    @property
    def failing(self) -> bool:
        """The file on disk was refused and the last good config still runs."""
        return self._failed_digest is not None

    def _file_digest(self) -> str | None:
        if self.path is None:
            return None
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return "unreadable"

    def reload_if_changed(self) -> bool:
        """Reload when the file's content changed; True when a new config took effect."""
        digest = self._file_digest()
        if digest == self._digest:
            if self._failed_digest is not None:  # the good file is back: the failure is over
                self._failed_digest = None
                if self._on_recovered is not None:
                    self._on_recovered(self.loaded)
            return False
        if digest == self._failed_digest:
            return False  # report a broken file once, not every cycle
        try:
            loaded = self._load()
            self._vet(loaded)
        except ConfigError as exc:
            self._failed_digest = digest
            if self._on_failure is not None:
                self._on_failure(exc)
            return False
        self._digest, self._failed_digest, self.loaded = digest, None, loaded
        if self._on_reload is not None:
            self._on_reload(loaded)
        return True

    def _vet(self, loaded: LoadedConfig) -> None:
        """The reload rules of the module docstring; ConfigError when one is broken."""
        file = str(self.path) if self.path else None
        keep = "the running config is kept"
        if self.path is not None and not loaded.file_keys:
            raise ConfigError(
                f"the file is empty or holds only comments: refused, {keep}",
                file=file,
                fix="restore its content; to run on defaults, restart the service",
            )
        gone = missing_keys(self.loaded, loaded)
        if gone:
            shown = ", ".join(gone[:_SHOWN_KEYS])
            more = f" and {len(gone) - _SHOWN_KEYS} more" if len(gone) > _SHOWN_KEYS else ""
            raise ConfigError(
                f"keys set in the running config are missing: {shown}{more} (a truncated "
                f"file?): refused, {keep}",
                file=file,
                fix="restore the keys (to drop a key, restart the service with the new file)",
            )
        changed = restart_only_changes(self.config, loaded.config)
        if changed:
            raise ConfigError(
                f"{', '.join(changed)} changed, which needs a restart: refused, {keep}",
                file=file,
                fix="restart the service to use the new values, or restore the old ones",
            )
        if self.check is not None:
            self.check(loaded.config)
