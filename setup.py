"""Builds the engine's compiled hour pass (src/mimir_limit_optimizer/engine/_hour_pass.c);
everything else about the package is in pyproject.toml.

The extension is optional: where no C compiler is found, the package installs without it and
the engine takes its numpy path, with the same results (engine/hourly.py)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mimir_limit_optimizer.engine._hour_pass",
            sources=["src/mimir_limit_optimizer/engine/_hour_pass.c"],
            # -ffp-contract=off: one IEEE float32 operation per numpy step, never a fused
            # multiply-add, so that both paths give the same bits (GCC and clang flags).
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,
        )
    ]
)
