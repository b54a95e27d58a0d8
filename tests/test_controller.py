"""The reconcile cycle with real parts (synthetic source, file target, SQLite store, fake
Mimir): dry-run audits and writes nothing; prod writes a file Mimir accepts, records a revision,
changes nothing on a second run and can be rolled back byte for byte; a failed or partial
collection, a failed write or a failed reload never leaves a broken target; safety caps and
config hot reload behave as documented."""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.controller.config_provider import ConfigProvider
from mimir_limit_optimizer.controller.oneshot import build_source
from mimir_limit_optimizer.controller.reconcile import Reconciler
from mimir_limit_optimizer.engine.overrides import parse_overrides, validate_overrides
from mimir_limit_optimizer.observability.health import HealthState
from mimir_limit_optimizer.observability.metrics import ControllerMetrics
from mimir_limit_optimizer.sources.base import SourceError
from mimir_limit_optimizer.store import AuditLog, Store
from mimir_limit_optimizer.targets.file import FileSystem, FileTarget
from mimir_limit_optimizer.targets.verify import MimirVerifier
from tests.fake_mimir import FakeMimir

CATALOGUE = load_catalogue()
NOW = float(int(time.time() // 300 * 300))
LOG = logging.getLogger("test-controller")
HAND_WRITTEN = "# hand-written\noverrides:\n  tenant-001:\n    max_queriers_per_tenant: 4\n"


def config(**sections: Any) -> Config:
    base: dict[str, Any] = {"synthetic": {"tenantCount": 12}}
    base.update(sections)
    return Config.model_validate(base)


class Rig:
    """A reconciler wired like the service, with its parts exposed to the test."""

    def __init__(self, tmp: Path, *, fs: FileSystem | None = None, verifier=None, source=None):
        self.path = tmp / "overrides.yaml"
        self.store = Store.open(f"sqlite:///{tmp / 'mlo.db'}")
        self.registry = CollectorRegistry()
        self.metrics = ControllerMetrics(self.registry)
        self.health = HealthState(stall_after=60)
        self.target = FileTarget(self.path, fs=fs) if fs else FileTarget(self.path)
        self.applier = Applier(
            self.target, self.store, CATALOGUE, verifier=verifier, rollback_on_failure=True,
            sleep=lambda _s: None, logger=LOG,
        )  # fmt: skip
        factory = source or (lambda cfg, now: build_source(cfg, now=now, env={}))
        self.reconciler = Reconciler(
            catalogue=CATALOGUE, source_factory=factory, applier=self.applier, store=self.store,
            audit=AuditLog(self.store, logger=LOG), metrics=self.metrics, health=self.health,
            logger=LOG,
        )  # fmt: skip

    def text(self) -> str:
        return self.path.read_text() if self.path.exists() else ""

    def actions(self) -> list[str]:
        return [e.action for e in self.store.audit(limit=10_000)]


def test_dry_run_audits_would_update_and_writes_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.path.write_text(HAND_WRITTEN)
    result = rig.reconciler.run_once(config(), now=NOW)
    assert result.ok and result.planned > 0 and result.applied == 0
    assert rig.text() == HAND_WRITTEN
    assert "would_update_limits" in rig.actions()
    event = next(e for e in rig.store.audit() if e.action == "would_update_limits")
    assert {"limit", "old", "new", "reasons"} <= set(event.details)
    assert event.details["mode"] == "dry-run"
    assert rig.store.revisions(rig.applier.name) == []
    assert (
        rig.registry.get_sample_value(
            "mimir_limit_optimizer_reconcile_total", {"result": "success"}
        )
        == 1.0
    )


def test_prod_writes_a_valid_file_once_and_rolls_back_byte_for_byte(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.path.write_text(HAND_WRITTEN)
    first = rig.reconciler.run_once(config(mode="prod"), now=NOW)
    assert first.ok and first.applied > 0
    written = rig.text()
    assert validate_overrides(written, CATALOGUE, source_name="f") == []
    assert written.startswith("# hand-written\n")  # comments and unmanaged keys kept
    assert parse_overrides(written).get("tenant-001", "max_queriers_per_tenant") == 4
    kinds = [r.kind for r in rig.store.revisions(rig.applier.name)]
    assert kinds == ["apply", "baseline"]
    assert rig.registry.get_sample_value("mimir_limit_optimizer_limits_applied_total") == float(
        first.applied
    )
    second = rig.reconciler.run_once(config(mode="prod"), now=NOW + 60)
    assert second.ok and second.applied == 0
    assert rig.text() == written  # byte-identical
    baseline = rig.store.revisions(rig.applier.name)[-1]
    rig.applier.restore(baseline, now=NOW + 120, actor="test")
    assert rig.text() == HAND_WRITTEN


def test_a_failed_collection_applies_nothing(tmp_path: Path) -> None:
    class Down:
        def collect(self, *_a: Any, **_k: Any) -> Any:
            raise SourceError("connection refused", url="http://prom:9090")

        def describe(self) -> str:
            return "down"

    rig = Rig(tmp_path, source=lambda cfg, now: Down())
    rig.path.write_text(HAND_WRITTEN)
    result = rig.reconciler.run_once(config(mode="prod"), now=NOW)
    assert not result.ok and "collection failed" in result.detail
    assert rig.text() == HAND_WRITTEN
    assert "collection_failed" in rig.actions()
    assert rig.health.readyz(NOW)[0] is False


def test_a_partial_collection_applies_nothing(tmp_path: Path) -> None:
    def partial(cfg: Config, now: float) -> Any:
        source = build_source(cfg, now=now, env={})

        class Partial:
            def collect(self, *a: Any, **k: Any) -> Any:
                import dataclasses

                obs = source.collect(*a, **k)
                return dataclasses.replace(obs, unavailable={"request_rate": "HTTP 503"})

            def describe(self) -> str:
                return "partial"

        return Partial()

    rig = Rig(tmp_path, source=partial)
    rig.path.write_text(HAND_WRITTEN)
    result = rig.reconciler.run_once(config(mode="prod"), now=NOW)
    assert result.applied == 0 and "partial collection" in result.detail
    assert rig.text() == HAND_WRITTEN


class DiskFull(FileSystem):
    def write(self, fd: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_write_keeps_the_previous_content_and_is_retried(tmp_path: Path) -> None:
    rig = Rig(tmp_path, fs=DiskFull())
    rig.path.write_text(HAND_WRITTEN)
    result = rig.reconciler.run_once(config(mode="prod"), now=NOW)
    assert not result.ok and "previous content intact" in result.detail
    assert rig.text() == HAND_WRITTEN
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    assert "update_limits_failed" in rig.actions()
    healthy = Rig(tmp_path)  # next cycle, disk space back: it applies
    assert healthy.reconciler.run_once(config(mode="prod"), now=NOW + 300).applied > 0


def test_verified_write_and_rollback_when_mimir_does_not_load_it(tmp_path: Path) -> None:
    other = tmp_path / "not-the-target.yaml"
    other.write_text("overrides: {}\n")
    # Mimir reads another file, so the new values never show up: verification fails.
    with FakeMimir([other], CATALOGUE, period=0.05) as mimir:
        settings = config(verify={"mimirUrl": mimir.url, "timeout": "1s", "pollInterval": "100ms"})
        rig = Rig(tmp_path, verifier=MimirVerifier(settings.verify))
        rig.path.write_text(HAND_WRITTEN)
        result = rig.reconciler.run_once(config(mode="prod"), now=NOW)
    assert not result.ok and "rolled back" in result.detail
    assert rig.text() == HAND_WRITTEN
    assert rig.store.revisions(rig.applier.name)[0].kind == "rollback"
    assert "rollback" in rig.actions()


def test_verified_write_succeeds_when_mimir_loads_it(tmp_path: Path) -> None:
    rig_path = tmp_path / "overrides.yaml"
    rig_path.write_text(HAND_WRITTEN)
    with FakeMimir([rig_path], CATALOGUE, period=0.05) as mimir:
        settings = config(verify={"mimirUrl": mimir.url, "timeout": "5s", "pollInterval": "100ms"})
        rig = Rig(tmp_path, verifier=MimirVerifier(settings.verify))
        result = rig.reconciler.run_once(config(mode="prod"), now=NOW)
    assert result.ok and result.applied > 0 and "Mimir loaded it" in result.detail


def test_freeze_pins_and_tenant_cap(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.path.write_text(HAND_WRITTEN)
    frozen = rig.reconciler.run_once(config(mode="prod", safety={"freeze": True}), now=NOW)
    assert frozen.applied == 0 and rig.text() == HAND_WRITTEN
    capped = config(mode="prod", safety={"maxTenantsPerCycle": 2, "pinnedTenants": ["tenant-*"]})
    result = rig.reconciler.run_once(capped, now=NOW + 1)
    document = parse_overrides(rig.text())
    changed = [t for t in document.tenants() if t != "tenant-001"]
    assert 0 < len(changed) <= 2
    assert not any(t.startswith("tenant-") for t in changed)  # pinned: never touched
    assert document.limits_of("tenant-001") == ["max_queriers_per_tenant"]
    assert result.held_back > 0


def test_config_hot_reload_keeps_the_last_good_config(tmp_path: Path) -> None:
    file = tmp_path / "mlo.yaml"
    file.write_text("mode: dry-run\n")
    failures: list[str] = []
    provider = ConfigProvider(
        file, env={}, cli={}, catalogue=CATALOGUE, on_failure=lambda e: failures.append(str(e))
    )
    file.write_text("mode: prod\n")
    assert provider.reload_if_changed() and provider.config.mode.value == "prod"
    file.write_text("mode: prod\ntrendAnalysis:\n  percentil: 95\n")
    assert not provider.reload_if_changed()
    assert provider.config.mode.value == "prod"
    assert len(failures) == 1 and f"{file}:3" in failures[0]
    assert not provider.reload_if_changed()  # a broken file is reported once
    assert len(failures) == 1


def test_each_cycle_leaves_a_checkpoint_a_restart_can_read(tmp_path: Path) -> None:
    from mimir_limit_optimizer.controller.reconcile import last_checkpoint

    rig = Rig(tmp_path)
    assert last_checkpoint(rig.store) is None
    rig.reconciler.run_once(config(), now=NOW)
    reopened = Store.open(f"sqlite:///{tmp_path / 'mlo.db'}")  # as after a restart
    checkpoint = last_checkpoint(reopened)
    assert checkpoint is not None and checkpoint["at"] == NOW
    current, recommended, status = checkpoint["limits"]["ingestion_rate"]["throttled-001"]
    assert status == "change" and recommended > current
    assert (
        rig.registry.get_sample_value(
            "mimir_limit_optimizer_source_queries_total",
            {"source": "synthetic", "result": "success"},
        )
        == 1.0
    )


def test_a_replica_that_lost_the_lease_writes_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.applier.is_leader = lambda: False  # lost between planning and writing
    rig.path.write_text(HAND_WRITTEN)
    result = rig.reconciler.run_once(config(mode="prod"), now=NOW)
    assert not result.ok and "not the leader" in result.detail
    assert rig.text() == HAND_WRITTEN


def test_a_failed_rollback_is_reported_not_hidden(tmp_path: Path) -> None:
    from mimir_limit_optimizer.targets.base import TargetError

    other = tmp_path / "not-the-target.yaml"
    other.write_text("overrides: {}\n")

    class RollbackFails(FileTarget):
        writes = 0

        def write(self, text: str, *, expected_version: str | None) -> str:
            RollbackFails.writes += 1
            if RollbackFails.writes > 1:  # the rollback write
                raise TargetError("cannot write: disk full")
            return super().write(text, expected_version=expected_version)

    with FakeMimir([other], CATALOGUE, period=0.05) as mimir:
        settings = config(verify={"mimirUrl": mimir.url, "timeout": "1s", "pollInterval": "100ms"})
        rig = Rig(tmp_path, verifier=MimirVerifier(settings.verify))
        rig.applier.target = RollbackFails(rig.path)
        rig.path.write_text(HAND_WRITTEN)
        result = rig.reconciler.run_once(config(mode="prod"), now=NOW)
    assert not result.ok
    assert "rollback failed" in result.detail and "new content is live" in result.detail
    assert rig.text() != HAND_WRITTEN  # said as it is: the new content stayed
    assert "update_unverified" in rig.actions()


def test_a_rollback_holds_changes_for_the_cooldown(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.path.write_text(HAND_WRITTEN)
    assert rig.reconciler.run_once(config(mode="prod"), now=NOW).applied > 0
    baseline = rig.store.revisions(rig.applier.name)[-1]
    rig.applier.restore(baseline, now=NOW + 60, actor="operator")
    later = rig.reconciler.run_once(config(mode="prod"), now=NOW + 120)
    assert later.applied == 0 and rig.text() == HAND_WRITTEN  # not re-applied at once
    held = rig.store.audit(action="change_held_back", since=NOW + 120)
    (summary,) = held  # one summarised event per cycle; the stored plan has every item
    assert "rollback" in summary.details["examples"][0]["reason"]
    assert summary.details["count"] == later.held_back
    after = rig.reconciler.run_once(config(mode="prod"), now=NOW + 60 + 1801)
    assert after.applied > 0  # after the cooldown the optimizer acts again


def test_a_file_it_cannot_edit_is_reported_and_left_alone(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    # tenant-002 is an alias of tenant-001's entry: editing one would silently edit both.
    anchored = "overrides:\n  tenant-001: &std\n    ingestion_rate: 1000\n  tenant-002: *std\n"
    rig.path.write_text(anchored)
    result = rig.reconciler.run_once(config(mode="prod"), now=NOW)
    assert not result.ok and "cannot edit" in result.detail
    assert rig.text() == anchored
    assert "update_limits_failed" in rig.actions()


def test_the_service_loop_survives_a_crashing_turn(tmp_path: Path) -> None:
    from mimir_limit_optimizer.controller.service import Service

    file = tmp_path / "mlo.yaml"
    file.write_text(f"dataDir: {tmp_path}\nserver:\n  enabled: false\n")
    service = Service(ConfigProvider(file, env={}, cli={}, catalogue=CATALOGUE), CATALOGUE,
                      logger=LOG)  # fmt: skip

    def boom() -> None:
        raise RuntimeError("unexpected")

    assert service._guarded("cycle", boom) is None
    assert (
        service.registry.get_sample_value(
            "mimir_limit_optimizer_errors_total", {"component": "cycle", "reason": "RuntimeError"}
        )
        == 1.0
    )
    assert [e.action for e in service.store.audit()] == ["cycle_crashed"]
    assert service._guarded("cycle", lambda: 42) == 42
