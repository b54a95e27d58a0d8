"""Builds the engine's compiled point passes (src/mimir_limit_optimizer/engine/_point_passes.c);
everything else about the package is in pyproject.toml.

The extension is optional: where no C compiler is found, the package installs without it and
the engine takes its numpy paths, with the same results (engine/compiled.py)."""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "src/mimir_limit_optimizer/engine/_point_passes.c"
# Which source the module was built from: engine/compiled.py refuses a module left over from
# an earlier build (a failed optional build keeps the last one that worked).
DIGEST = hashlib.sha256((Path(__file__).parent / SOURCE).read_bytes()).hexdigest()

setup(
    ext_modules=[
        Extension(
            "mimir_limit_optimizer.engine._point_passes",
            sources=[SOURCE],
            define_macros=[("SOURCE_SHA256", f'"{DIGEST}"')],
            # -ffp-contract=off: one IEEE float32 operation per numpy step, never a fused
            # multiply-add, so that both paths give the same bits (GCC and clang flags).
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,
        )
    ]
)
