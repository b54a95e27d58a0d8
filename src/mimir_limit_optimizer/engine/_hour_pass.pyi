# The compiled hour pass (_hour_pass.c); engine/hourly.py and engine/spikes.py call it.
from typing import Any

def hour_pass(values: Any, per_hour: int, means: Any, totals: Any, /) -> None: ...
def blocks_above(
    values: Any, per_hour: int, rows: Any, blocks: Any, bounds: Any, out: Any, /
) -> None: ...
