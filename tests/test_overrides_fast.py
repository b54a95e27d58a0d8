"""The line reader and block splicing of large overrides files give exactly ruamel's answers.

Every random file is read twice: by `parse_overrides` (line reader when it understands the
file) and by the full round-trip model built from ruamel's parse. Reads, `current_limits`,
`validate_overrides` and the text rendered after the same random edits must be identical.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mimir_limit_optimizer.catalogue.load import load_catalogue
from mimir_limit_optimizer.engine.overrides import (
    OverridesDocument,
    OverridesEditError,
    OverridesParseError,
    OverridesValueError,
    current_limits,
    parse_full,
    parse_overrides,
    validate_overrides,
)
from mimir_limit_optimizer.engine.overrides_fast import read_fast
from mimir_limit_optimizer.engine.overrides_scan import scan
from mimir_limit_optimizer.engine.overrides_splice import splice_safe
from mimir_limit_optimizer.engine.overrides_validate import validate_full
from mimir_limit_optimizer.engine.overrides_yaml import dump, make_yaml
from tests.overrides_gen import LIMITS, TENANTS, canonical_file, random_file

CATALOGUE = load_catalogue()
SPECS = [
    CATALOGUE.limits[name]
    for name in LIMITS
    if name in CATALOGUE.limits  # the managed limits among the generated keys
]
FILES = 300  # random files per test (each is small: the loops stay under a few seconds)


def _full(text: str) -> OverridesDocument:
    return parse_full(text, source_name="f")


def _outcome(call: Any) -> Any:
    try:
        return ("ok", call())
    except (OverridesParseError, OverridesValueError, OverridesEditError, ValueError) as exc:
        return (type(exc).__name__, str(exc))


def _reads(doc: OverridesDocument) -> list[Any]:
    out: list[Any] = [doc.tenants()]
    for tenant in [*doc.tenants(), "absent"]:
        out.append(doc.limits_of(tenant))
        for limit in [*LIMITS, "nope"]:
            value = doc.get(tenant, limit)
            out.append((tenant, limit, type(value).__name__, repr(value)))
            out.append((doc.sets(tenant, limit), doc.line_of(tenant, limit)))
            for spec in SPECS:
                if spec.name == limit:
                    out.append(_outcome(lambda: doc.number(tenant, spec)))  # noqa: B023
    tenants = [*doc.tenants(), "absent"]
    limits = _outcome(lambda: current_limits(doc, tenants, SPECS))
    if limits[0] == "ok":
        limits = (
            "ok",
            {k: [x if math.isfinite(x) else repr(x) for x in v] for k, v in limits[1].items()},
        )
    out.append(limits)
    return out


def _files(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [random_file(rng) for _ in range(count)]


def test_the_line_reader_takes_most_random_files() -> None:
    """The generator exercises the fast path (not only the fallback)."""
    files = _files(1, FILES)
    fast = sum(read_fast(text) is not None for text in files)
    assert FILES * 0.3 < fast < FILES


def test_reads_are_those_of_the_full_model() -> None:
    for text in _files(2, FILES):
        expected = _outcome(lambda: _reads(_full(text)))  # noqa: B023
        actual = _outcome(lambda: _reads(parse_overrides(text, source_name="f")))  # noqa: B023
        assert actual == expected, text


def test_validation_is_that_of_the_full_model() -> None:
    for text in _files(3, FILES):
        expected = validate_full(text, CATALOGUE)
        assert validate_overrides(text, CATALOGUE) == expected, text


def _edits(rng: random.Random, tenants: list[str]) -> list[tuple[str, str, str, float]]:
    pool = tenants + rng.sample(TENANTS, 3) + ["new-tenant", "zz-new"]
    edits = []
    for _ in range(rng.randint(1, 6)):
        tenant = rng.choice(pool)
        spec = rng.choice(SPECS)
        op = "remove" if rng.random() < 0.35 else "set"
        edits.append((op, tenant, spec.name, float(rng.choice([0, 7, 1000, 1500.5, 86400]))))
    return edits


def _edited(doc: OverridesDocument, edits: list[tuple[str, str, str, float]]) -> Any:
    results = []
    for op, tenant, limit, value in edits:
        spec = CATALOGUE.limits[limit]
        if op == "set":
            results.append(_outcome(lambda: doc.set(tenant, limit, value, spec)))  # noqa: B023
        else:
            results.append(_outcome(lambda: doc.remove(tenant, limit)))  # noqa: B023
    return results, doc.render(), _reads(doc)


@pytest.mark.parametrize("seed", [4, 5])
def test_edits_render_the_text_of_the_full_model(seed: int) -> None:
    rng = random.Random(seed)
    for text in _files(seed, FILES):
        edits = _edits(rng, [t for t in TENANTS if t in text])
        expected = _outcome(lambda: _edited(_full(text), edits))  # noqa: B023
        if expected[0] != "ok":
            continue  # the file does not parse: nothing to edit
        actual = _edited(parse_overrides(text, source_name="f"), edits)
        assert actual == expected[1], (text, edits)


def _rendered(text: str) -> str | None:
    """The file as ruamel writes it (the form of every file the optimizer wrote)."""
    result = scan(text)
    if result.problems or result.data is None:
        return None
    return dump(make_yaml(result.indent), result.data)


@pytest.mark.parametrize("seed", [7, 8])
def test_edits_of_files_in_ruamels_form_splice_like_the_full_model(seed: int) -> None:
    rng = random.Random(seed)
    texts = [r for r in map(_rendered, _files(seed, FILES)) if r is not None]
    for index in range(0, len(texts), 20):  # what ruamel drops before the tenants
        texts[index] = "\n" + texts[index].replace("overrides:\n", "overrides:  \n")
    spliced = 0
    for text in texts:
        fast = read_fast(text)
        spliced += fast is not None and splice_safe(fast)
        edits = _edits(rng, [t for t in TENANTS if t in text])
        expected = _outcome(lambda: _edited(_full(text), edits))  # noqa: B023
        if expected[0] != "ok":
            continue  # `True:` written back as `true:` next to another `true:`
        actual = _edited(parse_overrides(text, source_name="f"), edits)
        assert actual == expected[1], (text, edits)
    assert spliced > len(texts) * 0.3  # the splice itself is what these files exercise


def test_a_large_canonical_file_edits_like_the_full_model() -> None:
    rng = random.Random(6)
    text = canonical_file(rng, 300)
    tenants = [f"tenant-{i:05d}" for i in range(0, 330, 7)]
    edits = [
        ("remove" if i % 5 == 0 else "set", t, SPECS[i % len(SPECS)].name, float(i * 11))
        for i, t in enumerate(tenants)
    ]
    fast = read_fast(text)
    assert fast is not None and splice_safe(fast)
    assert _edited(parse_overrides(text), edits) == _edited(_full(text), edits)


def test_the_benchmark_prints_its_table() -> None:
    """bench/overrides_scale.py runs (a seconds-long size): one row per size, identical."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "overrides_scale.py"), "--sizes", "50,120"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [
        line
        for line in done.stdout.splitlines()
        if line.startswith("| 50 ") or line.startswith("| 120 ")
    ]
    assert len(rows) == 2 and all(row.endswith("| yes |") for row in rows), done.stdout
