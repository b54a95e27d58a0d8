"""Decoding Prometheus query API responses into numpy, without a Python object per sample.

A range query over every tenant returns one JSON document of (tenants x points) samples,
each `[<unix seconds>,"<value>"]`. A general JSON parser builds two or three Python objects
per sample, which is where collection used to spend most of its time. Prometheus and Mimir
write matrices in one fixed shape (`{"metric":{...},"values":[[t,"v"],...]}`, no
whitespace), so `decode_matrix` finds each series' labels (all parsed by one orjson call)
and converts all of the response's samples to floats in one pass, with no list or tuple per
sample. Anything it does not recognise (warnings, native histograms, another layout)
returns None and the caller parses the whole document with orjson instead: the fast path is
an optimisation, never a second dialect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson

FloatArray = npt.NDArray[np.float64]

_PREFIX = b'{"status":"success","data":{"resultType":"matrix","result":['
# A series header: its labels (an object of strings, escapes allowed) and the values' '['.
_SERIES = re.compile(rb'\{"metric":(\{(?:"(?:[^"\\]|\\.)*":"(?:[^"\\]|\\.)*",?)*\}),"values":\[')
# A sample is [<unix seconds>,"<value>"], the value as Prometheus formats a float (digits,
# exponent, NaN, +Inf, -Inf). With brackets and quotes blanked, a series' samples read as
# "t, v , t, v ...", which numpy parses without a Python object per sample.
_BLANK = bytes.maketrans(b'[]"', b"   ")
_NONE: FloatArray = np.zeros(0)
# What may follow the last series: the end of the document, or query statistics.
_TAIL = re.compile(rb'\](?:,"stats":\{.*\})?\}\}\s*$', re.DOTALL)


@dataclass(frozen=True)
class DecodedMatrix:
    """A matrix result: per series its labels and a slice of the shared sample arrays.

    `timestamps`/`values` hold every sample of the response in order; series i owns
    `[offsets[i], offsets[i + 1])`. Values are float64 as sent: NaN is a gap, +-Inf stay
    infinite (invalid data the source screens out with a reason, engine/validity.py)."""

    labels: list[Mapping[str, str]]
    offsets: npt.NDArray[np.int64]
    timestamps: FloatArray
    values: FloatArray

    def __len__(self) -> int:
        return len(self.labels)

    def series(self, i: int) -> tuple[FloatArray, FloatArray]:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.timestamps[lo:hi], self.values[lo:hi]


def decode_matrix(body: bytes) -> DecodedMatrix | None:
    """The matrix of a successful range-query response, or None when `body` is not in the
    fixed layout (then parse it as JSON).

    The samples of all series are joined into one text of numbers (brackets and quotes
    blanked) and converted in one pass, the label objects likewise in one orjson call; the
    per-series work is two slice checks and a count."""
    if not body.startswith(_PREFIX):
        return None
    headers = list(_SERIES.finditer(body, len(_PREFIX)))
    counts: list[int] = []
    regions: list[bytes] = []
    expected = len(_PREFIX)
    for i, header in enumerate(headers):
        if header.start() != expected:  # something between two series: another layout
            return None
        if i + 1 < len(headers):
            expected = headers[i + 1].start()
            if body[expected - 4 : expected] not in (b"]]},", b"[]},"):
                return None
            close = expected - 3  # the ']' that closes the values
        else:
            last = body.find(b"]]}", header.end())
            close = last + 1 if last >= 0 else header.end()  # a series without samples
            if body[close : close + 2] != b"]}":
                return None
            expected = close + 2
        counts.append(body.count(b"[", header.end(), close))  # every '[' opens one sample
        if close > header.end():
            regions.append(body[header.end() : close])
    if not _TAIL.match(body, expected):
        return None
    # Every label object at once, in one orjson call (one call per series cost more than
    # the parsing). `_SERIES` admits only objects of string keys and string values.
    try:
        labels: list[Mapping[str, str]] = orjson.loads(
            b"[" + b",".join(header.group(1) for header in headers) + b"]"
        )
    except orjson.JSONDecodeError:  # an invalid escape inside a string
        return None
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    text = b",".join(regions).translate(_BLANK)
    try:
        # float() on each piece beats numpy's own text parsers (fromstring, astype from
        # bytes) by 2-3x; fromiter fills the array without an intermediate list.
        numbers = np.fromiter(map(float, text.split(b",")), dtype=np.float64) if text else _NONE
    except ValueError:
        return None
    if len(numbers) != 2 * offsets[-1]:  # a sample of another shape: another layout
        return None
    pairs = numbers.reshape(-1, 2)
    return DecodedMatrix(labels, offsets, pairs[:, 0].copy(), pairs[:, 1].copy())
