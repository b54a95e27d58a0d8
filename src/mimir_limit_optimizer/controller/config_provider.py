"""The effective config of a running service, reloaded when its file changes.

A changed file takes effect at the next cycle. An invalid one keeps the last good config and
is reported through the `on_failure` callback (log line, metric, audit event).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.loader import ConfigError, LoadedConfig, load_config
from mimir_limit_optimizer.config.models import Config


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
    ) -> None:
        self.path = Path(path) if path else None
        self._env, self._cli, self._catalogue = dict(env), dict(cli), catalogue
        self._flags = dict(cli_flags or {})
        self._on_reload, self._on_failure = on_reload, on_failure
        self._digest = self._file_digest()
        # The first load fails loudly (ConfigError): a bad config is rejected at start-up.
        self.loaded = self._load()
        self._failed_digest: str | None = None

    def _load(self) -> LoadedConfig:
        return load_config(
            self.path, env=self._env, cli=self._cli, catalogue=self._catalogue,
            cli_flags=self._flags,
        )  # fmt: skip

    @property
    def config(self) -> Config:
        return self.loaded.config

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
        if digest in (self._digest, self._failed_digest):
            return False
        try:
            loaded = self._load()
        except ConfigError as exc:
            self._failed_digest = digest  # report a broken file once, not every cycle
            if self._on_failure is not None:
                self._on_failure(exc)
            return False
        self._digest, self._failed_digest, self.loaded = digest, None, loaded
        if self._on_reload is not None:
            self._on_reload(loaded)
        return True
