"""Service commands: run (the reconcile loop), history, rollback, diff, audit."""

from __future__ import annotations

import difflib
import logging
import os
import signal
import sys
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.catalogue.units import DurationError, parse_duration
from mimir_limit_optimizer.cli import output
from mimir_limit_optimizer.cli.app import app
from mimir_limit_optimizer.cli.common import (
    CommonOptions,
    ConfigOpt,
    FormatOpt,
    OutputFormat,
    OverridesOpt,
    cli_overrides,
    fail,
    load,
    wide_console,
    with_common_options,
)
from mimir_limit_optimizer.config.loader import ConfigError
from mimir_limit_optimizer.controller.apply import Applier
from mimir_limit_optimizer.controller.config_provider import ConfigProvider
from mimir_limit_optimizer.controller.service import Service, ServiceOptions
from mimir_limit_optimizer.controller.wiring import WiringError, build_target, open_store
from mimir_limit_optimizer.store import AuditEvent, Revision, Store, StoreError
from mimir_limit_optimizer.targets.base import TargetError
from mimir_limit_optimizer.web.server import ServerStartError


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


# Libraries whose INFO lines are detail: every HTTP request httpx makes (one per query chunk),
# and uvicorn's start/stop lines for each of the servers (the service logs its endpoints once).
_CHATTY_LOGGERS = ("httpx", "httpcore", "uvicorn.error", "uvicorn")


class DemoteToDebug(logging.Filter):
    """Re-level a chatty library's INFO records to DEBUG: shown only with --log-level debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def _logging(level: LogLevel = LogLevel.INFO) -> logging.Logger:
    logging.basicConfig(
        level=getattr(logging, level.value.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    demote = DemoteToDebug()
    for name in _CHATTY_LOGGERS:
        chatty = logging.getLogger(name)
        if demote not in chatty.filters:
            chatty.addFilter(demote)
    return logging.getLogger("mimir_limit_optimizer")


@app.command()
@with_common_options
def run(
    opts: CommonOptions,
    once: Annotated[
        bool, typer.Option("--once", help="Run exactly one cycle; exit 0 if it succeeded.")
    ] = False,
    log_level: Annotated[
        LogLevel,
        typer.Option(
            "--log-level",
            help="debug also shows every HTTP request and the web servers' own lines.",
        ),
    ] = LogLevel.INFO,
) -> None:
    """Run the service: a reconcile loop every updateInterval (dry-run unless --mode prod),
    with /metrics, /healthz and /readyz on 127.0.0.1."""
    log = _logging(log_level)
    catalogue = load_catalogue()
    cli, flags = cli_overrides(opts)
    try:
        provider = ConfigProvider(
            opts.config, env=dict(os.environ), cli=cli, cli_flags=flags, catalogue=catalogue
        )
    except ConfigError as exc:
        fail(str(exc))
    for warning in provider.loaded.warnings:
        log.warning(warning)
    try:
        service = Service(provider, catalogue, logger=log, options=ServiceOptions(once=once))
    except (WiringError, StoreError, TargetError) as exc:
        fail(str(exc))
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s: stopping after the current cycle", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        status = service.run(stop)
    except ServerStartError as exc:  # a port in use, a host that does not resolve
        fail(str(exc))
    raise typer.Exit(status)


def _store_and_applier(
    config: Path | None, overrides_file: list[Path] | None
) -> tuple[Store, Applier, str]:
    loaded, catalogue = load(CommonOptions(config=config, overrides_file=overrides_file))
    try:
        target = build_target(loaded.config)
        store = open_store(loaded.config)
    except (WiringError, StoreError, TargetError) as exc:
        fail(str(exc))
    applier = Applier(
        target,
        store,
        catalogue,
        verifier=None,
        rollback_on_failure=False,
        sleep=time.sleep,
        logger=logging.getLogger("mimir_limit_optimizer"),
    )
    return store, applier, target.describe()


def _revision_rows(revisions: list[Revision]) -> list[dict[str, object]]:
    return [
        {
            "id": r.id,
            "created_at": output.iso(r.created_at),
            "kind": r.kind,
            "actor": r.actor,
            "sha256": r.sha256,
            "changes": len(r.plan),
            "note": r.note,
        }
        for r in revisions
    ]


@app.command()
def history(
    config: ConfigOpt = None,
    overrides_file: OverridesOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N revisions.")] = 50,
) -> None:
    """List the revisions written to the target (newest first)."""
    store, _applier, name = _store_and_applier(config, overrides_file)
    rows = _revision_rows(store.revisions(name, limit=limit))
    if fmt is OutputFormat.TABLE:
        table = Table(title=f"Revisions of {name}")
        for column in ("id", "created_at", "kind", "actor", "sha256", "changes", "note"):
            table.add_column(column)
        for row in rows:
            table.add_row(*(str(row[c])[:12] if c == "sha256" else str(row[c]) for c in row))
        wide_console().print(table)
    else:
        output.emit_rows(rows, fmt.value)


@app.command()
def rollback(
    config: ConfigOpt = None,
    overrides_file: OverridesOpt = None,
    to: Annotated[
        int | None, typer.Option("--to", help="Revision id (default: the one before the latest).")
    ] = None,
) -> None:
    """Restore a revision's content, byte for byte (an explicit operator action: it writes in
    any mode, and is audited as a user action)."""
    store, applier, name = _store_and_applier(config, overrides_file)
    revisions = store.revisions(name, limit=2)
    if to is not None:
        chosen = store.revision(to)
        if chosen is None or chosen.target != name:
            fail(f"no revision {to} for {name}; see `mlo history`")
    elif len(revisions) < 2:
        fail(f"nothing to roll back to: {name} has {len(revisions)} revision(s)")
    else:
        chosen = revisions[1]
    now = time.time()
    user = os.environ.get("USER", "user")
    # Recorded with the rollback's revision, in the same transaction (an intent first).
    event = AuditEvent(now, "warning", "user", "cli", "rollback", None, {"target": name})
    try:
        restored = applier.restore(chosen, now=now, actor=user, events=[event])
    except TargetError as exc:
        fail(f"rollback failed, {name} unchanged: {exc}", code=1)
    if restored is None:
        Console(stderr=True, soft_wrap=True).print(
            f"restored revision {chosen.id} of {name}, but the store could not record it; "
            "the next `mlo run` records it"
        )
        return
    Console(stderr=True, soft_wrap=True).print(
        f"restored revision {chosen.id} of {name} (sha256 {chosen.sha256[:12]})"
    )


@app.command()
def diff(
    rev1: Annotated[int, typer.Argument(help="Older revision id.")],
    rev2: Annotated[int, typer.Argument(help="Newer revision id.")],
    config: ConfigOpt = None,
    overrides_file: OverridesOpt = None,
) -> None:
    """Unified diff between two revisions."""
    store, _, name = _store_and_applier(config, overrides_file)
    a, b = store.revision(rev1), store.revision(rev2)
    for wanted, found in ((rev1, a), (rev2, b)):
        if found is None or found.target != name:
            fail(f"no revision {wanted} for {name}; see `mlo history`")
    assert a is not None and b is not None
    lines = difflib.unified_diff(
        a.content.splitlines(keepends=True),
        b.content.splitlines(keepends=True),
        fromfile=f"revision {a.id}",
        tofile=f"revision {b.id}",
    )
    sys.stdout.write("".join(lines))


@app.command()
def audit(
    config: ConfigOpt = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only events of this tenant (exact id).")
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(
            "--action", help="Only this action, e.g. update_limits, would_update_limits, rollback."
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="A duration back from now, e.g. 1h, 7d.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N events.")] = 100,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Query the audit log (newest first); export as json or csv."""
    loaded, _ = load(CommonOptions(config=config))
    try:
        store = open_store(loaded.config)
    except StoreError as exc:
        fail(str(exc))
    start = None
    if since:
        try:
            start = time.time() - parse_duration(since)
        except DurationError as exc:
            fail(f"--since: {exc}")
    events = store.audit(tenant=tenant, action=action, since=start, limit=limit)
    rows = [e.to_json() for e in events]
    if fmt is OutputFormat.TABLE:
        table = Table(title="Audit log")
        for column in (
            "timestamp",
            "level",
            "category",
            "component",
            "action",
            "tenant",
            "details",
        ):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                *(
                    str(row.get(c) or "")
                    for c in ("timestamp", "level", "category", "component", "action", "tenant")
                ),
                output.compact(row.get("details", {})),
            )
        wide_console().print(table)
    else:
        output.emit_rows(rows, fmt.value)
