"""A command group that imports a command's module only when that command runs.

`mlo --help` and `mlo limits` must start fast (under 0.3 s; see bench/cli_startup.py), but the
service, cost, alert and backtest commands pull in numpy, FastAPI, SQLAlchemy, the Kubernetes
client and matplotlib. Those modules register their commands on the one Typer app when they
are imported; this group imports them on first use. The top-level help lists them from the
table below, without importing anything.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

# Typer 0.29 ships its own copy of Click (`typer._click`); its groups and contexts are that
# copy's types. The lazy group builds commands with Typer's own builders (typer.main), which
# is why pyproject asks for typer>=0.29.
from typer import _click as click
from typer.core import TyperCommand, TyperGroup

__all__ = ["LAZY_COMMANDS", "LazyCommand", "LazyGroup"]


@dataclass(frozen=True)
class LazyCommand:
    module: str  # imported on first use; its decorators register the command on the app
    help: str  # shown by `mlo --help` (a test checks it against the command's own)
    group: bool = False  # a sub-app (`mlo alert ...`) rather than one command


_PACKAGE = "mimir_limit_optimizer.cli."
LAZY_COMMANDS = MappingProxyType(
    {
        "run": LazyCommand(
            _PACKAGE + "service_cmds",
            "Run the service: a reconcile loop every updateInterval (dry-run unless --mode "
            "prod), with /metrics, /healthz and /readyz on 127.0.0.1.",
        ),
        "history": LazyCommand(
            _PACKAGE + "service_cmds", "List the revisions written to the target (newest first)."
        ),
        "rollback": LazyCommand(
            _PACKAGE + "service_cmds",
            "Restore a revision's content, byte for byte (an explicit operator action: it "
            "writes in any mode, and is audited as a user action).",
        ),
        "diff": LazyCommand(_PACKAGE + "service_cmds", "Unified diff between two revisions."),
        "audit": LazyCommand(
            _PACKAGE + "service_cmds", "Query the audit log (newest first); export as json or csv."
        ),
        "cost": LazyCommand(
            _PACKAGE + "cost_cmd",
            "Spend per tenant and team (today, month, year), the month-end forecast, budget "
            "usage, budget caps and cost recommendations (see docs/cost.md).",
        ),
        "alert": LazyCommand(
            _PACKAGE + "alert_cmd",
            "Check the alert channels (Slack, PagerDuty, email, ...).",
            group=True,
        ),
        "backtest": LazyCommand(
            _PACKAGE + "backtest_cmd",
            "Backtest our recommendations against p95 × 1.2 over 48 h (the original Go "
            "optimizer's formula), a KRR-like strategy, Mimir's defaults and \"keep current\".",
        ),
    }
)


class LazyGroup(TyperGroup):
    """TyperGroup whose LAZY_COMMANDS are built from their module on first use."""

    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = list(super().list_commands(ctx))
        return names + [name for name in LAZY_COMMANDS if name not in names]

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        tidy_metavars(self)
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            code = user_error_code(exc)
            if code is None:
                raise  # a bug: its traceback is what a bug report needs
            from mimir_limit_optimizer.cli.common import fail

            fail(str(exc), code=code)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = LAZY_COMMANDS.get(cmd_name)
        if lazy is not None and cmd_name not in self.commands:
            if self._listing:  # the help only needs the name and one line
                return TyperCommand(cmd_name, help=lazy.help, short_help=lazy.help)
            self.commands[cmd_name] = build_lazy(cmd_name, lazy)
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            tidy_metavars(command)
        return command


# Metavars instead of Python type names (`<list[str]>`, `<bool>`) in the help.
_METAVARS = MappingProxyType(
    {
        "<str>": "TEXT",
        "<list[str]>": "TEXT",
        "<path>": "PATH",
        "<list[path]>": "PATH",
        "<int>": "N",
        "<float>": "NUMBER",
    }
)


def tidy_metavars(command: click.Command) -> None:
    """Give every option of `command` (and of its subcommands) a readable metavar: nothing for
    flags, TEXT / PATH / N / NUMBER for values; choices keep their `<a|b>` list."""
    ctx = click.Context(command)
    for param in command.get_params(ctx):  # with --help
        if param.metavar is not None or param.param_type_name != "option":
            continue
        if getattr(param, "is_flag", False):
            param.metavar = ""
            continue
        display = getattr(param, "display_type", None)
        if display is None:
            continue
        shown = str(display(ctx)).lower()
        if shown in _METAVARS:
            param.metavar = _METAVARS[shown]
    for sub in getattr(command, "commands", {}).values():
        tidy_metavars(sub)


def build_lazy(name: str, lazy: LazyCommand) -> click.Command:
    """Import the command's module and build its click command from what it registered."""
    import typer.main

    from mimir_limit_optimizer.cli.app import app

    importlib.import_module(lazy.module)
    options: dict[str, Any] = {
        "pretty_exceptions_short": app.pretty_exceptions_short,
        "rich_markup_mode": app.rich_markup_mode,
    }
    if lazy.group:
        for group_info in app.registered_groups:
            if group_info.name == name:
                return typer.main.get_group_from_info(
                    group_info, suggest_commands=app.suggest_commands, **options
                )
    else:
        for info in app.registered_commands:
            callback = info.callback
            own = info.name or (
                typer.main.get_command_name(callback.__name__) if callback else None
            )
            if own == name:
                return typer.main.get_command_from_info(info, **options)
    raise LookupError(f"{lazy.module} did not register the command {name!r}")


# The adapters' and config's own error types: their messages say what is wrong and how to fix
# it, so a command that lets one escape still ends with that message, never a traceback.
# (module, class name, exit code); 1 = the data could not be read, 2 = a setting to fix.
_USER_ERRORS = (
    ("mimir_limit_optimizer.sources.prom_credentials", "SourceConfigError", 2),
    ("mimir_limit_optimizer.sources.current_limits", "CurrentLimitsError", 2),
    ("mimir_limit_optimizer.sources.base", "SourceError", 1),
    ("mimir_limit_optimizer.config.errors", "ConfigError", 2),
    ("mimir_limit_optimizer.targets.base", "TargetError", 2),
    ("mimir_limit_optimizer.store.errors", "StoreError", 2),
    ("mimir_limit_optimizer.web.server", "ServerStartError", 2),
    ("mimir_limit_optimizer.engine.overrides_yaml", "OverridesParseError", 2),
    ("mimir_limit_optimizer.engine.overrides", "OverridesValueError", 2),
    ("mimir_limit_optimizer.engine.tenants", "TenantPatternError", 2),
    ("mimir_limit_optimizer.catalogue.units", "DurationError", 2),
    ("mimir_limit_optimizer.controller.wiring", "WiringError", 2),
    ("mimir_limit_optimizer.k8s.errors", "KubeError", 2),
    ("mimir_limit_optimizer.backtest.recorded", "RecordedDataError", 1),
)


def user_error_code(exc: BaseException) -> int | None:
    """The exit code for a user's mistake (or unreachable data), None for anything else.
    Only modules already imported are looked at: an error of a module never loaded cannot
    have been raised, and importing it here would slow down every command."""
    import sys

    for module_name, class_name, code in _USER_ERRORS:
        module = sys.modules.get(module_name)
        kind = getattr(module, class_name, None) if module is not None else None
        if isinstance(kind, type) and isinstance(exc, kind):
            return code
    if isinstance(exc, UnicodeDecodeError):
        return 2
    return None
