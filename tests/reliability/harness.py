"""What the reliability tests share: a working directory (config, overrides file, SQLite
store), one `mlo run --once` in this process or in a forked child that a crash point or a
timer kills with SIGKILL, and a view of what the store holds afterwards.

Forked children instead of `python -m mimir_limit_optimizer.cli` subprocesses: the imports
are paid once, so a kill loop of a hundred iterations costs seconds, not minutes.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.loader import ConfigError
from mimir_limit_optimizer.controller.config_provider import ConfigProvider
from mimir_limit_optimizer.controller.service import Service, ServiceOptions
from mimir_limit_optimizer.controller.wiring import WiringError
from mimir_limit_optimizer.store import AuditEvent, Revision, Store, StoreError
from mimir_limit_optimizer.store.records import Intent
from mimir_limit_optimizer.targets.base import TargetError

CATALOGUE = load_catalogue()
LOG = logging.getLogger("reliability")
# Exit status of `mlo run` for a configuration or start-up problem (cli/common.fail).
EXIT_USAGE = 2
# A forked child that died of an unexpected exception (a traceback).
EXIT_CRASHED = 70

# The operator's own line in the overrides file of the small clusters below (kept by every write).
HAND_WRITTEN = "overrides:\n  tenant-001:\n    max_queriers_per_tenant: 4\n"


def small_cluster_settings(mode: str) -> str:
    """Config of a 3-tenant synthetic cluster with two limits and no HTTP server, in `mode`;
    `{data}` and `{target}` are filled by `workdir`."""
    return f"""\
mode: {mode}
dataDir: {{data}}
target:
  path: {{target}}
synthetic:
  tenantCount: 3
  history: 1d
trendAnalysis:
  analysisWindow: 1d
  minHistory: 1h
dynamicLimits:
  enabledLimits: [ingestion_rate, max_global_series_per_user]
server:
  enabled: false
"""


@dataclass
class Workdir:
    root: Path
    config: Path
    target: Path
    data: Path

    @property
    def db(self) -> Path:
        return self.data / "mlo.db"

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.db}"


def workdir(root: Path, settings: str, overrides: str) -> Workdir:
    """`settings`: config YAML (may use {root}, {target} and {data}); `overrides`: the
    hand-written runtime overrides file the optimizer starts from."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / "runtime.yaml"
    data = root / "data"
    target.write_text(overrides)
    config = root / "mlo.yaml"
    config.write_text(settings.format(root=root, target=target, data=data))
    return Workdir(root, config, target, data)


def run_once(work: Workdir, *, cli: dict[str, Any] | None = None) -> int:
    """`mlo run --once -c <config>` in this process: the exit status the CLI would give."""
    try:
        provider = ConfigProvider(work.config, env={}, cli=cli or {}, catalogue=CATALOGUE)
        service = Service(provider, CATALOGUE, logger=LOG, options=ServiceOptions(once=True))
    except (ConfigError, WiringError, StoreError, TargetError):
        return EXIT_USAGE
    return service.run(threading.Event())


@dataclass
class StoreView:
    revisions: list[Revision]
    audit: list[AuditEvent]
    open_intents: list[Intent]
    intents: list[Intent] = field(default_factory=list)

    def actions(self) -> list[str]:
        return [e.action for e in self.audit]

    def applies(self) -> list[Revision]:
        return [r for r in self.revisions if r.kind == "apply"]


def store_view(url: str, target: Path) -> StoreView:
    name = f"file {target.resolve()}"
    with Store.open(url) as store:
        return StoreView(
            store.revisions(name, limit=1000),
            store.audit(limit=100_000),
            store.open_intents(name),
            store.intents(name, limit=1000),
        )


# -- forked children and crash points ----------------------------------------------------

# Crash point -> (object, attribute, when): the child SIGKILLs itself right "before" or
# "after" that call.
CrashPoints = dict[str, tuple[Any, str, str]]


def crash_points() -> CrashPoints:
    from mimir_limit_optimizer.targets.file import FileTarget
    from mimir_limit_optimizer.targets.verify import MimirVerifier

    return {
        "intent": (Store, "add_intent", "after"),  # recorded, nothing written yet
        "write": (FileTarget, "write", "after"),  # renamed into place, no revision
        "record": (Store, "record_write", "before"),  # same, from the store's side
        "verify": (MimirVerifier, "verify", "before"),  # recorded, verification pending
        "outcome": (Store, "finish_intent", "before"),  # verified or rolled back, unrecorded
    }


def _arm(point: str) -> None:
    owner, name, when = crash_points()[point]
    original: Callable[..., Any] = getattr(owner, name)

    def armed(*args: Any, **kwargs: Any) -> Any:
        if when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, armed)


def run_child(work: Workdir, *, crash_at: str | None = None, kill_after: float | None = None,
              timeout: float = 30.0) -> int:  # fmt: skip
    """`mlo run --once` in a forked child. `crash_at`: a crash point (the child kills itself
    there); `kill_after`: seconds after which the parent kills it. Returns the exit status,
    or -9 when it was killed."""
    return run_children([work], crash_at=crash_at, kill_after=[kill_after], timeout=timeout)[0]


def run_children(
    works: list[Workdir],
    *,
    crash_at: str | None = None,
    kill_after: list[float | None] | None = None,
    timeout: float = 30.0,
) -> list[int]:
    """`run_child` for several working directories at once (each its own child, killed at
    its own time): the kill loops use every core."""
    delays = kill_after or [None] * len(works)
    pids = [_fork(work, crash_at) for work in works]
    started = time.monotonic()
    statuses: dict[int, int] = {}
    while len(statuses) < len(pids):
        now = time.monotonic() - started
        for pid, delay in zip(pids, delays, strict=True):
            if pid in statuses:
                continue
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done and ((delay is not None and now >= delay) or now >= timeout):
                os.kill(pid, signal.SIGKILL)
                done, status = os.waitpid(pid, 0)
            if done:
                statuses[pid] = status
        time.sleep(0.002)
    return [
        -os.WTERMSIG(statuses[pid]) if os.WIFSIGNALED(statuses[pid])
        else os.WEXITSTATUS(statuses[pid])
        for pid in pids
    ]  # fmt: skip


def _fork(work: Workdir, crash_at: str | None) -> int:
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = EXIT_CRASHED
        try:
            logging.disable(logging.CRITICAL)
            if crash_at is not None:
                _arm(crash_at)
            status = run_once(work)
        finally:
            os._exit(status)
    return pid


def standalone_service(work: Workdir, name: str) -> Service:
    """A running service's parts, leading on its own (the loop is driven by the test, one
    cycle at a time); `name` names its logger."""
    provider = ConfigProvider(work.config, env={}, cli={}, catalogue=CATALOGUE)
    built = Service(provider, CATALOGUE, logger=logging.getLogger(name), options=ServiceOptions())
    built.leadership.start(provider.config, threading.Event())  # standalone: this replica leads
    return built


def store_errors(built: Service, reason: str) -> float:
    """errors_total{component="store", reason} of `built` so far."""
    value = built.registry.get_sample_value(
        "mimir_limit_optimizer_errors_total", {"component": "store", "reason": reason}
    )
    return value or 0.0
