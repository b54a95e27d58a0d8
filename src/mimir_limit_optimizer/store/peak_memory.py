"""The engine's long-term peak memory in the store: one row per limit, each an opaque blob
(its encoding is the controller's, controller/peak_memory.py). A save replaces every row in
one transaction, so a reader sees one cycle's memory or the one before, never a mix."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager

from sqlalchemy import Connection, delete, insert, select

from mimir_limit_optimizer.store.schema import Tables


class PeakMemoryMixin:
    """The peak memory methods of `Store` (it provides `_tables` and `_transaction`)."""

    _tables: Tables

    def _transaction(
        self, doing: str, *, write: bool = False
    ) -> AbstractContextManager[Connection]:  # pragma: no cover - provided by Store
        raise NotImplementedError

    def save_peak_memory(self, rows: Mapping[str, tuple[bytes, int]], *, at: float) -> None:
        """Replace the stored memory with `rows`: limit -> (blob, entries in it)."""
        table = self._tables.peak_memory
        values = [
            {"limit_name": name, "data": bytes(blob), "entries": int(entries), "updated_at": at}
            for name, (blob, entries) in rows.items()
        ]
        with self._transaction("saving the peak memory", write=True) as conn:
            conn.execute(delete(table))
            if values:
                conn.execute(insert(table), values)

    def load_peak_memory(self) -> dict[str, bytes]:
        """limit -> its stored blob (empty before the first save)."""
        table = self._tables.peak_memory
        with self._transaction("loading the peak memory") as conn:
            rows = conn.execute(select(table.c.limit_name, table.c.data)).all()
        return {str(name): bytes(data) for name, data in rows}

    def peak_memory_updated_at(self) -> float | None:
        """When the stored memory was last saved (unix seconds), or None."""
        table = self._tables.peak_memory
        with self._transaction("reading when the peak memory was saved") as conn:
            at = conn.scalar(select(table.c.updated_at).limit(1))
        return None if at is None else float(at)
