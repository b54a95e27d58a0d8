"""The long-term peak memory in the store (issue 13 §4) never blocks a cycle: it survives a
restart; a corrupt row is logged, audited and counted, that limit starts empty and the next
save replaces it; a missing table (a store restored from before it existed) is logged and
nothing is saved until it loads; a store that fails while saving it (SQLite and a real
PostgreSQL) fails no cycle, and the process keeps what it remembered and saves it once the
store takes writes again. Dry-run updates the memory too (it is the optimizer's own record)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from mimir_limit_optimizer.controller.peak_memory import decode_rows
from mimir_limit_optimizer.controller.service import Service
from mimir_limit_optimizer.store import Store
from tests.pgserver import create_database
from tests.reliability.harness import (
    HAND_WRITTEN,
    Workdir,
    small_cluster_settings,
    standalone_service,
    store_errors,
    store_view,
    workdir,
)

SETTINGS = small_cluster_settings("dry-run")
LIMITS = {"ingestion_rate", "max_global_series_per_user"}


def service(work: Workdir) -> Service:
    return standalone_service(work, "memory-faults")


def stored(url: str) -> dict[str, int]:
    """limit -> tenants remembered, as a fresh process reads the store."""
    with Store.open(url) as store:
        memory, problems = decode_rows(store.load_peak_memory())
    assert problems == {}
    return {name: m.known for name, m in memory.limits.items()}


def saved_at(url: str) -> float | None:
    with Store.open(url) as store:
        return store.peak_memory_updated_at()


def execute(url: str, *statements: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def test_the_memory_survives_a_restart_and_dry_run_keeps_it(tmp_path: Path) -> None:
    work = workdir(tmp_path, SETTINGS, HAND_WRITTEN)
    first = service(work)
    assert first.cycle().ok
    first.store.close()
    assert stored(work.store_url) == dict.fromkeys(LIMITS, 3)  # dry-run saved it
    assert work.target.read_text() == HAND_WRITTEN  # and wrote no target
    again = service(work)
    memory = again.reconciler.peak_memory
    assert memory.for_cycle(again.provider.config, now=0.0, leader=True) is not None
    assert memory.memory is not None and memory.memory.entries == 6  # read back at start
    again.store.close()


def test_a_corrupt_row_starts_that_limit_empty_and_is_replaced(tmp_path: Path) -> None:
    work = workdir(tmp_path, SETTINGS, HAND_WRITTEN)
    first = service(work)
    assert first.cycle().ok
    first.store.close()
    execute(work.store_url, "UPDATE peak_memory SET data = x'00ff00' "
                            "WHERE limit_name = 'ingestion_rate'")  # fmt: skip
    built = service(work)
    try:
        assert built.cycle().ok
        assert store_errors(built, "memory_unreadable") == 1
    finally:
        built.store.close()
    view = store_view(work.store_url, work.target)
    unreadable = [e for e in view.audit if e.action == "peak_memory_unreadable"]
    assert len(unreadable) == 1 and unreadable[0].details["limit"] == "ingestion_rate"
    assert "shorter than the header" in str(unreadable[0].details["error"])
    assert stored(work.store_url) == dict.fromkeys(LIMITS, 3)  # replaced by a good row


def test_a_missing_table_is_logged_and_nothing_is_saved_until_it_loads(tmp_path: Path) -> None:
    work = workdir(tmp_path, SETTINGS, HAND_WRITTEN)
    built = service(work)
    try:
        execute(work.store_url, "DROP TABLE peak_memory")
        assert built.cycle().ok  # the memory is the engine's aid, never a cycle's condition
        assert store_errors(built, "memory_unreadable") == 1
        assert built.reconciler.peak_memory.memory is not None  # remembered in the process
        assert built.reconciler.peak_memory.memory.entries == 6
        assert built.cycle().ok  # still failing: retried each cycle, never saved over
        assert store_errors(built, "memory_unreadable") == 2
    finally:
        built.store.close()
    view = store_view(work.store_url, work.target)
    assert [e.action for e in view.audit].count("peak_memory_unreadable") == 2
    assert "peak_memory_save_failed" not in view.actions()


FAIL_SQLITE = (
    "CREATE TRIGGER full_disk BEFORE INSERT ON peak_memory "
    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
)
FAIL_POSTGRES = (
    "CREATE FUNCTION full_disk() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION 'could not extend file: No space left on device'; END $$ "
    "LANGUAGE plpgsql",
    "CREATE TRIGGER full_disk BEFORE INSERT ON peak_memory "
    "FOR EACH ROW EXECUTE FUNCTION full_disk()",
)
HEAL_SQLITE = ("DROP TRIGGER full_disk",)
HEAL_POSTGRES = ("DROP TRIGGER full_disk ON peak_memory",)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_store_failing_while_saving_fails_no_cycle_and_loses_nothing(
    tmp_path: Path, request: pytest.FixtureRequest, database: str
) -> None:
    settings = SETTINGS
    if database == "postgresql":
        url = create_database(request.getfixturevalue("postgres_url"))
        settings += f"store:\n  url: {url}\n"
    work = workdir(tmp_path, settings, HAND_WRITTEN)
    built = service(work)
    url = work.store_url if database == "sqlite" else url
    try:
        assert built.cycle().ok
        before, first_save = stored(url), saved_at(url)
        assert before == dict.fromkeys(LIMITS, 3) and first_save is not None
        execute(url, *((FAIL_SQLITE,) if database == "sqlite" else FAIL_POSTGRES))
        assert built.cycle().ok
        assert store_errors(built, "memory_save_failed") == 1
        assert stored(url) == before  # the failed save rolled back: the last record stands
        assert saved_at(url) == first_save
        assert built.reconciler.peak_memory.memory is not None
        assert built.reconciler.peak_memory.memory.entries == 6  # the process remembers
        execute(url, *(HEAL_SQLITE if database == "sqlite" else HEAL_POSTGRES))
        assert built.cycle().ok
        assert store_errors(built, "memory_save_failed") == 1
        assert stored(url) == before
        assert (saved_at(url) or 0.0) > first_save  # saved again once the store takes writes
    finally:
        built.store.close()
    failed = [e for e in store_view(url, work.target).audit
              if e.action == "peak_memory_save_failed"]  # fmt: skip
    assert len(failed) == 1
    assert "full" in str(failed[0].details["error"]) or "space" in str(failed[0].details["error"])


def test_the_service_plans_with_the_stored_memory(tmp_path: Path) -> None:
    """The wiring: what the store remembers reaches the engine at the next start. A level
    10x what a tenant sends now, remembered 10 days ago, holds its limit near that level
    (the long-term memory's reason), where the same cycle without it does not."""
    import numpy as np

    from mimir_limit_optimizer.controller.peak_memory import encode_all
    from mimir_limit_optimizer.engine.peak_memory import PeakMemory
    from mimir_limit_optimizer.engine.results import Reason

    work = workdir(tmp_path, SETTINGS, HAND_WRITTEN)
    first = service(work)
    before = first.cycle()
    assert before.ok and before.recommendations is not None
    first.store.close()
    rate = before.recommendations.results["ingestion_rate"]
    with Store.open(work.store_url) as store:
        memory, _ = decode_rows(store.load_peak_memory())
        stored = memory.limits["ingestion_rate"]
        ago = float(np.nanmax(stored.seen_at)) - 10 * 86400.0
        big = type(stored)(stored.tenants, stored.level * 10, np.full(len(stored.tenants), ago))
        store.save_peak_memory(encode_all(PeakMemory({"ingestion_rate": big})), at=ago)
    again = service(work)
    try:
        after = again.cycle()
    finally:
        again.store.close()
    assert after.ok and after.recommendations is not None
    held = after.recommendations.results["ingestion_rate"]
    assert all(Reason.LONG_TERM_MEMORY not in Reason(int(f)) for f in rate.flags)
    assert any(Reason.LONG_TERM_MEMORY in Reason(int(f)) for f in held.flags)
    assert np.nansum(held.target) > np.nansum(rate.target)
