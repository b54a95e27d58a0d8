"""Entry point of `mlo` / `mimir-limit-optimizer` (and `python -m mimir_limit_optimizer.cli`).

The service, cost, alert and backtest commands are imported on first use (cli/lazy.py), so
`mlo --help` does not pay for numpy, FastAPI, SQLAlchemy, Kubernetes or matplotlib."""

from __future__ import annotations

import os

from mimir_limit_optimizer.cli.app import app


def main() -> None:
    # Typer converts option values with pydantic, whose first use scans every installed
    # package's entry points for pydantic plugins (tens of ms at start-up). The optimizer uses
    # none; an operator who does can set the variable themselves.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    app()
