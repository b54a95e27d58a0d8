"""Entry point of `mlo` / `mimir-limit-optimizer` (and `python -m mimir_limit_optimizer.cli`).

The service, cost, alert and backtest commands are imported on first use (cli/lazy.py), so
`mlo --help` does not pay for numpy, FastAPI, SQLAlchemy, Kubernetes or matplotlib."""

from __future__ import annotations

from mimir_limit_optimizer.cli.app import app


def main() -> None:
    app()
