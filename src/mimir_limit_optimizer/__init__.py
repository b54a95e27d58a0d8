"""Mimir Limit Optimizer: per-tenant Grafana Mimir limits from real usage."""

__version__ = "0.1.0"
