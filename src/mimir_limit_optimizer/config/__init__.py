"""Configuration: pydantic models and the loader that reports mistakes by file and line."""

from mimir_limit_optimizer.config.errors import ConfigError
from mimir_limit_optimizer.config.loader import LoadedConfig, load_config
from mimir_limit_optimizer.config.models import Config, Mode
from mimir_limit_optimizer.config.overlay import ENVIRONMENT_VARIABLES
from mimir_limit_optimizer.config.render import redacted_dump, render_config

__all__ = [
    "ENVIRONMENT_VARIABLES",
    "Config",
    "ConfigError",
    "LoadedConfig",
    "Mode",
    "load_config",
    "redacted_dump",
    "render_config",
]
