"""The compiled point passes (engine/_point_passes.c) are built from the source beside them,
and give the same bits as the numpy paths they replace:
- the hour pass: hour means and variability of rows with gaps, empty hours, zero hours,
  magnitudes from 1e-3 to 1e12, at every kind of hour length (numpy's pairwise summation
  changes shape at 8 and 128 terms), on views whose rows are not adjacent in memory;
- the spike filter's suspect blocks;
- demand (accepted + bounded discards) and its sums, with gaps, negative and missing
  discards, retried 429s above the accepted rate, in place of the discards.
The sort pass is in tests/test_sort_pass.py.
A spy checks that each comparison ran the kernel. Arrays it cannot read as they are (float64,
transposed, misaligned, rows a fraction of a point apart) go to the numpy path; the kernel
itself refuses them and never reads out of bounds, even when its output overlaps its index
arrays. The engine's results against the whole-array reference are in
tests/test_engine_reference.py."""

from __future__ import annotations

import collections
import dataclasses
import types
from typing import Any

import numpy as np
import pytest

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine import compiled, hourly, recommend_pass, spikes, throttling
from mimir_limit_optimizer.engine.results import Reason
from mimir_limit_optimizer.engine.usage import LazyArrays, Observation
from tests.compiled_passes import kernel as _kernel
from tests.compiled_passes import same_bits, spy_on_passes

PER_HOUR = [1, 2, 7, 8, 9, 12, 13, 16, 60, 127, 128, 129, 240, 257]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    return spy_on_passes(monkeypatch)


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


def test_the_compiled_passes_are_built_from_this_source() -> None:
    module = _kernel()
    assert compiled.built_from_this_source(module)
    assert len(module.SOURCE_SHA256) == 64


def test_a_module_from_another_source_is_not_used() -> None:
    """A failed rebuild keeps the last module that compiled: it is refused, not run."""
    stale = types.SimpleNamespace(SOURCE_SHA256="0" * 64)
    assert not compiled.built_from_this_source(stale)  # type: ignore[arg-type]
    assert not compiled.built_from_this_source(types.SimpleNamespace())  # type: ignore[arg-type]


@pytest.mark.parametrize("per_hour", PER_HOUR)
def test_same_bits_as_the_numpy_path(per_hour: int, calls: collections.Counter[str]) -> None:
    hours = 30
    # Whole hours, and hours counted back from the last point with a part hour before them.
    for t in sorted({hours * per_hour, hours * per_hour + (per_hour + 1) // 2 * (per_hour > 1)}):
        values = _rows(40, t, seed=per_hour + t)
        got = hourly.means_and_variability(values, per_hour)
        want = hourly.means_and_variability(values, per_hour, compiled=False)
        assert got.means.shape == want.means.shape == (40, hours)
        same_bits(got.means, want.means)
        same_bits(got.variability, want.variability)
        assert np.isfinite(got.variability).sum() >= 20  # most rows have a value to compare
    assert calls["hour_pass"] == len({hours * per_hour, hours * per_hour + (per_hour > 1)})


def test_same_bits_on_a_strided_view_and_into_a_given_grid(
    calls: collections.Counter[str],
) -> None:
    wide = _rows(64, 2 * 2016, seed=5)
    view = wide[::2, 100 : 100 + 2016]  # rows 16 kB apart, not starting at the row's start
    grid = np.full((32, 168), -1, dtype=np.float32)
    got = hourly.means_and_variability(view, 12, out=grid)
    want = hourly.means_and_variability(np.ascontiguousarray(view), 12, compiled=False)
    assert got.means is grid
    same_bits(grid, want.means)
    same_bits(got.variability, want.variability)
    reversed_rows = hourly.means_and_variability(view[::-1], 12)
    same_bits(reversed_rows.variability, want.variability[::-1])
    assert calls["hour_pass"] == 2


def test_a_deviation_sum_with_rounding_to_tell_apart(calls: collections.Counter[str]) -> None:
    """A row where the order of additions shows in the last bit: the kernel's sum is numpy's
    pairwise one, not a running sum (which the assertion on `running` proves differs)."""
    rng = np.random.default_rng(11)
    values = (1 + rng.uniform(-0.9, 0.9, size=(1, 2016))).astype(np.float32)
    got = hourly.means_and_variability(values, 12)
    want = hourly.means_and_variability(values, 12, compiled=False)
    same_bits(got.variability, want.variability)
    blocks = values.reshape(1, 168, 12)
    deviation = np.abs(np.clip(blocks / got.means[:, :, None] - np.float32(1), -1, 1))
    running = np.float32(0)
    for x in deviation.ravel():
        running = np.float32(running + x)
    pairwise = deviation.reshape(1, -1).sum(axis=1)[0]
    assert running != pairwise  # the data tells the two orders apart
    assert got.variability[0] == hourly.MAD_TO_SIGMA * float(pairwise) / 2016
    assert calls["hour_pass"] == 1


@pytest.mark.parametrize("compiled", [True, False])
def test_no_rows_and_no_whole_hour(compiled: bool) -> None:
    none = hourly.means_and_variability(np.ones((0, 2016), np.float32), 12, compiled=compiled)
    assert none.means.shape == (0, 168) and none.variability.shape == (0,)
    short = hourly.means_and_variability(np.ones((3, 11), np.float32), 12, compiled=compiled)
    assert short.means.shape == (3, 0)
    assert np.isnan(short.variability).all()  # no point counts


def _odd_rows() -> np.ndarray:
    """Rows 97 bytes apart: a point is aligned in row 0 only."""
    raw = np.zeros(4 * 97 + 8, dtype=np.uint8)
    rows = np.ndarray((4, 24), np.float32, buffer=raw, strides=(97, 4))
    rows[...] = 1
    return rows


def _misaligned() -> np.ndarray:
    """float32 points one byte off alignment."""
    raw = np.zeros(4 * 24 * 4 + 1, dtype=np.uint8)
    values = np.ndarray((4, 24), np.float32, buffer=raw, offset=1)
    values[...] = 1
    return values


@pytest.mark.parametrize(
    "values",
    [
        np.ones((4, 24), dtype=np.float64),
        np.ones((24, 4), dtype=np.float32).T,  # points of a row not adjacent
        _odd_rows(),
        _misaligned(),
    ],
    ids=["float64", "transposed", "odd-row-stride", "misaligned"],
)
def test_arrays_it_cannot_read_take_the_numpy_path(
    values: np.ndarray, calls: collections.Counter[str]
) -> None:
    got = hourly.means_and_variability(values, 12)
    np.testing.assert_array_equal(got.means, np.ones((4, 2), dtype=np.float32))
    np.testing.assert_array_equal(got.variability, np.zeros(4))
    assert not compiled.fits(values)
    assert calls["hour_pass"] == 0


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"values": np.ones((4, 24))}, "values"),
        ({"values": np.ones((24, 4), np.float32).T}, "values"),
        ({"values": _misaligned()}, "values"),
        ({"means": np.empty((4, 3), np.float32)}, "rows, hours"),
        ({"totals": np.empty(3, np.float32)}, "totals"),
        ({"values": np.ones((4, 25), np.float32)}, "whole hours"),
        ({"means": np.empty((4, 2), np.float64)}, "means"),
    ],
    ids=[
        "float64",
        "transposed",
        "misaligned",
        "means-shape",
        "totals-shape",
        "partial-hour",
        "means-f64",
    ],
)
def test_the_kernel_refuses_what_it_cannot_read(changed: dict[str, Any], message: str) -> None:
    arrays = {
        "values": np.ones((4, 24), np.float32),
        "means": np.empty((4, 2), np.float32),
        "totals": np.empty(4, np.float32),
    }
    arrays.update(changed)
    with pytest.raises(ValueError, match=message):
        _kernel().hour_pass(arrays["values"], 12, arrays["means"], arrays["totals"])


def test_the_kernel_refuses_a_read_only_output() -> None:
    means = np.empty((4, 2), np.float32)
    means.flags.writeable = False
    with pytest.raises((ValueError, BufferError)):
        _kernel().hour_pass(np.ones((4, 24), np.float32), 12, means, np.empty(4, np.float32))


@pytest.mark.parametrize("per_hour", [1, 5, 12, 60])
@pytest.mark.parametrize("numpy_reads", ["blocks", "rows"])
def test_suspect_blocks_read_by_the_kernel_give_numpys_answer(
    per_hour: int,
    numpy_reads: str,
    monkeypatch: pytest.MonkeyPatch,
    calls: collections.Counter[str],
) -> None:
    """The spike filter's suspect rows: the compiled read and numpy's (a gather of the
    suspect blocks, or whole rows when many are suspect) find the same rows, with bounds
    just under and over the points, NaN points and infinite ones, a partial last block."""
    # numpy reads block by block however many are suspect, or whole rows at once
    monkeypatch.setattr(spikes, "_SPARSE_SHARE", 1.0 if numpy_reads == "blocks" else 0.0)
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
    bound[8::11, -1] = np.float32(-1)  # the partial block: every point above
    rows = np.arange(0, 300, 2, dtype=np.int64)
    row_max = np.fmax.reduce(values[rows], axis=1).astype(np.float64)
    got = spikes._suspects_above(values, bound, per_hour, rows, row_max)
    want = spikes._suspects_above(values, bound, per_hour, rows, row_max, compiled=False)
    same_bits(got, want)
    assert calls["rows_above"] == 1  # the kernel read the blocks
    assert 0 < got.sum() < len(rows)  # some rows are above, some not
    # A row above only in the last block (no point above anywhere else) is found.
    only_tail = bound.copy()
    only_tail[:, :-1] = np.float32(np.inf)
    tail = spikes._suspects_above(values, only_tail, per_hour, rows, row_max)
    same_bits(
        tail, spikes._suspects_above(values, only_tail, per_hour, rows, row_max, compiled=False)
    )
    assert tail.any()  # (at one point an hour the last block is a whole one: the same rows)


def _rows_above_args(**changed: Any) -> list[Any]:
    args = {
        "values": np.ones((4, 24), np.float32),
        "bound": np.zeros((4, 2), np.float32),
        "rows": np.array([0, 3]),
        "row_max": np.ones(2),
        "out": np.empty(2, np.bool_),
    }
    args.update(changed)
    return [args["values"], 12, args["bound"], args["rows"], args["row_max"], args["out"]]


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"rows": np.array([0, 4])}, "out of range"),
        ({"rows": np.array([-1, 0])}, "out of range"),
        ({"rows": np.array([0, 1], np.int32)}, "int64"),
        ({"row_max": np.ones(2, np.float32)}, "float64"),
        ({"row_max": np.ones(3)}, "float64"),
        ({"bound": np.zeros((4, 1), np.float32)}, "every whole block"),
        ({"bound": np.zeros((3, 2), np.float32)}, "every whole block"),
        ({"out": np.empty(3, np.bool_)}, "out"),
    ],
)
def test_the_kernel_refuses_rows_it_cannot_read(changed: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _kernel().rows_above(*_rows_above_args(**changed))


def test_an_output_over_the_indices_is_refused_not_read_out_of_bounds() -> None:
    """`out` overlapping `rows`: the answers written change an index after it was checked;
    each index is read once, so the changed one is caught, not followed."""
    count = 16
    rows = np.zeros(count, np.int64)
    out = rows.view(np.uint8)[64 : 64 + count]  # answers 0-7 are the bytes of rows[8]
    args = _rows_above_args(rows=rows, row_max=np.full(count, 2.0), out=out)
    with pytest.raises(ValueError, match="out of range"):
        _kernel().rows_above(*args)


NOW = 1_800_000_000.0
STEP = 300.0


def _demand_case(
    seed: int, t: int = 2016, limit: str = "ingestion_rate", end: float = NOW
) -> tuple[Observation, np.ndarray, np.ndarray]:
    """Usage and discards for 90 tenants: throttled rows, discards above the accepted rate
    (retried 429s), negative, -0 and missing discards, usage gaps, -0 usage, infinite and
    -inf points. `end`: the last point's time (before NOW: an empty last hour)."""
    rng = np.random.default_rng(seed)
    n = 90
    usage = _rows(n, t, seed=seed)
    usage[6::9, -1] = 5.0  # _rows puts inf there; one row keeps it below
    usage[8::9, t // 3] = np.inf
    usage[7::18, t // 4] = -np.inf
    usage[0::10, :2] = -0.0
    finite = np.nan_to_num(usage, posinf=1, neginf=-1)
    discards = (rng.uniform(-0.2, 1.5, size=(n, t)) * finite).astype(np.float32)
    discards[::4] = 0  # not throttled
    discards[0::10, :3] = -0.0
    discards[1::7, : t // 2] = np.nan  # discards missing
    discards[2::5, -3:] = 10 * finite[2::5, -3:] + 1  # above the accepted rate, now
    timestamps = end - STEP * np.arange(t)[::-1]
    obs = Observation(
        tenants=tuple(f"t{i}" for i in range(n)),
        timestamps=timestamps,
        step=STEP,
        usage={limit: usage},
        discards={limit: discards},
        current={limit: np.ones(n)},
    )
    return obs, usage, discards


def _demand(
    obs: Observation, usage: np.ndarray, *, compiled_pass: bool, limit: str = "ingestion_rate"
) -> tuple[Any, ...]:
    spec = load_catalogue().limits[limit]
    state = recommend_pass.Pass(obs, Config(), NOW)
    result = types.SimpleNamespace(flags=np.zeros(len(usage), np.int64), extra={})
    demand, rows = throttling.demand(
        state,
        spec,
        result,  # type: ignore[arg-type]
        usage,
        compiled=compiled_pass,
    )
    return (
        demand.copy(),
        rows,
        result.discard_share,
        result.flags,
        result.extra["throttled_now"],
        result.extra["throttled_recently"],
    )


@pytest.mark.parametrize(
    ("seed", "limit"),
    [(1, "ingestion_rate"), (2, "ingestion_rate"), (3, "max_global_series_per_user")],
)
def test_demand_same_bits_as_the_numpy_path(
    seed: int, limit: str, calls: collections.Counter[str]
) -> None:
    """A retried limit (rate_limited discards, bounded) and one whose discards are not."""
    obs, usage, discards = _demand_case(seed, limit=limit)
    kept = discards.copy()
    got = _demand(obs, usage, compiled_pass=True, limit=limit)
    assert calls["demand_pass"] == 1
    want = _demand(obs, usage, compiled_pass=False, limit=limit)
    for a, b in zip(got, want, strict=True):
        same_bits(a, b)
    same_bits(discards, kept)  # the observation's array is only read
    demand, rows, share, flags, now, recently = got
    assert 0 < len(rows) < len(usage) and now.any() and recently.any() and not now.all()
    cut = (flags & int(Reason.RETRIES_BOUNDED)) != 0
    assert cut.any() == (limit == "ingestion_rate")  # the retry bound cut, where it applies
    assert np.isnan(share).sum() == 0 and (share > 0).any()
    # -0 usage and -0 discards: the discards count as +0 (numpy's fmax), so demand is +0.
    assert np.signbit(usage[::10, 0]).all() and not np.signbit(demand[::10, 0]).any()


@pytest.mark.parametrize(("t", "end"), [(1, NOW), (2, NOW), (30, NOW - 7200.0)])
def test_demand_short_windows_and_an_empty_last_hour(
    t: int, end: float, calls: collections.Counter[str]
) -> None:
    obs, usage, _discards = _demand_case(5, t=t, end=end)
    got = _demand(obs, usage, compiled_pass=True)
    want = _demand(obs, usage, compiled_pass=False)
    for a, b in zip(got, want, strict=True):
        same_bits(a, b)
    assert calls["demand_pass"] == 1
    if end < NOW - 3600:
        assert not got[4].any()  # nothing in the last hour: not throttled now


def test_demand_in_place_of_the_discards(
    monkeypatch: pytest.MonkeyPatch, calls: collections.Counter[str]
) -> None:
    """Streamed discards that only the engine holds take the demand in their place (no
    demand buffer): each row's discards are read whole before its demand is written."""
    obs, usage, discards = _demand_case(4)
    want = _demand(obs, usage, compiled_pass=False)
    streamed = dataclasses.replace(
        obs,
        discards=LazyArrays(["ingestion_rate"], lambda name: discards.copy(), shape=usage.shape),
    )
    buffers: list[str] = []
    buffer = recommend_pass.Pass.buffer

    def recorded(self: Any, name: str, shape: tuple[int, int]) -> np.ndarray:
        buffers.append(name)
        return buffer(self, name, shape)

    monkeypatch.setattr(recommend_pass.Pass, "buffer", recorded)
    got = _demand(streamed, usage, compiled_pass=True)
    assert buffers == []  # in place of the discards
    assert calls["demand_pass"] == 1
    for a, b in zip(got, want, strict=True):
        same_bits(a, b)


@pytest.mark.parametrize(
    ("spans", "message"),
    [((0, 2017, 0, 10), "window"), ((5, 4, 0, 10), "window"), ((0, 10, -1, 10), "window")],
)
def test_the_demand_kernel_refuses_columns_outside_the_window(
    spans: tuple[int, int, int, int], message: str
) -> None:
    n, t = 3, 2016
    usage = np.ones((n, t), np.float32)
    flags = [np.zeros(n, np.bool_) for _ in range(3)]
    totals = [np.zeros(n, np.float32) for _ in range(2)]
    with pytest.raises(ValueError, match=message):
        _kernel().demand_pass(
            usage, usage.copy(), np.empty_like(usage), True, 1.0, *spans, *totals, *flags
        )
    with pytest.raises(ValueError, match="one shape"):
        _kernel().demand_pass(
            usage, usage[:, :10], np.empty_like(usage), True, 1.0, 0, 1, 0, 1, *totals, *flags
        )


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def test_inputs_are_read_read_only_and_outputs_refused_read_only() -> None:
    """Each pass asks for its inputs read-only (a caller's frozen array is read) and for its
    outputs writable (a frozen one is refused, never written)."""
    kernel = _kernel()
    above = np.zeros(2, np.bool_)
    args = _rows_above_args(values=_read_only(np.ones((4, 24), np.float32)), out=above)
    args[2:5] = [_read_only(np.asarray(a)) for a in args[2:5]]
    kernel.rows_above(*args)
    np.testing.assert_array_equal(above, [True, True])
    with pytest.raises((ValueError, BufferError)):
        kernel.rows_above(*_rows_above_args(out=_read_only(np.zeros(2, np.bool_))))
    n, t = 3, 24
    usage = _read_only(np.ones((n, t), np.float32))
    discards = _read_only(np.full((n, t), 2, np.float32))
    demand = np.empty((n, t), np.float32)
    outputs = [np.zeros(n, np.float32) for _ in range(2)] + [
        np.zeros(n, np.bool_) for _ in range(3)
    ]
    kernel.demand_pass(usage, discards, demand, False, 1.0, 0, t, 0, t, *outputs)
    np.testing.assert_array_equal(demand, 3.0)
    for k in range(len(outputs) + 1):
        frozen = [demand.copy(), *(o.copy() for o in outputs)]
        _read_only(frozen[k])
        with pytest.raises((ValueError, BufferError)):
            kernel.demand_pass(usage, discards, frozen[0], False, 1.0, 0, t, 0, t, *frozen[1:])


def _misaligned_copy(array: np.ndarray) -> np.ndarray:
    """The same values one byte off their alignment."""
    raw = np.zeros(array.nbytes + 1, dtype=np.uint8)
    moved = np.ndarray(array.shape, array.dtype, buffer=raw, offset=1)
    moved[...] = array
    return moved


def test_suspect_rows_the_kernel_cannot_read_as_handed_over_take_numpys_answer() -> None:
    """Strided or misaligned indices and maxima are copied for the kernel; a bound for more
    rows than the values have, or empty values at an odd address, go to numpy."""
    values = _rows(12, 24, seed=3)
    bound = np.full((12, 2), 0.5, np.float32)
    every = np.arange(12, dtype=np.int64)
    rows = np.repeat(every, 2)[::2]  # strided view of 0..11
    row_max = np.fmax.reduce(values, axis=1).astype(np.float64)
    want = spikes._suspects_above(values, bound, 12, every, row_max, compiled=False)
    assert 0 < want.sum() < 12
    for got in (
        spikes._suspects_above(values, bound, 12, rows, row_max),
        spikes._suspects_above(values, bound, 12, every, _misaligned_copy(row_max)),
        spikes._suspects_above(values, bound, 12, _misaligned_copy(every), row_max),
    ):
        same_bits(got, want)
    wide = np.vstack([bound, bound])  # more rows than the values
    same_bits(spikes._suspects_above(values, wide, 12, every, row_max), want)
    empty = _misaligned_copy(np.zeros((0, 24), np.float32))
    assert not compiled.fits(empty)
    none = np.zeros(0, np.int64)
    assert spikes._suspects_above(empty, bound[:0], 12, none, np.zeros(0)).shape == (0,)


def test_the_kernel_refuses_misaligned_indices() -> None:
    rows = _misaligned_copy(np.array([0, 3]))
    with pytest.raises(ValueError, match="aligned"):
        _kernel().rows_above(*_rows_above_args(rows=rows))
