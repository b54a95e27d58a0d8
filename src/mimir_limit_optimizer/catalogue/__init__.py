"""The limit catalogue: which Mimir per-tenant limits exist, how they are typed and measured.

Adding a limit is editing `data/<flavour>.yaml`, not code.
"""

from mimir_limit_optimizer.catalogue.load import CatalogueError, load_catalogue
from mimir_limit_optimizer.catalogue.model import (
    Catalogue,
    KnownKey,
    LimitSpec,
    LimitType,
    SignalKind,
    ValueKind,
)

__all__ = [
    "Catalogue",
    "CatalogueError",
    "KnownKey",
    "LimitSpec",
    "LimitType",
    "SignalKind",
    "ValueKind",
    "load_catalogue",
]
