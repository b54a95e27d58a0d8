"""The runtime overrides file on local disk, written so that no failure can break it.

A write takes an exclusive `flock` on a sibling lock file `<name>.lock` (never deleted:
deleting a lock file lets two writers lock two different inodes), re-reads the file under
the lock and compares its sha256 with the version the caller planned from (compare-and-swap),
then writes a temporary file in the same directory, fsyncs it, gives it the old file's mode,
renames it over the file and fsyncs the directory. Readers (Mimir reloads every 10 s) see
either the old or the new complete content, whatever happens: disk full, permission denied,
SIGKILL at any instruction. A temporary file orphaned by a killed writer is removed by the
next write (it holds the lock, so no live writer owns such a file).

Symlinks are followed: the file they point to is replaced, not the link.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mimir_limit_optimizer.targets.base import (
    ConflictError,
    Content,
    PermanentTargetError,
    TargetError,
)

__all__ = ["FileSystem", "FileTarget", "file_version"]

log = logging.getLogger(__name__)

DEFAULT_MODE = 0o644
# Seconds between attempts to take a contended lock.
_LOCK_POLL = 0.02
# errnos that retrying the same write cannot fix (an operator has to act).
_PERMANENT_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}
)


def file_version(data: bytes) -> str:
    """The version token of a file's content: its sha256, hex."""
    return hashlib.sha256(data).hexdigest()


class FileSystem:
    """The OS calls a write makes, as one object so that tests can make any of them fail
    (ENOSPC, EACCES, ...) where the real OS cannot be made to, e.g. when running as root.
    The defaults are the real calls."""

    def open(self, path: str, flags: int, mode: int = 0o777) -> int:
        return os.open(path, flags, mode)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fchmod(self, fd: int, mode: int) -> None:
        os.fchmod(fd, mode)

    def replace(self, source: str, destination: str) -> None:
        os.replace(source, destination)

    def unlink(self, path: str) -> None:
        os.unlink(path)


class FileTarget:
    """A runtime overrides file: read it, and replace it atomically with compare-and-swap.

    `lock_timeout`: seconds to wait for another writer's lock before giving up with a
    (retryable) TargetError. `fs`: the OS calls of a write (a seam for fault injection);
    `sleep` and `clock`: time, injectable for the same reason."""

    def __init__(
        self,
        path: str | Path,
        *,
        lock_timeout: float = 10.0,
        fs: FileSystem | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lock_timeout <= 0:
            raise ValueError(f"lock_timeout must be positive, not {lock_timeout!r}")
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self._fs = fs if fs is not None else FileSystem()
        self._sleep = sleep
        self._clock = clock

    def describe(self) -> str:
        return f"file {self.path}"

    def read(self) -> Content:
        """The file's text and version; Content("", None, False) when it does not exist."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Content("", None, False)
        except OSError as exc:
            raise _error(self.path, "reading it", exc, action="read") from exc
        return Content(_decode(self.path, data), file_version(data), True)

    def write(self, text: str, *, expected_version: str | None) -> str:
        """Replace the file with `text` if it is still at `expected_version` (None: it must
        not exist). Returns the new version. On any failure the file is left as it was."""
        data = text.encode("utf-8")
        real = Path(os.path.realpath(self.path))
        try:
            real.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:  # something on the way is a file, not a directory
            raise PermanentTargetError(
                f"cannot write {self.path}: {real.parent} or a directory above it is not a "
                "directory; fix the path (target.path)"
            ) from exc
        except OSError as exc:
            raise _error(self.path, "creating its directory", exc) from exc
        with self._locked(real):
            self._remove_orphans(real)
            current = self._current(real)
            if current != expected_version:
                raise ConflictError(
                    f"{self.path} changed since it was read (expected version "
                    f"{_short(expected_version)}, found {_short(current)}): re-read and re-plan"
                )
            mode, owner = self._mode_and_owner(real)
            self._replace(real, data, mode, owner)
        return file_version(data)

    # -- steps ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, real: Path) -> Iterator[None]:
        lock_path = real.with_name(real.name + ".lock")
        try:
            fd = self._fs.open(str(lock_path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _error(self.path, f"opening its lock file {lock_path}", exc) from exc
        try:
            deadline = self._clock() + self.lock_timeout
            attempts = int(self.lock_timeout / _LOCK_POLL) + 2  # bounded even if time stops
            for _ in range(attempts):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        message = _locked_message(self.path, self.lock_timeout, lock_path)
                        raise TargetError(message) from None
                    self._sleep(min(_LOCK_POLL, remaining))
                except OSError as exc:
                    raise _error(self.path, f"locking {lock_path}", exc) from exc
            else:
                raise TargetError(_locked_message(self.path, self.lock_timeout, lock_path))
            yield  # the lock goes with the descriptor, released by close() below
        finally:
            os.close(fd)

    def _remove_orphans(self, real: Path) -> None:
        prefix = _temp_prefix(real)
        try:
            names = [name for name in os.listdir(real.parent) if name.startswith(prefix)]
        except OSError:
            return  # nothing to tidy if the directory cannot be listed; the write will say why
        for name in names:
            with contextlib.suppress(OSError):
                self._fs.unlink(str(real.parent / name))
                log.info("removed %s, left by a writer that was killed", real.parent / name)

    def _current(self, real: Path) -> str | None:
        try:
            return file_version(real.read_bytes())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _error(self.path, "reading it before the write", exc) from exc

    def _mode_and_owner(self, real: Path) -> tuple[int, tuple[int, int] | None]:
        try:
            st = os.stat(real)
        except FileNotFoundError:
            return DEFAULT_MODE, None
        except OSError as exc:
            raise _error(self.path, "reading its mode", exc) from exc
        owner = (st.st_uid, st.st_gid)
        # Only root can give a file away; for anyone else the new file is theirs, as with any
        # editor that saves by rename.
        keep_owner = os.geteuid() == 0 and owner != (os.geteuid(), os.getegid())
        return stat.S_IMODE(st.st_mode), owner if keep_owner else None

    def _replace(self, real: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
        temp = real.parent / f"{_temp_prefix(real)}{os.getpid()}-{secrets.token_hex(4)}"
        step = "creating a temporary file"
        try:
            fd = self._fs.open(
                str(temp), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            raise _error(self.path, f"{step} in {real.parent}", exc) from exc
        try:
            try:
                step = "writing the temporary file"
                self._write_all(fd, data)
                step = "setting the temporary file's mode"
                self._fs.fchmod(fd, mode)
                if owner is not None:
                    os.fchown(fd, *owner)
                step = "flushing the temporary file to disk"
                self._fs.fsync(fd)
            finally:
                os.close(fd)
            step = "renaming the temporary file over it"
            self._fs.replace(str(temp), str(real))
        except OSError as exc:
            with contextlib.suppress(OSError):
                self._fs.unlink(str(temp))
            raise _error(self.path, step, exc) from exc
        self._fsync_directory(real)

    def _write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        written = 0
        for _ in range(len(data)):  # each round writes at least one byte or raises
            if written == len(data):
                return
            count = self._fs.write(fd, view[written:])
            if count <= 0:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            written += count

    def _fsync_directory(self, real: Path) -> None:
        """Make the rename durable. The new content is already what every reader sees, so a
        failure here is not reported as a failed write (that would claim the old content is
        still in place): it is logged."""
        directory = real.parent
        try:
            fd = self._fs.open(str(directory), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                self._fs.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning(
                "%s was replaced, but flushing directory %s failed (%s): the change may not "
                "survive a power loss",
                real,
                directory,
                _errno_text(exc),
            )


def _temp_prefix(real: Path) -> str:
    return f".{real.name}.tmp-"


def _short(version: str | None) -> str:
    return "none (no file)" if version is None else version[:12]


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PermanentTargetError(
            f"{path} is not UTF-8 text (byte {exc.start}): Mimir's YAML loader would reject it; "
            "fix or delete the file"
        ) from exc


def _errno_text(exc: OSError) -> str:
    if exc.errno is None:
        return str(exc)
    name = errno.errorcode.get(exc.errno, str(exc.errno))
    return f"{os.strerror(exc.errno)} [{name}]"


def _error(path: Path, step: str, exc: OSError, *, action: str = "write") -> TargetError:
    """A TargetError naming the file, the OS error and the step; permanent when retrying the
    same cannot help (permission denied, read-only file system, ...)."""
    cls = PermanentTargetError if exc.errno in _PERMANENT_ERRNOS else TargetError
    unchanged = "; its content is unchanged" if action == "write" else ""
    return cls(f"cannot {action} {path}: {_errno_text(exc)} while {step}{unchanged}")


def _locked_message(path: Path, timeout: float, lock_path: Path) -> str:
    return (
        f"cannot write {path}: locked by another writer (waited {timeout:g} s for {lock_path}); "
        "retry later, or find the other process with `fuser` on the lock file"
    )
