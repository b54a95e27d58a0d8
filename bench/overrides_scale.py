"""Runtime overrides file at scale: ruamel's full round trip against the line reader + splice.

For files of N tenants x 3 limits (the layout the optimizer writes, a few comments), prints:

- parse + read all: `parse_overrides` then `current_limits` of every tenant for every limit of
  the catalogue, and `validate_overrides`, the reads of one service cycle;
- edit 300 + render: 300 tenants' limits set (a tenth of them new tenants), then `render()`;
- libyaml's C composer on the same text, the floor of any YAML parser in this process.

"full" is ruamel's round-trip model of the whole file (what every call did before); "fast"
is what `parse_overrides` does now. The rendered texts are compared byte for byte.

    .venv/bin/python bench/overrides_scale.py                      # 1k, 10k, 100k tenants
    .venv/bin/python bench/overrides_scale.py --sizes 1000,10000   # skip the slow 100k
    .venv/bin/python bench/overrides_scale.py --sizes 200          # smoke run
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import yaml

from mimir_limit_optimizer.catalogue import Catalogue, load_catalogue
from mimir_limit_optimizer.engine.overrides import (
    OverridesDocument,
    current_limits,
    parse_full,
    parse_overrides,
    validate_overrides,
)
from mimir_limit_optimizer.engine.overrides_validate import validate_full

LIMITS = ("ingestion_rate", "ingestion_burst_size", "max_global_series_per_user")
EDITS = 300


def overrides_file(tenants: int) -> str:
    out = ["# Managed by mimir-limit-optimizer", "overrides:"]
    for index in range(tenants):
        if index % 500 == 0:
            out.append(f"  # tenants {index} and after")
        out.append(f"  tenant-{index:06d}:")
        out.append(f"    ingestion_rate: {10000 + index}")
        out.append(f"    ingestion_burst_size: {200000 + index}")
        out.append(f"    max_global_series_per_user: {150000 + index}")
    return "\n".join(out) + "\n"


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def read_all(parse: Callable[[str], OverridesDocument], text: str, catalogue: Catalogue) -> Any:
    doc = parse(text)
    specs = list(catalogue.limits.values())
    return current_limits(doc, doc.tenants(), specs)


def edit_and_render(
    parse: Callable[[str], OverridesDocument], text: str, tenants: int, catalogue: Catalogue
) -> str:
    doc = parse(text)
    rng = random.Random(1)
    chosen = rng.sample(range(tenants), min(EDITS, tenants))
    for number, index in enumerate(chosen):
        name = f"tenant-{index:06d}" if number % 10 else f"new-{index:06d}"
        limit = LIMITS[number % len(LIMITS)]
        doc.set(name, limit, float(5 + index), catalogue.limits[limit])
    return doc.render()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    catalogue = load_catalogue()
    print(
        "| tenants | libyaml compose s | parse+read-all full s | fast s | ratio "
        "| validate full s | fast s | ratio | edit 300+render full s | fast s | ratio | identical |"
    )
    print("|" + "---:|" * 11 + ":---:|", flush=True)
    for tenants in (int(size) for size in args.sizes.split(",")):
        text = overrides_file(tenants)
        floor, _ = _timed(lambda: yaml.compose(text, Loader=yaml.CSafeLoader))  # noqa: B023
        fr, full_limits = _timed(lambda: read_all(parse_full, text, catalogue))  # noqa: B023
        qr, fast_limits = _timed(lambda: read_all(parse_overrides, text, catalogue))  # noqa: B023
        fc, full_problems = _timed(lambda: validate_full(text, catalogue))  # noqa: B023
        qc, fast_problems = _timed(lambda: validate_overrides(text, catalogue))  # noqa: B023
        fe, full_text = _timed(lambda: edit_and_render(parse_full, text, tenants, catalogue))  # noqa: B023
        qe, fast_text = _timed(
            lambda: edit_and_render(parse_overrides, text, tenants, catalogue)  # noqa: B023
        )
        same = (
            full_text == fast_text
            and full_problems == fast_problems
            and all(
                np.array_equal(full_limits[k], fast_limits[k], equal_nan=True) for k in full_limits
            )
        )
        print(
            f"| {tenants:,} | {floor:.2f} | {fr:.2f} | {qr:.2f} | {fr / qr:.0f}x "
            f"| {fc:.2f} | {qc:.2f} | {fc / qc:.0f}x | {fe:.2f} | {qe:.2f} | {fe / qe:.0f}x "
            f"| {'yes' if same else 'NO'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
