"""The fast matrix decoder reads Prometheus' range-query layout into the same numbers a JSON
parser gives (NaN, +Inf and -Inf as sent: the source screens them), and declines (None:
parse as JSON) anything else: warnings, native histograms, other layouts, malformed samples."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from mimir_limit_optimizer.sources.prom_decode import decode_matrix


def body(result: list[dict[str, Any]], **extra: Any) -> bytes:
    data: dict[str, Any] = {"resultType": "matrix", "result": result}
    document: dict[str, Any] = {"status": "success", "data": data}
    if "stats" in extra:
        data["stats"] = extra.pop("stats")
    document.update(extra)
    return json.dumps(document, separators=(",", ":")).encode()


SERIES = [
    {"metric": {"user": "a", "x": 'q"uo}te'}, "values": [[1700000000, "1.5"], [1700000600, "NaN"]]},
    {"metric": {"user": "b"}, "values": [[1700000000.5, "+Inf"], [1700000600, "-2.5e-07"]]},
    {"metric": {"user": "c"}, "values": []},
    {"metric": {"user": "d"}, "values": [[1700000000, "1e+06"]]},
]


def test_reads_what_a_json_parser_reads() -> None:
    decoded = decode_matrix(body(SERIES))
    assert decoded is not None
    assert [dict(m) for m in decoded.labels] == [s["metric"] for s in SERIES]
    for i, series in enumerate(SERIES):
        stamps, values = decoded.series(i)
        want = np.array([float(v) for _, v in series["values"]])
        assert stamps.tolist() == [float(t) for t, _ in series["values"]]
        np.testing.assert_array_equal(values, want)


def test_empty_result_and_query_statistics_are_read() -> None:
    empty = decode_matrix(body([]))
    assert empty is not None and len(empty) == 0
    with_stats = decode_matrix(body(SERIES[:1], stats={"timings": {"evalTotalTime": 0.1}}))
    assert with_stats is not None and len(with_stats) == 1


@pytest.mark.parametrize(
    "text",
    [
        body(SERIES, warnings=["too many samples"]),
        body([{"metric": {"user": "a"}, "histograms": [[1700000000, {"count": "1"}]]}]),
        body([{"metric": {"user": "a"}, "values": [[1700000000, "abc"]]}]),
        body([{"metric": {"user": "a"}, "values": [[1700000000, "1", "2"]]}]),
        json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode(),
        body(SERIES).replace(b'"values"', b'"samples"'),
        b'{"status":"error","errorType":"bad_data","error":"x"}',
    ],
    ids=["warnings", "histograms", "bad-value", "triple", "spaces", "other-key", "error"],
)
def test_declines_what_it_does_not_recognise(text: bytes) -> None:
    assert decode_matrix(text) is None
