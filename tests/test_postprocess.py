"""Each post-processor of the engine, one table each: buffers, caps, clamps, never-lower,
deadband, step limits and readable rounding do exactly their one thing, and pass NaN through."""

from __future__ import annotations

import numpy as np
import pytest

from mimir_limit_optimizer.engine import postprocess as pp

NAN = float("nan")


def arr(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


@pytest.mark.parametrize(
    ("value", "buffer", "expected"),
    [(100.0, 20.0, 120.0), (100.0, 0.0, 100.0), (50.0, 100.0, 100.0), (NAN, 20.0, NAN)],
)
def test_add_buffer(value: float, buffer: float, expected: float) -> None:
    out = pp.add_buffer(arr(value), arr(buffer))
    np.testing.assert_allclose(out, arr(expected), equal_nan=True)


def test_cap_only_lowers_and_reports() -> None:
    out, hit = pp.cap(arr(10, 200, NAN), arr(100, 100, 100))
    np.testing.assert_allclose(out, arr(10, 100, NAN), equal_nan=True)
    assert hit.tolist() == [False, True, False]


@pytest.mark.parametrize(
    ("value", "expected", "low", "high"),
    [(5.0, 10.0, True, False), (50.0, 50.0, False, False), (500.0, 100.0, False, True)],
)
def test_clamp(value: float, expected: float, low: bool, high: bool) -> None:
    out, lo, hi = pp.clamp(arr(value), 10.0, 100.0)
    assert out[0] == expected
    assert (lo[0], hi[0]) == (low, high)


def test_clamp_keeps_nan() -> None:
    out, lo, hi = pp.clamp(arr(NAN), 10.0, 100.0)
    assert np.isnan(out[0]) and not lo[0] and not hi[0]


def test_keep_current_when_lower() -> None:
    out, hit = pp.keep_current_when_lower(arr(50, 150, 50), arr(100, 100, NAN))
    np.testing.assert_allclose(out, arr(100, 150, 50))
    assert hit.tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("value", "current", "percent", "expected", "kept"),
    [
        (104.0, 100.0, 5.0, 100.0, True),  # inside: unchanged
        (95.0, 100.0, 5.0, 100.0, True),  # inside below
        (106.0, 100.0, 5.0, 106.0, False),  # outside
        (80.0, 100.0, 5.0, 80.0, False),
        (104.0, 100.0, 0.0, 104.0, False),  # no deadband
        (5.0, 0.0, 5.0, 5.0, False),  # current 0: no relative band
    ],
)
def test_deadband(
    value: float, current: float, percent: float, expected: float, kept: bool
) -> None:
    out, hit = pp.deadband(arr(value), arr(current), percent)
    assert out[0] == expected
    assert bool(hit[0]) is kept


@pytest.mark.parametrize(
    ("value", "current", "expected", "raised", "lowered"),
    [
        (300.0, 100.0, 200.0, True, False),  # +100% max
        (150.0, 100.0, 150.0, False, False),
        (50.0, 100.0, 90.0, False, True),  # -10% max
        (95.0, 100.0, 95.0, False, False),
        (50.0, 0.0, 50.0, False, False),  # from 0 (unlimited): no step bound
        (50.0, NAN, 50.0, False, False),
    ],
)
def test_limit_step(
    value: float, current: float, expected: float, raised: bool, lowered: bool
) -> None:
    out, up, down = pp.limit_step(arr(value), arr(current), 100.0, 10.0)
    assert out[0] == pytest.approx(expected)
    assert (bool(up[0]), bool(down[0])) == (raised, lowered)


@pytest.mark.parametrize(
    ("value", "current", "integer", "expected"),
    [
        (12345.0, 1.0, True, 13000.0),  # up to 2 significant digits
        (12000.0, 1.0, True, 12000.0),  # already readable
        (0.37, 1.0, False, 0.37),
        (1.01, 5.0, False, 1.1),
        (9001.0, 10000.0, True, 9100.0),  # a step-limited lowering rounds up: toward current
        (10000.0, 10000.0, True, 10000.0),  # unchanged stays
        (123456789.0, 1.0, True, 100000000.0),  # clamped to max after rounding
        (NAN, 1.0, True, NAN),
    ],
)
def test_round_readable(value: float, current: float, integer: bool, expected: float) -> None:
    out = pp.round_readable(
        arr(value),
        arr(current),
        digits=2,
        minimum=0.0,
        maximum=1e8,
        integer=integer,
    )
    np.testing.assert_allclose(out, arr(expected), equal_nan=True)


def test_round_readable_integer_respects_fractional_bounds() -> None:
    out = pp.round_readable(
        arr(7.2),
        arr(1.0),
        digits=3,
        minimum=0.0,
        maximum=7.5,
        integer=True,
    )
    assert out[0] == 7.0
