"""Store faults (items 6, 7, 8): the store stopped during a verification, its file deleted or
replaced while running, read-only at start. The optimizer never applies without a durable
record, and what happened is recorded once the store is back."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from mimir_limit_optimizer.controller.service import Service
from tests.pgserver import PgServer, _run, require_bindir, start_postgres
from tests.reliability.fakeprom import FrozenMimir
from tests.reliability.harness import (
    HAND_WRITTEN,
    Workdir,
    run_once,
    small_cluster_settings,
    standalone_service,
    store_errors,
    store_view,
    workdir,
)

SETTINGS = small_cluster_settings("prod")


def service(work: Workdir) -> Service:
    return standalone_service(work, "store-faults")


@pytest.mark.parametrize("fault", ["deleted", "replaced"])
def test_a_lost_store_file_stops_applying(tmp_path: Path, fault: str) -> None:
    """Item 7: the data directory deleted (or the database replaced) while running: the loss
    is detected at the next cycle, the store is recreated with a `store_lost` record, and no
    write happens for a cooldown (the record of recent changes is gone)."""
    work = workdir(tmp_path, SETTINGS, HAND_WRITTEN)
    built = service(work)
    assert built.cycle().ok
    after_first = work.target.read_text()
    assert after_first != HAND_WRITTEN  # the control: the first cycle applied
    if fault == "deleted":
        shutil.rmtree(work.data)
    else:
        work.db.unlink()
        work.db.write_bytes(b"")  # another (empty) file at the same path
    lost = built.cycle()
    assert not lost.ok and "nothing is applied" in lost.detail
    assert store_errors(built, "file_lost") == 1
    assert built.cycle().ok  # the next cycle runs on the recreated store...
    assert work.target.read_text() == after_first  # ...and still applies nothing
    built.store.close()
    view = store_view(work.store_url, work.target)  # durable: a fresh process sees it
    assert "store_lost" in view.actions()
    held = [e for e in view.audit if e.action == "skipped_update"]
    assert held and "store was recreated" in str(held[0].details["why"])


def _cli_as_nobody(args: list[str], stderr: Path) -> int:
    """`mlo <args>` in a forked child running as user nobody when this is root (root writes
    through any permission), with its stderr in `stderr`; the exit status."""
    from mimir_limit_optimizer.cli.main import app  # imported before the fork

    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            fd = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            os.dup2(fd, 2)
            sys.stderr = os.fdopen(2, "w", closefd=False)  # pytest's capture is not fd 2
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            try:
                app(args)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)


def test_a_read_only_store_at_start_is_one_line_and_exit_2(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Item 8: a store that reads but cannot be written fails start-up with one line, exit 2
    (it used to crash at the first write with a 258-line traceback)."""
    # Not under tmp_path: pytest's temporary root is private to this user.
    root = Path(tempfile.mkdtemp(prefix="mlo-read-only-"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    work = workdir(root, SETTINGS, HAND_WRITTEN)
    assert run_once(work) == 0  # creates the store (as this user)
    for path in (root, work.data):
        path.chmod(0o777)  # directories writable: only the database file is read-only
    work.target.chmod(0o666)
    work.db.chmod(0o444)
    for extra in work.data.glob("mlo.db-*"):
        extra.unlink()
    before = work.target.read_text()
    stderr = tmp_path / "stderr.txt"
    status = _cli_as_nobody(["run", "--once", "--config", str(work.config)], stderr)
    text = stderr.read_text()
    assert status == 2, text[-3000:]
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "read-only" in lines[0], text[-3000:]
    assert work.target.read_text() == before


@pytest.fixture
def postgres() -> PgServer:
    # One server per test: each test stops it, and a failure half-way must not leave the
    # next test a stopped server.
    server = start_postgres(require_bindir())
    yield server  # type: ignore[misc]
    server.stop()


def _pg_ctl(server: PgServer, *args: str) -> None:
    done = _run(
        server.bindir / "pg_ctl", "-D", server.data_dir, "-l", server.log_path,
        "-o", f"-p {server.port}", "-w", "-t", 60, *args,
        run_as=server.run_as, cwd=server.workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_store_down_during_verification_is_recorded_once_it_is_back(
    tmp_path: Path, postgres: PgServer
) -> None:
    """Item 6: PostgreSQL stops while a write is being verified (and Mimir never loads it):
    the file is rolled back, the cycle fails without a traceback, and once PostgreSQL is
    back the rollback revision, its audit event and the closed intent are all recorded."""
    url = postgres.create_database()
    frozen = FrozenMimir(on_first_request=lambda: _pg_ctl(postgres, "-m", "fast", "stop"))
    verify = f"verify:\n  mimirUrl: {frozen.url}\n  timeout: 300ms\n  pollInterval: 20ms\n"
    work = workdir(tmp_path, SETTINGS + verify + f"store:\n  url: {url}\n", HAND_WRITTEN)
    try:
        built = service(work)
        first = built._guarded("cycle", built.cycle)
        assert first is not None and not first.ok  # reported, not raised
        assert work.target.read_text() == HAND_WRITTEN  # rolled back while the store was down
        _pg_ctl(postgres, "start")
        second = built._guarded("cycle", built.cycle)
        assert second is not None and not second.ok  # the recorded rollback is reported
        assert work.target.read_text() == HAND_WRITTEN
        view = store_view(url, work.target)
        assert [r.kind for r in view.revisions] == ["rollback", "apply", "baseline"]
        assert "rollback" in view.actions() and "update_limits" in view.actions()
        assert view.open_intents == [] and view.intents[0].state == "rolled_back"
        built.store.close()
    finally:
        frozen.stop()


def test_store_down_before_a_write_means_no_write(tmp_path: Path, postgres: PgServer) -> None:
    """PostgreSQL stopped: no intent can be recorded, so nothing is written (never a write
    without a durable record); restarted: the next cycle applies, fully recorded."""
    url = postgres.create_database()
    work = workdir(tmp_path, SETTINGS + f"store:\n  url: {url}\n", HAND_WRITTEN)
    built = service(work)
    try:
        _pg_ctl(postgres, "-m", "fast", "stop")
        down = built._guarded("cycle", built.cycle)
        assert down is None or not down.ok
        assert work.target.read_text() == HAND_WRITTEN
        _pg_ctl(postgres, "start")
        again = built._guarded("cycle", built.cycle)
        assert again is not None and again.ok
        assert work.target.read_text() != HAND_WRITTEN
        view = store_view(url, work.target)
        assert [r.kind for r in view.revisions] == ["apply", "baseline"]
        assert view.open_intents == []
    finally:
        built.store.close()


def test_a_deleted_target_is_not_recreated_from_one_plan(tmp_path: Path) -> None:
    """The overrides file deleted after the optimizer wrote it: writing a new file with only
    this cycle's changes would drop every other override; the write is refused instead."""
    work = workdir(tmp_path, SETTINGS.replace("server:", "changePolicy:\n  cooldown: 0s\nserver:"),
                   HAND_WRITTEN)  # fmt: skip
    built = service(work)
    try:
        assert built.cycle().ok
        work.target.unlink()
        refused = built.cycle()
        assert not refused.ok and "no longer exists" in refused.detail
        assert not work.target.exists()
    finally:
        built.store.close()
