"""The compiled hour pass (engine/_hour_pass.c) is built, and gives the same bits as the numpy
path it replaces: hour means and variability of rows with gaps, empty hours, zero hours,
magnitudes from 1e-3 to 1e12, at every kind of hour length (numpy's pairwise summation
changes shape at 8 and 128 terms), on views whose rows are not adjacent in memory. Arrays it
cannot read as they are go to the numpy path; the kernel itself refuses them, never reads out
of bounds. The engine's results against the whole-array reference are in
tests/test_engine_reference.py."""

from __future__ import annotations

import numpy as np
import pytest

from mimir_limit_optimizer.engine import hourly, spikes

PER_HOUR = [1, 2, 7, 8, 9, 12, 13, 16, 60, 127, 128, 129, 240, 257]


def _kernel():  # type: ignore[no-untyped-def]
    kernel = hourly.compiled_pass()
    if kernel is None:
        pytest.fail(
            "the compiled hour pass was not built: install a C compiler (Debian: gcc) and "
            "reinstall the package (make clean test)"
        )
    return kernel


def _rows(n: int, t: int, seed: int) -> np.ndarray:
    """(n, t) float32 usage: levels over 15 decades, noise up to 3x (deviations past the cap
    of 1), and rows with single gaps, an empty hour's worth of points, zeros, a zero start,
    no data at all, an infinite point."""
    rng = np.random.default_rng(seed)
    level = 10 ** rng.uniform(-3, 12, size=(n, 1))
    values = level * np.abs(1 + rng.uniform(0, 3, size=(n, 1)) * rng.standard_normal((n, t)))
    values = values.astype(np.float32)
    values[1::9, rng.integers(0, t)] = np.nan
    values[2::9, : t // 3] = np.nan
    values[3::9] = 0
    values[4::9, : t // 2] = 0
    values[5::9] = np.nan
    values[6::9, -1] = np.inf
    return values


def test_the_compiled_pass_is_built() -> None:
    assert callable(_kernel().hour_pass)


@pytest.mark.parametrize("per_hour", PER_HOUR)
def test_same_bits_as_the_numpy_path(per_hour: int) -> None:
    _kernel()
    hours = 30
    # Whole hours, and hours counted back from the last point with a part hour before them.
    for t in sorted({hours * per_hour, hours * per_hour + (per_hour + 1) // 2 * (per_hour > 1)}):
        values = _rows(40, t, seed=per_hour + t)
        got = hourly.means_and_variability(values, per_hour)
        want = hourly.means_and_variability(values, per_hour, compiled=False)
        assert got.means.shape == want.means.shape == (40, hours)
        np.testing.assert_array_equal(got.means, want.means)
        np.testing.assert_array_equal(got.variability, want.variability)
        assert np.isfinite(got.variability).sum() >= 20  # most rows have a value to compare


def test_same_bits_on_a_strided_view_and_into_a_given_grid() -> None:
    _kernel()
    wide = _rows(64, 2 * 2016, seed=5)
    view = wide[::2, 100 : 100 + 2016]  # rows 16 kB apart, not starting at the row's start
    grid = np.full((32, 168), -1, dtype=np.float32)
    got = hourly.means_and_variability(view, 12, out=grid)
    want = hourly.means_and_variability(np.ascontiguousarray(view), 12, compiled=False)
    assert got.means is grid
    np.testing.assert_array_equal(grid, want.means)
    np.testing.assert_array_equal(got.variability, want.variability)


def test_a_deviation_sum_with_rounding_to_tell_apart() -> None:
    """A row where the order of additions shows in the last bit: the kernel's sum is numpy's
    pairwise one, not a running sum (which the assertion on `running` proves differs)."""
    _kernel()
    rng = np.random.default_rng(11)
    values = (1 + rng.uniform(-0.9, 0.9, size=(1, 2016))).astype(np.float32)
    got = hourly.means_and_variability(values, 12)
    want = hourly.means_and_variability(values, 12, compiled=False)
    np.testing.assert_array_equal(got.variability, want.variability)
    blocks = values.reshape(1, 168, 12)
    deviation = np.abs(np.clip(blocks / got.means[:, :, None] - np.float32(1), -1, 1))
    running = np.float32(0)
    for x in deviation.ravel():
        running = np.float32(running + x)
    pairwise = deviation.reshape(1, -1).sum(axis=1)[0]
    assert running != pairwise  # the data tells the two orders apart
    assert got.variability[0] == hourly.MAD_TO_SIGMA * float(pairwise) / 2016


@pytest.mark.parametrize("compiled", [True, False])
def test_no_rows_and_no_whole_hour(compiled: bool) -> None:
    none = hourly.means_and_variability(np.ones((0, 2016), np.float32), 12, compiled=compiled)
    assert none.means.shape == (0, 168) and none.variability.shape == (0,)
    short = hourly.means_and_variability(np.ones((3, 11), np.float32), 12, compiled=compiled)
    assert short.means.shape == (3, 0)
    assert np.isnan(short.variability).all()  # no point counts


@pytest.mark.parametrize(
    "values",
    [
        np.ones((4, 24), dtype=np.float64),  # float64
        np.ones((24, 4), dtype=np.float32).T,  # columns not contiguous
    ],
    ids=["float64", "transposed"],
)
def test_arrays_it_cannot_read_take_the_numpy_path(values: np.ndarray) -> None:
    got = hourly.means_and_variability(values, 12)
    np.testing.assert_array_equal(got.means, np.ones((4, 2), dtype=np.float32))
    np.testing.assert_array_equal(got.variability, np.zeros(4))


@pytest.mark.parametrize(
    ("values", "means", "totals", "message"),
    [
        (np.ones((4, 24)), np.empty((4, 2), np.float32), np.empty(4, np.float32), "values"),
        (
            np.ones((24, 4), np.float32).T,
            np.empty((4, 2), np.float32),
            np.empty(4, np.float32),
            "values",
        ),
        (
            np.ones((4, 24), np.float32),
            np.empty((4, 3), np.float32),
            np.empty(4, np.float32),
            "rows, hours",
        ),
        (
            np.ones((4, 24), np.float32),
            np.empty((4, 2), np.float32),
            np.empty(3, np.float32),
            "totals",
        ),
        (
            np.ones((4, 25), np.float32),
            np.empty((4, 2), np.float32),
            np.empty(4, np.float32),
            "whole hours",
        ),
        (
            np.ones((4, 24), np.float32),
            np.empty((4, 2), np.float64),
            np.empty(4, np.float32),
            "means",
        ),
    ],
    ids=["float64", "transposed", "means-shape", "totals-shape", "partial-hour", "means-f64"],
)
def test_the_kernel_refuses_what_it_cannot_read(
    values: np.ndarray, means: np.ndarray, totals: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _kernel().hour_pass(values, 12, means, totals)


def test_the_kernel_refuses_a_read_only_output() -> None:
    means = np.empty((4, 2), np.float32)
    means.flags.writeable = False
    with pytest.raises((ValueError, BufferError)):
        _kernel().hour_pass(np.ones((4, 24), np.float32), 12, means, np.empty(4, np.float32))


@pytest.mark.parametrize("per_hour", [1, 5, 12, 60])
def test_suspect_blocks_read_by_the_kernel_give_the_gathers_answer(
    per_hour: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spike filter's suspect blocks: the compiled read and numpy's gather find the same
    rows, with bounds just under and over the points, NaN points and infinite ones."""
    kernel = _kernel()
    monkeypatch.setattr(spikes, "_SPARSE_SHARE", 1.0)  # block by block, however many
    reads: list[int] = []

    class Counted:
        def blocks_above(self, *args: object) -> None:
            reads.append(len(args[2]))  # type: ignore[arg-type]
            kernel.blocks_above(*args)

    monkeypatch.setattr(spikes, "compiled_pass", Counted)
    rng = np.random.default_rng(per_hour)
    t = 48 * per_hour + per_hour // 2  # a partial block at the end (but for one point)
    values = _rows(300, t, seed=per_hour)
    blocks = -(-t // per_hour)
    full = hourly.means_of(values[:, : 48 * per_hour], per_hour)
    means = np.nan_to_num(
        np.pad(full, ((0, 0), (0, blocks - 48)), mode="edge"), nan=1.0, posinf=1.0
    )
    bound = (means * rng.uniform(0.5, 3.0, size=(300, blocks))).astype(np.float32)
    bound[::5] = np.float32(np.inf)
    bound[7::11, 3] = np.nextafter(values[7::11, 3 * per_hour], np.float32(np.inf))  # just over
    rows = np.arange(0, 300, 2, dtype=np.int64)
    row_max = np.fmax.reduce(values[rows], axis=1).astype(np.float64)
    got = spikes._suspects_above(values, bound, per_hour, rows, row_max)
    want = spikes._suspects_above(values, bound, per_hour, rows, row_max, compiled=False)
    np.testing.assert_array_equal(got, want)
    assert len(reads) == 1 and reads[0] > len(rows)  # the kernel read the blocks, once
    assert 0 < got.sum() < len(rows)  # some rows are above, some not


def test_the_kernel_refuses_a_block_out_of_range() -> None:
    values = np.ones((4, 24), np.float32)
    bounds = np.zeros(2, np.float32)
    out = np.empty(2, np.bool_)
    for rows, blocks in (([0, 4], [0, 1]), ([0, 1], [0, 2]), ([-1, 0], [0, 0])):
        with pytest.raises(ValueError, match="out of range"):
            _kernel().blocks_above(
                values, 12, np.array(rows), np.array(blocks, dtype=np.int64), bounds, out
            )
    with pytest.raises(ValueError, match="int64"):
        _kernel().blocks_above(
            values, 12, np.array([0, 1], np.int32), np.array([0, 1]), bounds, out
        )
