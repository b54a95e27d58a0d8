# The compiled point passes (_point_passes.c and the other _*_pass.c), loaded by
# engine/compiled.py. sorted_percentiles is missing where the module was built without
# numpy 2's headers (setup.py).
from typing import Any

SOURCE_SHA256: str

def hour_pass(values: Any, per_hour: int, means: Any, totals: Any, /) -> None: ...
def rows_above(
    values: Any, per_hour: int, bound: Any, rows: Any, row_max: Any, out: Any, /
) -> None: ...
def demand_pass(
    usage: Any,
    discards: Any,
    demand: Any,
    retried: bool,
    bound_factor: float,
    recent_lo: int,
    recent_hi: int,
    day_lo: int,
    day_hi: int,
    total_d: Any,
    total: Any,
    now: Any,
    recently: Any,
    bounded: Any,
    /,
) -> None: ...
def sorted_percentiles(
    values: Any,
    qs: Any,
    counts: Any,
    found: Any,
    per_hour: int = ...,
    means: Any = ...,
    totals: Any = ...,
    /,
) -> None: ...
def centred_means(values: Any, window: int, out: Any, /) -> None: ...
