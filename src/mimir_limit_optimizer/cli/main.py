"""Entry point of `mlo` / `mimir-limit-optimizer` (and `python -m mimir_limit_optimizer.cli`):
imports every command module so that each registers its commands on the one Typer app."""

from __future__ import annotations

from mimir_limit_optimizer.cli import alert_cmd, backtest_cmd, cost_cmd, service_cmds
from mimir_limit_optimizer.cli.app import app

COMMAND_MODULES = (service_cmds, cost_cmd, alert_cmd, backtest_cmd)


def main() -> None:
    app()
