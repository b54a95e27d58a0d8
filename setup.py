"""Builds the engine's compiled point passes (src/mimir_limit_optimizer/engine/_point_passes.c,
_demand_pass.c, _sort_pass.c and _point_passes.h); everything else about the package is in
pyproject.toml.

The extension is optional: where no C compiler is found, the package installs without it and
the engine takes its numpy paths, with the same results (engine/compiled.py). _sort_pass.c
calls numpy's own float32 sort through numpy's C API, whose headers come with numpy (a build
requirement in pyproject.toml)."""

import hashlib
import sys
from pathlib import Path

from setuptools import Extension, setup

try:
    import numpy
except ImportError:  # a build without isolation and without numpy: no extension then
    numpy = None

ENGINE = Path("src/mimir_limit_optimizer/engine")
# Every C source and header of the engine (`_*.c`, `_*.h`), by name: engine/compiled.py
# hashes the same files the same way.
SOURCES = sorted((Path(__file__).parent / ENGINE).glob("_*.[ch]"))
DIGEST = hashlib.sha256()
for path in SOURCES:
    DIGEST.update(path.name.encode() + b"\0" + path.read_bytes())

EXTENSIONS = [
    Extension(
        "mimir_limit_optimizer.engine._point_passes",
        sources=[str(ENGINE / p.name) for p in SOURCES if p.suffix == ".c"],
        depends=[str(ENGINE / p.name) for p in SOURCES if p.suffix == ".h"],
        include_dirs=[numpy.get_include()] if numpy is not None else [],
        # Which sources the module was built from: engine/compiled.py refuses a module
        # left over from an earlier build (a failed optional build keeps the last one).
        define_macros=[("SOURCE_SHA256", f'"{DIGEST.hexdigest()}"')],
        # -ffp-contract=off: one IEEE float32 operation per numpy step, never a fused
        # multiply-add, so that both paths give the same bits (GCC and clang flags).
        extra_compile_args=["-O3", "-ffp-contract=off"],
        optional=True,
    )
]
if numpy is None:
    print(
        "mimir-limit-optimizer: numpy is not installed where this builds (pip's build "
        "isolation installs it); the compiled point passes are left out and the engine takes "
        "its numpy paths",
        file=sys.stderr,
    )
setup(ext_modules=EXTENSIONS if numpy is not None else [])
