"""A user's mistake never shows a Python traceback: every subcommand, fed the slips a new user
makes (URLs without a scheme or with port 99999, non-UTF-8 or missing files, --output into a
missing directory or onto one, negative --limit, unknown names), exits non-zero with one
`error:` line that says what is wrong. Also: the top-level help lists every command without
importing the heavy ones, every option has help text, and --version works."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from typer import _click as click
from typer.testing import CliRunner

from mimir_limit_optimizer import __version__
from mimir_limit_optimizer.cli.app import app
from mimir_limit_optimizer.cli.lazy import LAZY_COMMANDS

RUNNER = CliRunner()

# (id, arguments, expected exit code, fragment of the message)
BAD_INPUTS: list[tuple[str, list[str], int, str]] = [
    ("url without scheme", ["recommend", "--prometheus-url", "127.0.0.1:9090"], 2, "http://"),
    ("not a url", ["plan", "--prometheus-url", "not a url"], 2, "http://"),
    ("ftp url", ["recommend", "--prometheus-url", "ftp://example.com/x"], 2, "http://"),
    ("port 99999", ["recommend", "--prometheus-url", "http://127.0.0.1:99999"], 2, "65535"),
    ("cost port 99999", ["cost", "--prometheus-url", "http://127.0.0.1:99999"], 2, "65535"),
    (
        "backtest port 99999",
        ["backtest", "--prometheus-url", "http://127.0.0.1:99999"],
        2,
        "65535",
    ),
    ("validate non-utf8", ["validate", "latin1.yaml"], 2, "not UTF-8"),
    ("validate a directory", ["validate", "adir"], 2, "directory"),
    ("validate missing", ["validate", "missing.yaml"], 2, "cannot read"),
    ("plan non-utf8", ["plan", "--overrides-file", "latin1.yaml"], 2, "not UTF-8"),
    ("plan non-utf8 base", ["plan", "--overrides-file", "latin1.yaml,good.yaml"], 2, "UTF-8"),
    ("plan missing base", ["plan", "--overrides-file", "nobase.yaml,good.yaml"], 2, "exist"),
    ("plan overrides dir", ["plan", "--overrides-file", "adir"], 2, "not a file"),
    ("output missing dir", ["recommend", "-o", "missing/out.json"], 2, "does not exist"),
    ("output onto dir", ["plan", "-o", "adir"], 2, "is a directory"),
    ("cost output onto dir", ["cost", "-o", "adir"], 2, "directory"),
    ("audit limit -1", ["audit", "--limit", "-1"], 2, "--limit"),
    ("history limit -1", ["history", "--limit", "-1"], 2, "--limit"),
    ("audit since", ["audit", "--since", "yesterday"], 2, "not a duration"),
    ("unknown limit", ["recommend", "--limits", "max_samples_per_query"], 2, "limit"),
    ("tenants none match", ["recommend", "--tenants", "NOPE,NADA"], 1, "case-sensitive"),
    ("config dir", ["config", "show", "-c", "adir"], 2, "adir"),
    ("config non-utf8", ["config", "show", "-c", "latin1.yaml"], 2, "UTF-8"),
    ("config format", ["config", "show", "--format", "xml"], 2, "yaml or json"),
    ("limits format", ["limits", "--format", "xml"], 2, "--format"),
    ("diff unknown revisions", ["diff", "1", "2"], 2, "no revision"),
    ("rollback nothing", ["rollback"], 2, "nothing to roll back"),
    ("rollback unknown", ["rollback", "--to", "5"], 2, "no revision"),
    ("alert unknown channel", ["alert", "test", "--channel", "nope"], 2, "nope"),
    ("backtest missing file", ["backtest", "--scenarios", "missing.yaml"], 2, "missing.yaml"),
    (
        "backtest end not a time",
        ["backtest", "--prometheus-url", "http://127.0.0.1:9", "--end", "yesterday"],
        2,
        "is not a time",
    ),
    ("run port 99999", ["run", "--once", "--prometheus-url", "http://127.0.0.1:99999"], 2, ""),
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding the bad files (and the default .data state)."""
    (tmp_path / "latin1.yaml").write_bytes(
        "overrides:\n  caf\xe9:\n    ingestion_rate: 1\n".encode("latin-1")
    )
    (tmp_path / "good.yaml").write_text("overrides:\n  a:\n    ingestion_rate: 5000\n")
    (tmp_path / "adir").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLO_CONFIG", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [row[1:] for row in BAD_INPUTS],
    ids=[row[0] for row in BAD_INPUTS],
)
def test_bad_input_exits_cleanly(workdir: Path, args: list[str], code: int, fragment: str) -> None:
    result = RUNNER.invoke(app, args)
    output = result.output
    assert "Traceback" not in output
    # Anything but SystemExit escaping the command would have been a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == code, output
    assert fragment in output, output


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_port_in_use_at_run_start_is_one_error_line(workdir: Path, busy_port: int) -> None:
    (workdir / "config.yaml").write_text(
        f"dataDir: {workdir / 'state'}\nserver:\n  metricsPort: {busy_port}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mimir_limit_optimizer.cli", "run", "-c", "config.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{busy_port}" in result.stderr
    assert "error:" in result.stderr.splitlines()[-1]


def test_help_lists_every_command_without_importing_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mimir_limit_optimizer.cli.app import app\n"
        "out = CliRunner().invoke(app, ['--help']).output\n"
        "heavy = [m for m in ('numpy', 'fastapi', 'sqlalchemy', 'kubernetes', 'matplotlib',"
        " 'pydantic') if m in sys.modules]\n"
        "print(out)\nprint('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "HEAVY []" in result.stdout
    for name in [*LAZY_COMMANDS, "recommend", "plan", "validate", "limits", "config"]:
        assert f" {name} " in result.stdout


def test_the_help_of_lazy_commands_matches_their_own() -> None:
    root = typer.main.get_command(app)
    ctx = click.Context(root)
    for name, lazy in LAZY_COMMANDS.items():
        command = root.get_command(ctx, name)
        assert command is not None
        own = " ".join((command.help or "").split())
        # The first words agree (the listing may be shorter than the full help).
        assert own.split()[:3] == lazy.help.split()[:3], (name, own)


def test_every_option_has_help_and_a_readable_metavar() -> None:
    root = typer.main.get_command(app)
    ctx = click.Context(root)
    checked = 0

    def walk(command: click.Command, path: str) -> None:
        nonlocal checked
        assert "seed" not in (command.help or "").lower(), path
        for param in command.get_params(click.Context(command)):
            assert getattr(param, "help", None), f"{path} {param.name} has no help"
            assert "seed" not in str(param.help).lower(), (path, param.name)
            shown = param.metavar or ""
            assert "list[" not in shown and "<bool>" not in shown, (path, param.name, shown)
            checked += 1
        for name in getattr(command, "list_commands", lambda _c: [])(ctx):
            sub = command.get_command(ctx, name)  # type: ignore[attr-defined]
            walk(sub, f"{path} {name}")

    walk(root, "mlo")
    assert checked > 50
    help_text = RUNNER.invoke(app, ["plan", "--help"], terminal_width=200).output
    assert "<list[" not in help_text and "<bool>" not in help_text


def test_version() -> None:
    result = RUNNER.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_validate_ok_goes_to_stdout_and_problems_too(workdir: Path) -> None:
    ok = RUNNER.invoke(app, ["validate", "good.yaml"])
    assert ok.exit_code == 0
    assert ok.stdout.startswith("ok: good.yaml is a valid mimir runtime file")
    # A null value keeps the default in Mimir: valid, not a problem.
    (workdir / "null.yaml").write_text("overrides:\n  a:\n    ingestion_rate:\n")
    assert RUNNER.invoke(app, ["validate", "null.yaml"]).exit_code == 0
    (workdir / "bad.yaml").write_text("overrides:\n  a:\n    max_samples_per_query: 1\n")
    bad = RUNNER.invoke(app, ["validate", "bad.yaml"])
    assert bad.exit_code == 1
    assert "bad.yaml:3" in bad.stdout


def test_limits_imports_nothing_heavy() -> None:
    """`mlo limits` must start fast: the catalogue and a table, no numpy, web, store,
    Kubernetes or plotting library (bench/cli_startup.py measures the time)."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mimir_limit_optimizer.cli.app import app\n"
        "result = CliRunner().invoke(app, ['limits', '--format', 'json'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'ingestion_rate' in result.output\n"
        "print('HEAVY', [m for m in ('numpy', 'fastapi', 'sqlalchemy', 'kubernetes',"
        " 'matplotlib', 'httpx', 'uvicorn') if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "HEAVY []" in result.stdout
