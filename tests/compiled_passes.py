"""What the tests of the compiled point passes share: a bit-for-bit comparison, the module
(or a clear failure where it was not built), and a spy that counts calls to each pass."""

from __future__ import annotations

import collections
import types
from typing import Any

import numpy as np
import pytest

from mimir_limit_optimizer.engine import compiled

PASSES = ("hour_pass", "rows_above", "demand_pass", "sorted_percentiles", "centred_means")


def same_bits(got: Any, want: Any) -> None:
    """Equal bit for bit: assert_array_equal takes -0.0 for 0.0 and any NaN for any NaN."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.dtype.kind == "f":
        bits = np.dtype(f"u{got.dtype.itemsize}")
        np.testing.assert_array_equal(got.view(bits), want.view(bits))
    else:
        np.testing.assert_array_equal(got, want)


def kernel() -> Any:
    module = compiled.point_passes()
    if module is None:
        pytest.fail(
            "the compiled point passes were not built from engine/_point_passes.c: install a "
            "C compiler (Debian: gcc) and reinstall the package (make clean test)"
        )
    return module


def spy_on_passes(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Calls to each compiled pass, counted (the passes themselves still run)."""
    module = kernel()
    counted: collections.Counter[str] = collections.Counter()

    def spy(name: str) -> Any:
        def call(*args: Any) -> Any:
            counted[name] += 1
            return getattr(module, name)(*args)

        return call

    spies = types.SimpleNamespace(**{name: spy(name) for name in PASSES})
    monkeypatch.setattr(compiled, "point_passes", lambda: spies)
    return counted
