"""The file target never leaves a broken or half-written overrides file behind: writes are
atomic renames under a lock with compare-and-swap on the content hash; disk full, permission
denied and a failing rename leave the old content and no temporary file; a writer SIGKILLed at
random moments leaves exactly one of the complete contents."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import multiprocessing
import os
import random
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mimir_limit_optimizer.targets.base import (
    ConflictError,
    Content,
    PermanentTargetError,
    Target,
    TargetError,
)
from mimir_limit_optimizer.targets.file import FileSystem, FileTarget

OLD = "overrides:\n  tenant-a:\n    ingestion_rate: 10000\n"
NEW = "overrides:\n  tenant-a:\n    ingestion_rate: 50000\n"
FORK = multiprocessing.get_context("fork")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def leftovers(directory: Path) -> list[str]:
    """Temporary files in `directory` (the lock file is meant to stay)."""
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


@pytest.fixture
def existing(tmp_path: Path) -> Iterator[tuple[FileTarget, Path]]:
    path = tmp_path / "overrides.yaml"
    path.write_text(OLD)
    yield FileTarget(path), path


def test_is_a_target(tmp_path: Path) -> None:
    target: Target = FileTarget(tmp_path / "x.yaml")
    assert target.describe() == f"file {tmp_path / 'x.yaml'}"


def test_absent_file_reads_as_empty(tmp_path: Path) -> None:
    assert FileTarget(tmp_path / "none.yaml").read() == Content("", None, False)


def test_first_write_creates_directory_with_default_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "overrides.yaml"
    target = FileTarget(path)
    old_umask = os.umask(0o077)  # the mode must not depend on the umask
    try:
        version = target.write(NEW, expected_version=None)
    finally:
        os.umask(old_umask)
    assert version == sha(NEW)
    assert target.read() == Content(NEW, sha(NEW), True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert leftovers(path.parent) == []


def test_write_replaces_atomically_and_keeps_bytes(existing: tuple[FileTarget, Path]) -> None:
    target, path = existing
    before = path.stat().st_ino
    text = "# keep: CRLF and unicode é\r\noverrides: {}\r\n"
    version = target.write(text, expected_version=sha(OLD))
    assert path.read_bytes() == text.encode()
    assert target.read().version == version == sha(text)
    assert path.stat().st_ino != before  # a new file renamed into place, not rewritten
    assert leftovers(path.parent) == []


def test_mode_of_the_old_file_is_kept(existing: tuple[FileTarget, Path]) -> None:
    target, path = existing
    path.chmod(0o600)
    target.write(NEW, expected_version=sha(OLD))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_stale_version_is_a_conflict(existing: tuple[FileTarget, Path]) -> None:
    target, path = existing
    with pytest.raises(ConflictError, match="changed since it was read"):
        target.write(NEW, expected_version=sha("something else"))
    with pytest.raises(ConflictError):
        target.write(NEW, expected_version=None)  # None means "must not exist yet"
    with pytest.raises(ConflictError):
        FileTarget(path.with_name("absent.yaml")).write(NEW, expected_version=sha(OLD))
    assert path.read_text() == OLD


def test_symlink_is_followed_not_replaced(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_text(OLD)
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    FileTarget(link).write(NEW, expected_version=sha(OLD))
    assert link.is_symlink()
    assert real.read_text() == NEW


def test_non_utf8_file_is_a_permanent_error(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_bytes(b"overrides: \xff\n")
    with pytest.raises(PermanentTargetError, match="not UTF-8"):
        FileTarget(path).read()


def test_orphaned_temp_files_are_removed(existing: tuple[FileTarget, Path]) -> None:
    target, path = existing
    orphan = path.with_name(".overrides.yaml.tmp-99999-deadbeef")
    orphan.write_text("half a fi")
    target.write(NEW, expected_version=sha(OLD))
    assert leftovers(path.parent) == []


# -- the lock ---------------------------------------------------------------------------------


def _hold_lock(lock_path: str, held: object, release: object, hold: float) -> None:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    held.set()  # type: ignore[attr-defined]
    release.wait(hold)  # type: ignore[attr-defined]
    os._exit(0)


def _start_holder(path: Path, hold: float) -> tuple[multiprocessing.process.BaseProcess, object]:
    held, release = FORK.Event(), FORK.Event()
    child = FORK.Process(target=_hold_lock, args=(f"{path}.lock", held, release, hold))
    child.start()
    assert held.wait(10), "the child never took the lock"
    return child, release


def test_lock_held_by_another_process_times_out(existing: tuple[FileTarget, Path]) -> None:
    _, path = existing
    child, release = _start_holder(path, hold=10)
    try:
        started = time.monotonic()
        with pytest.raises(TargetError, match="locked by another writer") as caught:
            FileTarget(path, lock_timeout=0.3).write(NEW, expected_version=sha(OLD))
        waited = time.monotonic() - started
    finally:
        release.set()  # type: ignore[attr-defined]
        child.join(10)
    assert caught.value.retryable
    assert 0.3 <= waited < 3
    assert path.read_text() == OLD


def test_writer_waits_for_the_lock_then_writes(existing: tuple[FileTarget, Path]) -> None:
    _, path = existing
    child, _ = _start_holder(path, hold=0.3)  # releases by exiting after 0.3 s
    try:
        started = time.monotonic()
        FileTarget(path, lock_timeout=10).write(NEW, expected_version=sha(OLD))
        waited = time.monotonic() - started
    finally:
        child.join(10)
    assert path.read_text() == NEW
    assert 0.1 < waited < 5


# -- OS failures (injected where root cannot be made to fail) ---------------------------------


class DiskFull(FileSystem):
    """Writes half of the data, then fails like a full disk."""

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if len(data) > 1:
            return os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class NoTempFile(FileSystem):
    def open(self, path: str, flags: int, mode: int = 0o777) -> int:
        if ".tmp-" in path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return super().open(path, flags, mode)


class RenameFails(FileSystem):
    def replace(self, source: str, destination: str) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), destination)


class FsyncFails(FileSystem):
    def fsync(self, fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))


@pytest.mark.parametrize(
    ("fs", "error", "message"),
    [
        (DiskFull(), TargetError, r"No space left on device \[ENOSPC\] while writing"),
        (NoTempFile(), PermanentTargetError, r"Permission denied \[EACCES\] while creating"),
        (RenameFails(), PermanentTargetError, r"Read-only file system \[EROFS\] while renaming"),
        (FsyncFails(), TargetError, r"Input/output error \[EIO\] while flushing"),
    ],
    ids=["disk-full", "permission-denied", "read-only-rename", "fsync-fails"],
)
def test_failed_write_keeps_old_content_and_no_temp_file(
    existing: tuple[FileTarget, Path], fs: FileSystem, error: type[TargetError], message: str
) -> None:
    _, path = existing
    with pytest.raises(error, match=message) as caught:
        FileTarget(path, fs=fs).write(NEW * 1000, expected_version=sha(OLD))
    assert str(path) in str(caught.value)
    assert "content is unchanged" in str(caught.value)
    assert path.read_text() == OLD
    assert leftovers(path.parent) == []


class DirectoryFsyncFails(FileSystem):
    def __init__(self) -> None:
        self.directory_fd = -1

    def open(self, path: str, flags: int, mode: int = 0o777) -> int:
        fd = super().open(path, flags, mode)
        if flags & os.O_DIRECTORY:
            self.directory_fd = fd
        return fd

    def fsync(self, fd: int) -> None:
        if fd == self.directory_fd:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().fsync(fd)


def test_directory_fsync_failure_after_the_rename_is_logged_not_raised(
    existing: tuple[FileTarget, Path], caplog: pytest.LogCaptureFixture
) -> None:
    # The rename is done: every reader already sees the new content, so reporting a failed
    # write (old content intact) would be false.
    _, path = existing
    version = FileTarget(path, fs=DirectoryFsyncFails()).write(NEW, expected_version=sha(OLD))
    assert version == sha(NEW) and path.read_text() == NEW
    assert "may not survive a power loss" in caplog.text


def test_directory_that_is_a_file_fails_even_as_root(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(PermanentTargetError, match=r"is not a directory"):
        FileTarget(blocker / "overrides.yaml").write(NEW, expected_version=None)


def test_unreadable_target_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(PermanentTargetError, match=r"cannot read .*dir\.yaml: Is a directory"):
        FileTarget(tmp_path / "dir.yaml").read()


# -- SIGKILL at random moments ----------------------------------------------------------------

KILL_ROUNDS = 30
# Two valid files of different sizes (~200 KB: a write takes long enough to be interrupted).
CONTENT_A = OLD + "".join(f"# padding line {i:06d} for the kill test\n" for i in range(5000))
CONTENT_B = NEW + "".join(f"# other padding {i:06d}\n" for i in range(7000))


def _write_forever(path: str, completed: multiprocessing.sharedctypes.Synchronized[int]) -> None:
    target = FileTarget(path, lock_timeout=5)
    for round_ in range(100_000):  # bounded; the parent kills it long before
        current = target.read()
        target.write(CONTENT_B if round_ % 2 else CONTENT_A, expected_version=current.version)
        completed.value += 1
    os._exit(0)


def _wait_for(completed: multiprocessing.sharedctypes.Synchronized[int], count: int) -> None:
    """Until the child has finished `count` writes (bounded: 10 s), so a loaded machine cannot
    make every kill land before the first write and the test prove nothing."""
    deadline = time.monotonic() + 10
    while completed.value < count and time.monotonic() < deadline:
        time.sleep(0.001)


def test_sigkill_during_writes_leaves_one_complete_content(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    FileTarget(path).write(CONTENT_A, expected_version=None)
    valid = {CONTENT_A.encode(), CONTENT_B.encode()}
    rng = random.Random(20240611)
    seen: set[bytes] = set()
    orphans = 0
    for round_ in range(KILL_ROUNDS):
        completed = FORK.Value("i", 0)
        child = FORK.Process(target=_write_forever, args=(str(path), completed))
        child.start()
        if round_ % 3 == 0:
            # Kill mid-write after at least one (odd number: B) or two (A) complete writes.
            _wait_for(completed, 1 + round_ % 2)
        time.sleep(rng.uniform(0.003, 0.05))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        assert child.exitcode == -signal.SIGKILL
        content = path.read_bytes()  # never missing: it existed before the first kill
        assert content in valid, f"partial content of {len(content)} bytes after a kill"
        seen.add(content)
        orphans += bool(leftovers(tmp_path))
    assert seen == valid, "the child never completed a write: the test proves nothing"
    # The next write tidies what killed writers left behind.
    current = FileTarget(path).read()
    FileTarget(path).write(CONTENT_A, expected_version=current.version)
    assert leftovers(tmp_path) == []
    print(f"kills that left a temporary file behind: {orphans}/{KILL_ROUNDS}")
