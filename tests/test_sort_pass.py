"""The compiled sort pass (engine/_sort_pass.c) gives the same bits as the numpy path it
replaces (engine/stats.py, `_sorted_chunks`): every row's count of finite points and its
percentiles, for rows with gaps, no data, infinities, negative values, both zeros, ties,
one point, on views whose rows are not adjacent or run backwards. With the hour pass in the
same sweep (engine/hourly.py, `sorted_with_hours`), the same bits as the sort and the hour
pass made apart. A spy checks that each comparison ran the kernel; arrays it cannot read go
to numpy, and the kernel refuses what it cannot read or would overwrite while reading."""

from __future__ import annotations

import collections
import types
from typing import Any

import numpy as np
import pytest

from mimir_limit_optimizer.engine import compiled as compiled_passes
from mimir_limit_optimizer.engine import hourly, stats
from tests.compiled_passes import kernel, same_bits, spy_on_passes

QS = [0.0, 1.0, 33.3, 50.0, 95.0, 99.0, 99.5, 100.0]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    return spy_on_passes(monkeypatch)


def _rows(n: int, t: int, seed: int) -> np.ndarray:
    """(n, t) float32: levels over 15 decades with noise, and rows with single gaps, a gap a
    third long, no data, infinities both ways, negative values, zeros of both signs mixed
    with positives and negatives, long runs of ties."""
    rng = np.random.default_rng(seed)
    level = 10 ** rng.uniform(-3, 12, size=(n, 1))
    values = (level * (1 + rng.standard_normal((n, t)))).astype(np.float32)
    values[1::11, rng.integers(0, t)] = np.nan
    values[2::11, : t // 3] = np.nan
    values[3::11] = np.nan
    values[4::11, -1] = np.inf
    values[4::11, 0] = -np.inf
    values[5::11] = -np.abs(values[5::11])
    values[6::11, ::2] = -0.0
    values[6::11, 1::4] = 0.0
    values[7::11] = np.round(values[7::11] / level[7::11])  # a few distinct values, many ties
    values[8::11, : t // 2] = 0.0
    return values


def _compare(values: np.ndarray, qs: list[float]) -> None:
    got_counts, got = stats._sorted_chunks(values, qs)
    want_counts, want = stats._sorted_chunks(values, qs, compiled=False)
    same_bits(got_counts, want_counts)
    assert len(got) == len(want) == len(qs)
    for mine, numpys in zip(got, want, strict=True):
        same_bits(mine, numpys)


@pytest.mark.parametrize("t", [1, 2, 3, 7, 24, 288, 2016])
def test_same_bits_as_the_numpy_path(t: int, calls: collections.Counter[str]) -> None:
    values = _rows(66, t, seed=t)
    _compare(values, QS)
    counts, found = stats._sorted_chunks(values, QS)
    assert (counts == 0).sum() >= 6 and (counts == t).sum() >= 30  # rows of every kind
    assert np.isfinite(found[3]).sum() >= 40
    assert calls["sorted_percentiles"] == 2


def test_same_bits_on_views(calls: collections.Counter[str]) -> None:
    """The last day's columns of a week (rows 8 kB apart, 1.1 kB read from each), every
    other row, rows backwards."""
    week = _rows(44, 2016, seed=3)
    for view in (week[:, -288:], week[::2], week[::-1], week[::-3, 100:400]):
        _compare(view, QS)
    assert calls["sorted_percentiles"] == 4


def test_the_zeros_sign_never_shows_in_a_percentile(calls: collections.Counter[str]) -> None:
    """-0.0 and 0.0 are equal to a sort, which may put either first: interpolating between
    two zeros gives +0.0 either way, so which one came first cannot change a bit."""
    values = np.array([[-0.0, 0.0, -0.0, 0.0], [-0.0, -0.0, -0.0, -0.0]], dtype=np.float32)
    _, found = stats._sorted_chunks(values, QS)
    for column in found:
        same_bits(column, np.zeros(2))
    assert calls["sorted_percentiles"] == 1


def test_sorted_rows_read_through_the_kernel(calls: collections.Counter[str]) -> None:
    values = _rows(33, 2016, seed=9)
    got = stats.SortedRows(values, only=[50.0, 95.0])
    want = stats.SortedRows(values, only=[50.0, 95.0], compiled=False)
    same_bits(got.counts, want.counts)
    for mine, numpys in zip(
        got.percentiles([95.0, 50.0]), want.percentiles([95.0, 50.0]), strict=True
    ):
        same_bits(mine, numpys)
    # One asked for later: the values sorted whole, as before.
    same_bits(got.percentile(99.0), stats.SortedRows(values).percentile(99.0))
    assert calls["sorted_percentiles"] == 1


@pytest.mark.parametrize(
    "values",
    [
        np.linspace(0, 1, 4 * 24).reshape(4, 24),  # float64
        np.linspace(0, 1, 4 * 24, dtype=np.float32).reshape(24, 4).T,  # points not adjacent
    ],
    ids=["float64", "transposed"],
)
def test_arrays_it_cannot_read_take_the_numpy_path(
    values: np.ndarray, calls: collections.Counter[str]
) -> None:
    counts, found = stats._sorted_chunks(values, [50.0, 100.0])
    ordered = np.sort(values.astype(np.float32), axis=1).astype(np.float64)
    np.testing.assert_array_equal(counts, [values.shape[1]] * 4)
    np.testing.assert_array_equal(found[1], ordered[:, -1])
    assert calls["sorted_percentiles"] == 0


def _args(**changed: Any) -> list[Any]:
    arrays: dict[str, Any] = {
        "values": np.ones((4, 24), np.float32),
        "qs": np.array([50.0, 100.0]),
        "counts": np.empty(4, np.int64),
        "found": np.empty(8),
    }
    arrays.update(changed)
    return [arrays["values"], arrays["qs"], arrays["counts"], arrays["found"]]


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"values": np.ones((4, 24))}, "values"),
        ({"values": np.ones((24, 4), np.float32).T}, "values"),
        ({"qs": np.array([50.0, 101.0])}, "qs\\[1\\]: a percentile from 0 to 100"),
        ({"qs": np.array([-1.0, 50.0])}, "qs\\[0\\]"),
        ({"qs": np.array([np.nan, 50.0])}, "qs\\[0\\]"),
        ({"qs": np.array([50, 100], np.float32)}, "qs"),
        ({"counts": np.empty(4, np.int32)}, "counts"),
        ({"counts": np.empty(3, np.int64)}, "counts"),
        ({"found": np.empty(7)}, "found"),
        ({"found": np.empty((2, 4))}, "found"),
    ],
    ids=[
        "values-f64",
        "transposed",
        "q-over-100",
        "q-negative",
        "q-nan",
        "qs-f32",
        "counts-i32",
        "counts-short",
        "found-short",
        "found-2d",
    ],
)
def test_the_kernel_refuses_what_it_cannot_read(changed: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kernel().sorted_percentiles(*_args(**changed))


def test_an_output_over_the_values_is_refused() -> None:
    """Outputs are written while later rows are still to be read: one sharing the values'
    bytes would change them under the sort."""
    raw = np.ones(4 * 24 + 8, np.float32)
    values = raw[: 4 * 24].reshape(4, 24)
    counts = raw[-8:].view(np.int64)  # not overlapping: accepted
    kernel().sorted_percentiles(values, np.array([50.0]), counts, np.empty(4))
    np.testing.assert_array_equal(counts, [24] * 4)
    overlapping = raw[16:24].view(np.int64)
    with pytest.raises(ValueError, match="shares memory"):
        kernel().sorted_percentiles(values, np.array([50.0]), overlapping, np.empty(4))
    found = raw[:8].view(np.float64)
    with pytest.raises(ValueError, match="shares memory"):
        kernel().sorted_percentiles(values, np.array([50.0]), np.empty(4, np.int64), found)
    np.testing.assert_array_equal(values, 1.0)  # nothing was written


def test_outputs_over_qs_reversed_values_or_each_other_are_refused() -> None:
    """qs are read again for every row; values read backwards span their bytes below the
    first row; two outputs over each other would overwrite one another."""
    values = np.ones((4, 24), np.float32)
    qs = np.array([50.0, 100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="shares memory"):
        kernel().sorted_percentiles(values, qs[:2], np.empty(4, np.int64), qs)
    raw = np.ones(8 * 24, np.float32)
    backwards = raw.reshape(8, 24)[::-1][:4]  # rows 7, 6, 5, 4: bytes from row 4 to row 7
    inside = raw.reshape(8, 24)[5, :8].view(np.int64)
    with pytest.raises(ValueError, match="shares memory"):
        kernel().sorted_percentiles(backwards, qs[:1], inside, np.empty(4))
    below = raw.reshape(8, 24)[1, :8].view(np.int64)  # under the reversed rows: accepted
    kernel().sorted_percentiles(backwards, qs[:1], below, np.empty(4))
    np.testing.assert_array_equal(below, [24] * 4)
    shared = np.empty(8)
    with pytest.raises(ValueError, match="another output"):
        kernel().sorted_percentiles(values, qs[:2], shared[:4].view(np.int64), shared)
    grid, totals = np.empty((4, 2), np.float32), np.empty(4, np.float32)
    with pytest.raises(ValueError, match="another output"):
        kernel().sorted_percentiles(
            values, qs[:1], np.empty(4, np.int64), np.empty(4), 12, grid, grid.ravel()[:4]
        )
    kernel().sorted_percentiles(
        values, qs[:1], np.empty(4, np.int64), np.empty(4), 12, grid, totals
    )
    np.testing.assert_array_equal(grid, 1.0)


def test_a_percentile_of_minus_zero_is_that_of_zero(calls: collections.Counter[str]) -> None:
    """q = -0.0 (a YAML `-0`) would make frac -0.0, and the result the sign of whichever zero
    the sort put first: both paths take it as 0.0."""
    rng = np.random.default_rng(0)
    values = rng.choice(np.array([-0.0, 0.0, 1.0], np.float32), size=(400, 6))
    for compiled in (True, False):
        _, (low,) = stats._sorted_chunks(values, [-0.0], compiled=compiled)
        _, (zero,) = stats._sorted_chunks(values, [0.0], compiled=compiled)
        same_bits(low, zero)
        assert not np.signbit(low).any()
    assert calls["sorted_percentiles"] == 2


def test_a_module_without_the_sort_pass_sorts_with_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Built without numpy 2's headers, the module has every pass but the sort pass: the sort
    takes numpy's path, the hour pass stays compiled."""
    module = kernel()
    used: list[str] = []

    def hour_pass(*args: Any) -> None:
        used.append("hour_pass")
        module.hour_pass(*args)

    monkeypatch.setattr(
        compiled_passes, "point_passes", lambda: types.SimpleNamespace(hour_pass=hour_pass)
    )
    values = _rows(22, 24 * 12, seed=6)
    grid = np.empty((22, 24), np.float32)
    rows, got = hourly.sorted_with_hours(values, QS, 12, grid)
    want = stats.SortedRows(values, only=QS, compiled=False)
    for mine, numpys in zip(rows.percentiles(QS), want.percentiles(QS), strict=True):
        same_bits(mine, numpys)
    same_bits(got.variability, hourly.means_and_variability(values, 12, compiled=False).variability)
    assert used == ["hour_pass"]


def test_read_only_inputs_are_read_and_read_only_outputs_refused() -> None:
    values = np.arange(4 * 24, dtype=np.float32).reshape(4, 24)
    qs = np.array([50.0, 100.0])
    values.flags.writeable = qs.flags.writeable = False
    counts, found = np.empty(4, np.int64), np.empty(8)
    kernel().sorted_percentiles(values, qs, counts, found)
    np.testing.assert_array_equal(found[4:], values[:, -1])
    for output in (counts, found):
        output.flags.writeable = False
        with pytest.raises((ValueError, BufferError)):
            kernel().sorted_percentiles(values, qs, counts, found)
        output.flags.writeable = True


def test_no_rows_no_points_no_percentiles() -> None:
    empty = np.empty(0)
    kernel().sorted_percentiles(
        np.ones((0, 24), np.float32), np.array([50.0]), np.empty(0, np.int64), empty
    )
    counts = np.full(3, -1, np.int64)
    kernel().sorted_percentiles(np.ones((3, 0), np.float32), np.array([50.0]), counts, np.empty(3))
    np.testing.assert_array_equal(counts, 0)
    counts[...] = -1
    kernel().sorted_percentiles(np.ones((3, 5), np.float32), np.empty(0), counts, empty)
    np.testing.assert_array_equal(counts, 5)


# --- the sort and the hour pass in one sweep --------------------------------------------


@pytest.mark.parametrize("per_hour", [1, 12, 13, 60])
def test_one_sweep_gives_the_sort_and_the_hour_pass_made_apart(
    per_hour: int, calls: collections.Counter[str]
) -> None:
    values = _rows(55, 24 * per_hour, seed=per_hour)
    values[9::11, :per_hour] = 0.0  # an hour whose mean is 0: done again, counting what is there
    grid = np.full((55, 24), -1, np.float32)
    rows, got = hourly.sorted_with_hours(values, QS, per_hour, grid)
    apart = stats.SortedRows(values, only=QS, compiled=False)
    want = hourly.means_and_variability(values, per_hour, compiled=False)
    assert got.means is grid
    same_bits(grid, want.means)
    same_bits(got.variability, want.variability)
    assert np.isfinite(got.variability).sum() >= 20 and np.isnan(got.variability).sum() >= 5
    same_bits(rows.counts, apart.counts)
    for mine, numpys in zip(rows.percentiles(QS), apart.percentiles(QS), strict=True):
        same_bits(mine, numpys)
    assert calls["sorted_percentiles"] == 1 and calls["hour_pass"] == 0


@pytest.mark.parametrize(
    ("t", "dtype", "passes"),
    [
        (24 * 12 + 5, np.float32, {"sorted_percentiles": 1, "hour_pass": 1}),
        (24 * 12, np.float64, {}),
    ],
    ids=["part-hour", "float64"],
)
def test_what_one_sweep_cannot_do_is_done_apart(
    t: int, dtype: Any, passes: dict[str, int], calls: collections.Counter[str]
) -> None:
    """Values that are not whole hours: the sort, then the hour pass over the whole hours
    counted back from the last point; float64: both in numpy."""
    values = _rows(22, t, seed=1).astype(dtype)
    grid = np.empty((22, 24), np.float32)
    rows, got = hourly.sorted_with_hours(values, QS, 12, grid)
    apart = stats.SortedRows(values, only=QS, compiled=False)
    want = hourly.means_and_variability(values, 12, compiled=False)
    same_bits(grid, want.means)
    same_bits(got.variability, want.variability)
    for mine, numpys in zip(rows.percentiles(QS), apart.percentiles(QS), strict=True):
        same_bits(mine, numpys)
    assert dict(calls) == passes


def test_a_grid_of_other_hours_is_refused(calls: collections.Counter[str]) -> None:
    with pytest.raises(ValueError, match="rows, hours"):
        hourly.sorted_with_hours(
            _rows(4, 24 * 12, seed=2), [50.0], 12, np.empty((4, 23), np.float32)
        )


def test_the_kernel_refuses_hour_outputs_it_cannot_fill() -> None:
    values, qs = np.ones((4, 24), np.float32), np.array([50.0])
    counts, found = np.empty(4, np.int64), np.empty(4)
    with pytest.raises(ValueError, match="rows, hours"):
        kernel().sorted_percentiles(
            values, qs, counts, found, 12, np.empty((4, 3), np.float32), np.empty(4, np.float32)
        )
    with pytest.raises(ValueError, match="whole hours"):
        kernel().sorted_percentiles(
            values, qs, counts, found, 5, np.empty((4, 4), np.float32), np.empty(4, np.float32)
        )
    with pytest.raises(TypeError, match="go together"):
        kernel().sorted_percentiles(values, qs, counts, found, 12, np.empty((4, 2), np.float32))
    grid = np.empty((4, 2), np.float32)
    with pytest.raises(ValueError, match="shares memory"):
        kernel().sorted_percentiles(values, qs, counts, found, 12, grid, values[0, :4])
