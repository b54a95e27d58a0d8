"""The engine's long-term peak memory (engine/peak_memory.py) across cycles and restarts.

The service keeps it in the process and in the store (table `peak_memory`, one row per
limit: store/peak_memory.py): loaded at the first cycle (and again at the first cycle as
the leader, which picks up what the previous leader saved), updated from each cycle's
results, and saved by the leader after each cycle, in dry-run too: it is the optimizer's own
record of what tenants sent, not a write to any target. A follower remembers in its process
only (two replicas must not overwrite each other's record).

A memory that cannot be read never blocks a cycle: a blob that does not decode (a corrupt
row) is logged and that limit starts empty (the next save replaces it); a store that cannot
be read at all is logged and the cycle plans with what the process holds, and nothing is
saved until a load has succeeded (a transient outage never replaces the record with less).
A failed save is logged; the process keeps its memory and saves it at the next cycle.

Encoding of one limit's row (zlib level 1 over): b"MLOPM1", u32 tenants, u32 bytes of the
tenant names (a JSON list), the names, float32 levels, float64 times (little-endian).
~1 MB a limit at 100,000 tenants (the levels do not compress; names and times do).
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Mapping

import numpy as np
import orjson

from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.reporter import Reporter
from mimir_limit_optimizer.engine.peak_memory import LimitMemory, PeakMemory, update
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.observability.metrics import ControllerMetrics
from mimir_limit_optimizer.store import Store, StoreError

MAGIC = b"MLOPM1"
_HEADER = struct.Struct("<6sII")


class CorruptMemoryError(ValueError):
    """A stored row of the peak memory does not decode (what is wrong, in the message)."""


def encode(memory: LimitMemory) -> bytes:
    names = orjson.dumps(list(memory.tenants))
    body = b"".join(
        (
            _HEADER.pack(MAGIC, len(memory.tenants), len(names)),
            names,
            memory.level.astype("<f4").tobytes(),
            memory.seen_at.astype("<f8").tobytes(),
        )
    )
    return zlib.compress(body, 1)


def decode(blob: bytes) -> LimitMemory:
    """The row's memory; CorruptMemoryError when it is not one this code wrote."""
    try:
        body = zlib.decompress(blob)
    except zlib.error as exc:
        raise CorruptMemoryError(f"not compressed data ({exc})") from exc
    if len(body) < _HEADER.size:
        raise CorruptMemoryError(f"{len(body)} bytes, shorter than the header")
    magic, count, size = _HEADER.unpack_from(body)
    if magic != MAGIC:
        raise CorruptMemoryError(f"unknown format {magic!r} (expected {MAGIC!r})")
    start = _HEADER.size
    expected = start + size + count * 12
    if len(body) != expected:
        raise CorruptMemoryError(f"{len(body)} bytes where {count} tenants take {expected}")
    try:
        names = orjson.loads(body[start : start + size])
    except orjson.JSONDecodeError as exc:
        raise CorruptMemoryError(f"tenant names are not JSON ({exc})") from exc
    if not isinstance(names, list) or len(names) != count:
        raise CorruptMemoryError(f"tenant names are not a list of {count}")
    if not all(isinstance(n, str) for n in names):
        raise CorruptMemoryError("a tenant name is not a string")
    offset = start + size
    level = np.frombuffer(body, dtype="<f4", count=count, offset=offset).astype(np.float32)
    seen = np.frombuffer(body, dtype="<f8", count=count, offset=offset + 4 * count)
    return LimitMemory(tuple(names), level, seen.astype(np.float64))


def decode_rows(rows: Mapping[str, bytes]) -> tuple[PeakMemory, dict[str, str]]:
    """The memory of the rows that decode, and limit -> why for those that do not."""
    limits: dict[str, LimitMemory] = {}
    problems: dict[str, str] = {}
    for name, blob in rows.items():
        try:
            limits[name] = decode(blob)
        except CorruptMemoryError as exc:
            problems[name] = str(exc)
    return PeakMemory(limits), problems


def load_memory(store: Store) -> tuple[PeakMemory, dict[str, str]]:
    """What the store holds (StoreError when it cannot be read), and the undecodable rows."""
    return decode_rows(store.load_peak_memory())


class PeakMemoryKeeper:
    """The memory one service process plans with; everything injected."""

    def __init__(
        self, *, store: Store, report: Reporter, metrics: ControllerMetrics, logger: logging.Logger
    ) -> None:
        self.store = store
        self.report = report
        self.metrics = metrics
        self.log = logger
        self.memory: PeakMemory | None = None
        self._loaded = False  # the store's record has been read (or found unreadable: corrupt)
        self._leading = False  # it was read since this process became the leader

    @staticmethod
    def enabled(config: Config) -> bool:
        return config.trend_analysis.adaptive.long_term_window > 0

    def for_cycle(self, config: Config, *, now: float, leader: bool) -> PeakMemory | None:
        """The memory this cycle plans with (None: off)."""
        if not self.enabled(config):
            return None
        if not self._loaded or (leader and not self._leading):
            self._load(now, leader=leader)
        return self.memory

    def _load(self, now: float, *, leader: bool) -> None:
        try:
            memory, problems = load_memory(self.store)
        except StoreError as exc:
            self.metrics.errors_total.labels(component="store", reason="memory_unreadable").inc()
            self.log.warning(
                "peak memory not loaded (%s): planning with what this process remembers "
                "(%d entries); not saved until it loads",
                exc,
                self.memory.entries if self.memory else 0,
            )
            self.report.event(now, "peak_memory_unreadable", level="warning",
                              component="store", error=str(exc))  # fmt: skip
            return
        for name, why in sorted(problems.items()):
            self.metrics.errors_total.labels(component="store", reason="memory_unreadable").inc()
            self.log.warning("peak memory of %s is corrupt (%s): that limit starts empty",
                             name, why)  # fmt: skip
            self.report.event(now, "peak_memory_unreadable", level="warning",
                              component="store", limit=name, error=why)  # fmt: skip
        if self.memory is not None and self._loaded:
            # Taking over as leader: the stored record, completed with what this process
            # saw that the record lacks (it cannot be older than what was saved).
            memory = PeakMemory({**self.memory.limits, **memory.limits})
        self.memory = memory
        self._loaded = True
        self._leading = leader

    def after_cycle(
        self, recs: Recommendations, config: Config, *, now: float, leader: bool
    ) -> None:
        """Remember this cycle's window; the leader saves (see the module docstring)."""
        if not self.enabled(config):
            return
        window = config.trend_analysis.adaptive.long_term_window
        self.memory = update(self.memory, recs, now=now, long_term_window=window)
        if not leader:
            self._leading = False
            return
        if not self._loaded:
            return
        rows = {name: (encode(m), m.known) for name, m in self.memory.limits.items()}
        try:
            self.store.save_peak_memory(rows, at=now)
        except StoreError as exc:
            self.metrics.errors_total.labels(component="store", reason="memory_save_failed").inc()
            self.log.warning("peak memory not saved (%s): kept in this process, saved at the "
                             "next cycle", exc)  # fmt: skip
            self.report.event(now, "peak_memory_save_failed", level="warning",
                              component="store", error=str(exc))  # fmt: skip
