"""Configuration: pydantic models and the loader that reports mistakes by file and line."""

from mimir_limit_optimizer.config.models import Config, Mode

__all__ = ["Config", "Mode"]
