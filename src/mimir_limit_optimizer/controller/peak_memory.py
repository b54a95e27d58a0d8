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

Encoding of one limit's row: b"MLOPM2", u32 tenants, u32 and u32 the sizes of the two zlib
(level 1) streams: the tenant names (a JSON list), then the float32 levels as they are (they
do not compress, and compressing them took most of the time), then the float64 times
(little-endian; most are the same few cycle times). Each row stands alone (a corrupt row
loses one limit), but the limits of one cycle share their tenants, so their names are
compressed once per save and decoded once per load. ~0.6 MB a limit at 100,000 tenants.
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
from mimir_limit_optimizer.engine.peak_memory import LimitMemory, PeakMemory, merge, update
from mimir_limit_optimizer.engine.results import Recommendations
from mimir_limit_optimizer.observability.metrics import ControllerMetrics
from mimir_limit_optimizer.store import Store, StoreError

MAGIC = b"MLOPM2"
_HEADER = struct.Struct("<6sIII")


class CorruptMemoryError(ValueError):
    """A stored row of the peak memory does not decode (what is wrong, in the message)."""


def encode(memory: LimitMemory, names: bytes | None = None) -> bytes:
    """One row; `names`: the tenants already compressed (`compress_names`), to share."""
    packed = names if names is not None else compress_names(memory.tenants)
    seen = zlib.compress(memory.seen_at.astype("<f8").tobytes(), 1)
    header = _HEADER.pack(MAGIC, len(memory.tenants), len(packed), len(seen))
    return b"".join((header, packed, memory.level.astype("<f4").tobytes(), seen))


def compress_names(tenants: tuple[str, ...]) -> bytes:
    return zlib.compress(orjson.dumps(list(tenants)), 1)


def encode_all(memory: PeakMemory) -> dict[str, tuple[bytes, int]]:
    """limit -> (row, tenants remembered); names compressed once per distinct tenant list."""
    shared: dict[tuple[str, ...], bytes] = {}
    rows: dict[str, tuple[bytes, int]] = {}
    for name, limit in memory.limits.items():
        names = shared.get(limit.tenants)
        if names is None:
            names = shared[limit.tenants] = compress_names(limit.tenants)
        rows[name] = (encode(limit, names), limit.known)
    return rows


def decode(blob: bytes, names_cache: dict[bytes, tuple[str, ...]] | None = None) -> LimitMemory:
    """The row's memory; CorruptMemoryError when it is not one this code wrote.
    `names_cache`: compressed names -> tenants, shared by the rows of one load."""
    if len(blob) < _HEADER.size:
        raise CorruptMemoryError(f"{len(blob)} bytes, shorter than the header")
    magic, count, names_size, seen_size = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise CorruptMemoryError(f"unknown format {magic!r} (expected {MAGIC!r})")
    start = _HEADER.size
    size = start + names_size + 4 * count + seen_size
    if len(blob) != size:
        raise CorruptMemoryError(f"{len(blob)} bytes where the header says {size}")
    packed = blob[start : start + names_size]
    tenants = names_cache.get(packed) if names_cache is not None else None
    if tenants is None:
        tenants = _names(packed, count)
        if names_cache is not None:
            names_cache[packed] = tenants
    if len(tenants) != count:
        raise CorruptMemoryError(f"{len(tenants)} tenant names where the header says {count}")
    offset = start + names_size
    level = np.frombuffer(blob, dtype="<f4", count=count, offset=offset).astype(np.float32)
    try:
        times = zlib.decompress(blob[offset + 4 * count :])
    except zlib.error as exc:
        raise CorruptMemoryError(f"times are not compressed data ({exc})") from exc
    if len(times) != count * 8:
        raise CorruptMemoryError(f"{len(times)} bytes of times where {count} tenants take")
    seen = np.frombuffer(times, dtype="<f8", count=count).astype(np.float64)
    # Entries this code never writes (a level that is not a finite count or rate >= 0, a
    # time that is not finite) are forgotten, not trusted: the engine reads them as limits.
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(level) & (level >= 0) & np.isfinite(seen))
    if bad.any():
        level[bad] = np.nan
        seen[bad] = np.nan
    return LimitMemory(tenants, level, seen)


def _names(packed: bytes, count: int) -> tuple[str, ...]:
    try:
        names = orjson.loads(zlib.decompress(packed))
    except zlib.error as exc:
        raise CorruptMemoryError(f"tenant names are not compressed data ({exc})") from exc
    except orjson.JSONDecodeError as exc:
        raise CorruptMemoryError(f"tenant names are not JSON ({exc})") from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CorruptMemoryError("tenant names are not a list of strings")
    return tuple(names)


def decode_rows(rows: Mapping[str, bytes]) -> tuple[PeakMemory, dict[str, str]]:
    """The memory of the rows that decode, and limit -> why for those that do not."""
    limits: dict[str, LimitMemory] = {}
    problems: dict[str, str] = {}
    cache: dict[bytes, tuple[str, ...]] = {}
    for name, blob in rows.items():
        try:
            limits[name] = decode(blob, cache)
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
            # Taking over as leader: the stored record and what this process saw, tenant by
            # tenant (the higher level wins): the last leader may have crashed, or failed to
            # save, while this process kept watching.
            memory = merge(memory, self.memory)
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
        if not (self._loaded and self._leading):
            return  # never saved over a record this leader has not read
        rows = encode_all(self.memory)
        try:
            self.store.save_peak_memory(rows, at=now)
        except StoreError as exc:
            self.metrics.errors_total.labels(component="store", reason="memory_save_failed").inc()
            self.log.warning("peak memory not saved (%s): kept in this process, saved at the "
                             "next cycle", exc)  # fmt: skip
            self.report.event(now, "peak_memory_save_failed", level="warning",
                              component="store", error=str(exc))  # fmt: skip
