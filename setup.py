"""Builds the engine's compiled point passes (src/mimir_limit_optimizer/engine/_point_passes.c,
the other `_*_pass.c` and _point_passes.h); everything else about the package is in
pyproject.toml.

The extension is optional: where no C compiler is found, the package installs without it and
the engine takes its numpy paths, with the same results (engine/compiled.py). _sort_pass.c
calls numpy's own float32 sort through numpy's C API, whose headers come with numpy 2 (a build
requirement in pyproject.toml); built without them (no build isolation, numpy 1.x or none),
the module leaves the sort pass out and keeps the others."""

import hashlib
import sys
from pathlib import Path

from setuptools import Extension, setup

try:
    import numpy
except ImportError:  # a build without isolation and without numpy
    numpy = None

# The sort pass needs numpy 2's headers (PyDataType_GetArrFuncs); the module they build loads
# under numpy 1.x as well (their default target is the 1.23 API).
SORT_PASS = numpy is not None and int(numpy.__version__.split(".")[0]) >= 2

ENGINE = Path("src/mimir_limit_optimizer/engine")
# Every C source and header of the engine (`_*.c`, `_*.h`), by name: engine/compiled.py
# hashes the same files the same way.
SOURCES = sorted((Path(__file__).parent / ENGINE).glob("_*.[ch]"))
DIGEST = hashlib.sha256()
for path in SOURCES:
    DIGEST.update(path.name.encode() + b"\0" + path.read_bytes())

if not SORT_PASS:
    print(
        "mimir-limit-optimizer: numpy 2 is not installed where this builds (pip's build "
        "isolation installs it); the compiled sort pass is left out, the engine sorts with "
        "numpy there (the same results)",
        file=sys.stderr,
    )
setup(
    ext_modules=[
        Extension(
            "mimir_limit_optimizer.engine._point_passes",
            sources=[
                str(ENGINE / p.name)
                for p in SOURCES
                if p.suffix == ".c" and (SORT_PASS or p.name != "_sort_pass.c")
            ],
            depends=[str(ENGINE / p.name) for p in SOURCES if p.suffix == ".h"],
            include_dirs=[numpy.get_include()] if SORT_PASS else [],
            # Which sources the module was built from: engine/compiled.py refuses a module
            # left over from an earlier build (a failed optional build keeps the last one).
            # All of them, the sort pass's too: the digest is of the sources installed.
            define_macros=[("SOURCE_SHA256", f'"{DIGEST.hexdigest()}"')]
            + ([("MLO_SORT_PASS", "1")] if SORT_PASS else []),
            # -ffp-contract=off: one IEEE float32 operation per numpy step, never a fused
            # multiply-add, so that both paths give the same bits (GCC and clang flags).
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,
        )
    ]
)
