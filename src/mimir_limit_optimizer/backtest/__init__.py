"""Backtests: replay history against recommendation strategies and score them.

Pure code (numpy; no network, no clock): `scenario` (files) -> `generate.build_case` or
`recorded.case_from_observations` (two collected Observations) -> `replay` per strategy
(`strategies`: ours and the baselines) -> `score` -> `suite.run_suite` (totals, Pareto,
JSON document) -> `plot.plot_png`. `mlo backtest` and bench/quality.py drive it.
"""
