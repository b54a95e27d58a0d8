"""The compiled centred mean (engine/_centred_pass.c) gives the same bits as the numpy path it
replaces (engine/stats.py, `centred_nanmean`, the spike filter's hourly baseline): rows with
single gaps, long gaps, windows with no point at all, infinities, signed zeros, windows from
1 to wider than the row, on views whose rows are not adjacent or run backwards. A spy checks
that each comparison ran the kernel; arrays it cannot read go to numpy, and the kernel
refuses what it cannot read or would overwrite while reading."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import pytest

from mimir_limit_optimizer.engine import stats
from tests.compiled_passes import kernel, same_bits, spy_on_passes


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    return spy_on_passes(monkeypatch)


def _grid(n: int, t: int, seed: int) -> np.ndarray:
    """(n, t) float32 hour means over 12 decades, with every kind of gap and edge value."""
    rng = np.random.default_rng(seed)
    level = 10 ** rng.uniform(-3, 9, size=(n, 1))
    values = (level * rng.lognormal(0, 1, size=(n, t))).astype(np.float32)
    values[1::9, rng.integers(0, t)] = np.nan  # one missing hour
    values[2::9, : t // 2] = np.nan  # a late start: windows without a point
    values[3::9] = np.nan  # no data
    values[4::9, ::3] = np.nan  # every third hour
    values[5::9, -2:] = np.inf
    values[4::9, min(1, t - 1)] = np.inf  # an infinity in a row with gaps: a value, not a gap
    values[6::9, ::2] = -0.0
    values[7::9, 1::2] = 0.0
    values[8::9, t // 3] = -np.inf
    values[0::18, ::2] = np.nan  # gaps between negative zeros: a sum of zeros only
    values[0::18, 1::2] = -0.0
    return values


@pytest.mark.parametrize("window", [1, 3, 7, 25])
@pytest.mark.parametrize("t", [1, 5, 168])
def test_same_bits_as_the_numpy_path(window: int, t: int, calls: collections.Counter[str]) -> None:
    values = _grid(45, t, seed=window * 1000 + t)
    got = stats.centred_nanmean(values, window)
    want = stats.centred_nanmean(values, window, compiled=False)
    same_bits(got, want)
    assert np.isnan(got).sum() >= 5 * t  # the rows without data at least
    assert np.isfinite(got).sum() >= 15 * t
    assert calls["centred_means"] == 1


def test_same_bits_on_views(calls: collections.Counter[str]) -> None:
    wide = _grid(36, 400, seed=4)
    for view in (wide[::2, 10:178], wide[::-1, :168], wide[::-3]):
        same_bits(stats.centred_nanmean(view, 7), stats.centred_nanmean(view, 7, compiled=False))
    assert calls["centred_means"] == 3


def test_a_gap_is_counted_out_not_read_as_zero(calls: collections.Counter[str]) -> None:
    """The arithmetic the comparison rests on, by hand: a gap is not a zero hour."""
    values = np.array([[2.0, np.nan, 4.0, 6.0], [2.0, 0.0, 4.0, 6.0]], dtype=np.float32)
    got = stats.centred_nanmean(values, 3)
    np.testing.assert_array_equal(got[0], [2.0, 3.0, 5.0, 5.0])
    np.testing.assert_array_equal(got[1], np.array([1.0, 2.0, 10 / 3, 5.0], dtype=np.float32))
    assert calls["centred_means"] == 1


@pytest.mark.parametrize("compiled", [True, False])
def test_a_window_wider_than_the_row_is_the_whole_row(
    compiled: bool, calls: collections.Counter[str]
) -> None:
    """A baseline window of years on a week of hours (a setting gone wrong): the window that
    covers the whole row from every column, 2 x T + 1, gives the same bits; nothing is
    allocated for the rest of it."""
    values = _grid(27, 40, seed=8)
    whole = stats.centred_nanmean(values, 81, compiled=False)
    for window in (83, 2**61 + 1):
        same_bits(stats.centred_nanmean(values, window, compiled=compiled), whole)
    assert calls["centred_means"] == (2 if compiled else 0)
    if compiled:  # the kernel itself, handed a huge window
        out = np.empty_like(values)
        kernel().centred_means(values, 2**61 + 1, out)
        same_bits(out, whole)


@pytest.mark.parametrize("window", [0, -1, 2, 8])
def test_an_even_or_empty_window_is_refused(window: int) -> None:
    """An even window is not centred (its sums would cover one point less than its edge
    counts): refused by both paths, as by the kernel."""
    values = np.ones((2, 10), np.float32)
    for compiled in (True, False):
        with pytest.raises(ValueError, match="odd window"):
            stats.centred_nanmean(values, window, compiled=compiled)
    with pytest.raises(ValueError, match="odd number"):
        kernel().centred_means(values, window, np.empty_like(values))


def test_float64_takes_the_numpy_path(calls: collections.Counter[str]) -> None:
    values = _grid(18, 30, seed=1).astype(np.float64)
    got = stats.centred_nanmean(values, 7)
    assert got.dtype == np.float64
    same_bits(got, stats.centred_nanmean(values, 7, compiled=False))
    assert calls["centred_means"] == 0


@pytest.mark.parametrize(
    ("changed", "window", "message"),
    [
        ({"values": np.ones((4, 24))}, 7, "values"),
        ({"values": np.ones((24, 4), np.float32).T}, 7, "values"),
        ({"out": np.empty((4, 23), np.float32)}, 7, "shape of values"),
        ({"out": np.empty((4, 24))}, 7, "out"),
        ({}, 0, "window"),
        ({}, 4, "window"),
    ],
    ids=["values-f64", "transposed", "out-shape", "out-f64", "window-0", "window-even"],
)
def test_the_kernel_refuses_what_it_cannot_read(
    changed: dict[str, Any], window: int, message: str
) -> None:
    arrays = {"values": np.ones((4, 24), np.float32), "out": np.empty((4, 24), np.float32)}
    arrays.update(changed)
    with pytest.raises(ValueError, match=message):
        kernel().centred_means(arrays["values"], window, arrays["out"])


def test_an_output_over_the_values_is_refused() -> None:
    values = np.arange(4 * 24, dtype=np.float32).reshape(4, 24)
    with pytest.raises(ValueError, match="shares memory"):
        kernel().centred_means(values, 3, values)
    with pytest.raises(ValueError, match="shares memory"):
        kernel().centred_means(values[:2], 3, values[1:3])
    np.testing.assert_array_equal(values.ravel(), np.arange(4 * 24))  # nothing was written
    read_only = np.empty((4, 24), np.float32)
    read_only.flags.writeable = False
    with pytest.raises((ValueError, BufferError)):
        kernel().centred_means(values, 3, read_only)
