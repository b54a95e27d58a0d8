"""A real PostgreSQL for tests, from the Debian package's binaries.

`start_postgres` runs `initdb` in a fresh temporary directory (trust authentication, loopback
only, no Unix socket, durability off: the data is thrown away), starts the server with `pg_ctl`
on 127.0.0.1 at a free port and waits until it accepts connections. PostgreSQL refuses to run as
root: under root the directory is given to the `postgres` system user (created by the package)
and every server command runs as that user through `runuser`. The package's own cluster and
service are not used and need not run.

The session-scoped `postgres_url` fixture starts one server for the test run and yields the
SQLAlchemy URL of a database on it; `create_database(url)` adds a fresh, empty database on the
same server (one per test keeps tests independent). Register the fixture in tests/conftest.py:
    from tests.pgserver import postgres_url  # noqa: F401
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from mimir_limit_optimizer.store import Store

INSTALL_HINT = "apt-get install -y postgresql"
READY_TIMEOUT = 60  # seconds, for pg_ctl start and stop
SUPERUSER = "postgres"
SYSTEM_USER = "postgres"  # the Debian package's user; servers run as it when we are root
_SETTINGS = """
# Added by tests/pgserver.py: loopback only, no Unix socket, no durability (throwaway data).
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
"""
_PORT_TAKEN = re.compile(r"could not bind|address already in use", re.IGNORECASE)


class PostgresStartError(RuntimeError):
    """initdb or the server failed; the message carries their output."""


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: the newest /usr/lib/postgresql/<version>/bin
    (Debian keeps them off PATH), else wherever PATH has them."""

    def version(bindir: Path) -> int:
        name = bindir.parent.name
        return int(name) if name.isdigit() else 0

    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for bindir in debian:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and shutil.which("initdb"):
        return Path(pg_ctl).parent
    return None


def require_bindir() -> Path:
    """`find_bindir()`, or skip (fail when real components are required) with the install
    command, as tests.conftest.require_binary does."""
    from tests.conftest import REQUIRE_REAL_ENV  # conftest imports this module

    bindir = find_bindir()
    if bindir is not None:
        return bindir
    message = f"PostgreSQL server binaries (initdb, pg_ctl) not found; install: {INSTALL_HINT}"
    if os.environ.get(REQUIRE_REAL_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_REAL_ENV}=1 forbids skipping)")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PgServer:
    """A running PostgreSQL; `stop()` shuts it down and deletes its directory."""

    bindir: Path
    workdir: Path
    port: int
    run_as: str | None  # system user the server runs as (None: the current user)

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def create_database(self, name: str | None = None) -> str:
        return create_database(self.url(), name)

    def stop(self) -> None:
        """Fast shutdown (open connections are closed), then remove the directory; idempotent."""
        if self.data_dir.exists():
            result = _run(
                *(self.bindir / "pg_ctl", "-D", self.data_dir, "-m", "fast", "-w"),
                *("-t", READY_TIMEOUT, "stop"),
                run_as=self.run_as,
                cwd=self.workdir,
            )
            if result.returncode != 0:
                self._kill_postmaster()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        """pg_ctl could not stop it: SIGQUIT the postmaster we started (its pid is the first
        line of postmaster.pid)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)
        except (OSError, ValueError, IndexError):
            pass


def _run(
    *args: str | int | Path, run_as: str | None, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    command = [str(arg) for arg in args]
    if run_as is not None:
        if shutil.which("runuser"):
            command = ["runuser", "-u", run_as, "--", *command]
        else:
            command = ["su", run_as, "-s", "/bin/sh", "-c", shlex.join(command)]
    return subprocess.run(
        command,
        cwd=cwd,  # the server user may not be allowed into our working directory
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PostgresStartError(
            f"running as root, but there is no '{SYSTEM_USER}' user to run PostgreSQL as "
            f"(PostgreSQL refuses root); reinstall the package ({INSTALL_HINT}) or run the "
            "tests as a normal user"
        ) from None


def start_postgres(bindir: Path) -> PgServer:
    """initdb + pg_ctl start in a new temporary directory; the caller must `stop()` it."""
    run_as: str | None = None
    workdir = Path(tempfile.mkdtemp(prefix="mlo-pg-"))
    try:
        if os.geteuid() == 0:
            user = _system_user()
            run_as = user.pw_name
            os.chown(workdir, user.pw_uid, user.pw_gid)
        server = PgServer(bindir, workdir, port=0, run_as=run_as)
        initdb = _run(
            *(bindir / "initdb", "-D", server.data_dir, "-U", SUPERUSER, "-A", "trust"),
            *("-E", "UTF8", "--locale=C", "--no-sync"),
            run_as=run_as,
            cwd=workdir,
        )
        if initdb.returncode != 0:
            raise PostgresStartError(f"initdb failed:\n{initdb.stdout}{initdb.stderr}")
        with (server.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(_SETTINGS)
        for _attempt in range(3):  # the free port may be taken between probing and binding
            server.port = _free_port()
            started = _run(
                *(bindir / "pg_ctl", "-D", server.data_dir, "-l", server.log_path),
                *("-o", f"-p {server.port}", "-w", "-t", READY_TIMEOUT, "start"),
                run_as=run_as,
                cwd=workdir,
            )
            if started.returncode == 0:
                return server
            if not _PORT_TAKEN.search(server.log()):
                break
        raise PostgresStartError(
            f"pg_ctl start failed:\n{started.stdout}{started.stderr}\n{server.log()[-3000:]}"
        )
    except BaseException:
        PgServer(bindir, workdir, 0, run_as).stop()
        raise


def create_database(url: str, name: str | None = None) -> str:
    """Create database `name` (default: a fresh unique name) on the server of `url`, as its
    superuser; return the new database's URL."""
    name = name or f"mlo_{uuid.uuid4().hex[:12]}"
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"database name {name!r}: use lower-case letters, digits and _")
    server = make_url(url)
    engine = create_engine(
        server.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL (postgresql+psycopg, superuser, no password) of database `mlo_test` on
    a PostgreSQL started for this test session."""
    server = start_postgres(require_bindir())
    try:
        yield server.create_database("mlo_test")
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database: a SQLite file (in a directory that does not exist yet), or
    a fresh database on the session's real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'mlo.db'}"
    return create_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open store on each of the two databases (closed after the test)."""
    opened = Store.open(store_url)
    yield opened
    opened.close()
