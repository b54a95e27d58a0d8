"""The engine's compiled point passes (`_point_passes.c` and the other `_*_pass.c`, built at
install by setup.py), or None where the package was installed without them (no C compiler
then: the install goes on without the extension, and every caller takes its numpy path, with
the same results; built without numpy 2's headers, the module has no `sorted_percentiles`).
Loading reads the package's own C sources once, to check the module was built from them
(`built_from_this_source`).

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

HERE = Path(__file__).parent


@functools.cache
def point_passes() -> ModuleType | None:
    """The module, once per process; None when it is missing or was built from another
    source than the one installed beside it (a failed rebuild keeps the last module built)."""
    try:
        from mimir_limit_optimizer.engine import _point_passes
    except ImportError:
        return None
    return _point_passes if built_from_this_source(_point_passes) else None


def which_passes() -> str:
    """What the engine runs, for the service's first log line: "compiled", "compiled, numpy
    sort" (a module built without numpy 2's headers) or "numpy" (no module)."""
    module = point_passes()
    if module is None:
        return "numpy"
    return "compiled" if hasattr(module, "sorted_percentiles") else "compiled, numpy sort"


def fits(*arrays: object) -> bool:
    """(rows, points) float32 arrays the passes read in place: the points of a row adjacent,
    every point aligned (rows may be any whole number of points apart, reversed included)."""
    for array in arrays:
        if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.ndim != 2:
            return False
        # The address itself: numpy calls any empty array aligned, wherever it starts.
        if array.ctypes.data % array.itemsize or array.strides[1] != array.itemsize:
            return False
        if array.strides[0] % array.itemsize:
            return False
    return True


def sources_digest() -> str | None:
    """SHA-256 of the C sources and header beside this file (`_*.c`, `_*.h` by name, each
    name then its bytes), as setup.py computes it; None when they are not installed."""
    sources = sorted(HERE.glob("_*.[ch]"))
    if not sources:
        return None
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def built_from_this_source(module: ModuleType) -> bool:
    """Whether `module` was compiled from the sources beside it (setup.py writes their
    SHA-256 into it): an extension left from an earlier build is not this one."""
    digest = sources_digest()
    if digest is None:  # installed from a wheel without its sources: nothing to compare
        return True
    return bool(getattr(module, "SOURCE_SHA256", None) == digest)
