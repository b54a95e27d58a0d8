"""Backtests: replay history against recommendation strategies and score them."""
