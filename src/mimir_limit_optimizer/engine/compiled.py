"""The engine's compiled point passes (`_point_passes.c`, built at install by setup.py), or
None where the package was installed without them (no C compiler then: the install goes on
without the extension, and every caller takes its numpy path, with the same results).

Callers look the module up here at each use (`compiled.point_passes()`), so that one switch
(`--numpy-passes` in bench/engine_scale.py) turns every pass back to numpy.

`fits` is what the passes read as they are: float32 arrays whose points lie contiguous and
aligned in each row; anything else takes the numpy path."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from types import ModuleType

import numpy as np

SOURCE = Path(__file__).with_name("_point_passes.c")


@functools.cache
def point_passes() -> ModuleType | None:
    """The module, once per process; None when it is missing or was built from another
    source than the one installed beside it (a failed rebuild keeps the last module built)."""
    try:
        from mimir_limit_optimizer.engine import _point_passes
    except ImportError:
        return None
    return _point_passes if built_from_this_source(_point_passes) else None


def fits(*arrays: object) -> bool:
    """(rows, points) float32 arrays the passes read in place: the points of a row adjacent,
    every point aligned (rows may be any whole number of points apart, reversed included)."""
    for array in arrays:
        if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.ndim != 2:
            return False
        if not array.flags.aligned or array.strides[1] != array.itemsize:
            return False
        if array.strides[0] % array.itemsize:
            return False
    return True


def built_from_this_source(module: ModuleType) -> bool:
    """Whether `module` was compiled from the source next to it (setup.py writes the
    source's SHA-256 into it): an extension left from an earlier build is not this one."""
    if not SOURCE.exists():  # installed from a wheel without its source: nothing to compare
        return True
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    return bool(getattr(module, "SOURCE_SHA256", None) == digest)
