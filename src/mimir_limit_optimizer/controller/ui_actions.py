"""What the web UI may change, each audited with the logged-in user (category "user",
component "ui"): the protection switch, a runtime freeze, a cycle now, a rollback (verified
like any apply), saving the config file (atomically; the service hot-reloads it)."""

from __future__ import annotations

import math
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mimir_limit_optimizer.controller import ui_config, ui_limit_table
from mimir_limit_optimizer.controller.ui_diff import impact
from mimir_limit_optimizer.controller.ui_parts import SharedParts
from mimir_limit_optimizer.store import AuditEvent, AuditLog, StoreError
from mimir_limit_optimizer.targets.base import TargetError
from mimir_limit_optimizer.web.ui.model import ActionResult, UiError

FREEZE_KEY = "ui_freeze"


@dataclass
class ActionParts(SharedParts):
    """What the UI's actions use, besides what the read model shares."""

    audit: AuditLog
    protection_enable: Callable[..., dict[str, Any]]
    protection_disable: Callable[..., dict[str, Any]]
    request_cycle: Callable[[], None]


class ServiceActions:
    def __init__(self, parts: ActionParts) -> None:
        self.p = parts
        self._freeze: str | None = None
        self._lock = threading.Lock()
        try:
            raw = parts.store.load_checkpoint(FREEZE_KEY)
        except StoreError:
            raw = None
        if raw:
            self._freeze = raw.decode("utf-8", "replace") or None

    def frozen_by(self) -> str | None:
        return self._freeze

    def _audit(self, action: str, actor: str, level: str = "warning", **details: object) -> None:
        self.p.audit.record(
            AuditEvent(
                self.p.clock(),
                level,
                "user",
                "ui",
                action,
                None,
                {"user": actor, **details},
            )
        )

    def set_breaker(self, enabled: bool, *, actor: str) -> ActionResult:
        call = self.p.protection_enable if enabled else self.p.protection_disable
        result = call(actor=f"ui ({actor})")
        self._audit(
            "protection_enabled" if enabled else "protection_disabled", actor,
            acting=bool(result.get("acting")),
        )  # fmt: skip
        word = "on" if enabled else "off"
        return ActionResult(True, f"protective writes switched {word} by {actor}")

    def set_freeze(self, frozen: bool, *, actor: str) -> ActionResult:
        with self._lock:
            self._freeze = actor if frozen else None
            self.p.store.save_checkpoint(
                FREEZE_KEY, (actor if frozen else "").encode(), at=self.p.clock()
            )
        self._audit("freeze" if frozen else "unfreeze", actor)
        if frozen:
            return ActionResult(True, f"applying frozen by {actor}: plans are still computed")
        return ActionResult(True, f"applying unfrozen by {actor}")

    def run_cycle(self, *, actor: str) -> ActionResult:
        self.p.request_cycle()
        self._audit("cycle_requested", actor, level="info")
        return ActionResult(True, "a cycle starts within a second")

    def rollback(self, revision: int, *, actor: str) -> ActionResult:
        applier = self.p.applier
        chosen = self.p.store.revision(revision)
        if chosen is None or chosen.target != applier.name:
            raise UiError(f"no revision {revision} of {applier.name}", status=404)
        now = self.p.clock()
        try:
            before = applier.target.read().text
            event = AuditEvent(
                now, "warning", "user", "ui", "rollback", None,
                {"user": actor, "target": applier.name},
            )  # fmt: skip
            restored = applier.restore(chosen, now=now, actor=f"ui ({actor})", events=[event])
        except TargetError as exc:
            self._audit(
                "rollback_failed", actor, level="error", to_revision=revision, error=str(exc)
            )
            raise UiError(f"rollback failed, {applier.name} unchanged: {exc}", status=409) from exc
        detail = "written and read back"
        verified = True
        if applier.verifier is not None:
            expected: dict[str, dict[str, float]] = {}
            for change in impact(before, chosen.content, self.p.catalogue):
                value = change.after
                if value is not None and math.isfinite(value):
                    expected.setdefault(change.tenant, {})[change.limit] = value
            result = applier.verifier.verify(expected, self.p.catalogue)
            verified, detail = result.ok, result.detail
        if applier.verifier is not None:  # the rollback itself is recorded with its revision
            self._audit(
                "rollback_verified" if verified else "rollback_unverified", actor,
                level="info" if verified else "error", target=applier.name,
                to_revision=chosen.id, detail=detail,
            )  # fmt: skip
        if restored is None:
            return ActionResult(
                verified,
                f"restored revision {chosen.id}; the store could not record it yet (it is "
                "recorded once the store is back)",
            )
        if not verified:
            return ActionResult(
                False, f"restored revision {chosen.id}, but Mimir did not confirm it: {detail}"
            )
        return ActionResult(True, f"restored revision {chosen.id} of {applier.name} ({detail})")

    def _writable_path(self) -> str:
        path = self.p.config_path()
        if path is None or not self.p.config().ui.config_writable:
            raise UiError(
                "saving is off (ui.configWritable is false, or the service runs without a "
                "config file): download the YAML and deploy it your usual way",
                status=403,
            )
        return path

    def save_config(self, text: str, *, actor: str) -> ActionResult:
        path = self._writable_path()
        original = ui_limit_table.read_text(path)
        full = ui_config.unmask(text, original)
        problems = ui_config.validate(
            full, env=self.p.env, cli=self.p.cli, catalogue=self.p.catalogue
        )
        if problems:
            first = problems[0]
            where = f"line {first.line}: " if first.line else ""
            raise UiError(f"not saved: {where}{first.message}", status=422)
        _write_atomically(Path(path), full)
        self._audit("config_saved", actor, path=path)
        return ActionResult(True, f"saved {path}; the service reloads it before the next cycle")

    def save_limit_edits(self, edits: dict[str, str], base: str, *, actor: str) -> ActionResult:
        path = self._writable_path()
        with self._lock:  # two saves at once: the second sees the first's file and is refused
            text = ui_limit_table.read_text(path)
            edited, preview = ui_limit_table.preview(
                text, edits, base, env=self.p.env, cli=self.p.cli, catalogue=self.p.catalogue
            )
            if preview.errors:
                raise UiError(f"not saved: {len(preview.errors)} cell(s) are not valid", status=422)
            if preview.problems:
                first = preview.problems[0]
                raise UiError(f"not saved: {first.message}", status=422)
            if not edited.changes:
                return ActionResult(True, "nothing to save: the table equals the file")
            _write_atomically(Path(path), edited.text)
        self._audit("config_saved", actor, path=path, via="limit table", changes=edited.changes)
        return ActionResult(
            True,
            f"saved {len(edited.changes)} change(s) to {path}; the service reloads it before "
            "the next cycle",
        )


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
