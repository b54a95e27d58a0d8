"""The long-term peak memory (issue 13 §4, "a quiet tenant that comes back"), each rule
against the values it must produce: the update (a higher window level replaces the
remembered one, a close one renews its time, a lower one leaves it, entries expire after
longTermWindow, absent tenants are kept until then), the floor (a tenant whose window no
longer holds its remembered level is lowered only to longTermKeep x that level + the
buffer, never raised by it), the whole engine with and without the memory, and the stored
form (encode/decode, corrupt rows, the store's table on SQLite and PostgreSQL)."""

from __future__ import annotations

import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.peak_memory import (
    CorruptMemoryError,
    decode,
    decode_rows,
    encode,
    encode_all,
)
from mimir_limit_optimizer.engine import postprocess as pp
from mimir_limit_optimizer.engine.peak_memory import (
    HELD_LEVEL,
    LimitMemory,
    PeakMemory,
    merge,
    recall,
    renew,
    update,
)
from mimir_limit_optimizer.engine.recommend import recommend
from mimir_limit_optimizer.engine.results import Reason
from mimir_limit_optimizer.engine.usage import Observation
from mimir_limit_optimizer.store import Store

CATALOGUE = load_catalogue()
RATE = CATALOGUE.limits["ingestion_rate"]
NOW = 1_800_000_000.0
DAY_S = 86400.0
MONTH = 30 * DAY_S
STEP = 300.0
T = 7 * 288  # a week of 5-minute points
TS = NOW - STEP * np.arange(T)[::-1]
NAN = np.nan


def arr(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def memory_of(tenants: tuple[str, ...], level: list[float], seen: list[float]) -> PeakMemory:
    return PeakMemory(
        {RATE.name: LimitMemory(tenants, np.array(level, np.float32), np.array(seen))}
    )


def recs_of(tenants: tuple[str, ...], held: list[float]) -> Any:
    """What `update` reads of a cycle's Recommendations: tenants and each limit's level."""
    result = SimpleNamespace(extra={HELD_LEVEL: np.array(held)})
    return SimpleNamespace(tenants=tenants, results={RATE.name: result})


# --- the update ---------------------------------------------------------------------------------
def test_renew_replaces_renews_keeps_and_expires() -> None:
    level, seen = renew(
        arr(100, NAN, 50, 100, 100),
        arr(NOW - DAY_S, NAN, NOW - DAY_S, NOW - MONTH - 1, NOW - DAY_S),
        arr(80, 95, 47, 70, NAN),
        now=NOW,
        long_term_window=MONTH,
    )
    # 80 < 90% of 100: remembered as it was; nothing remembered: the window's 95; 47 within
    # 90% of 50: renewed (the higher level kept); expired: the window's 70; no data: as was.
    assert level.tolist() == [100, 95, 50, 70, 100]
    assert seen.tolist() == [NOW - DAY_S, NOW, NOW, NOW, NOW - DAY_S]


def test_update_aligns_tenants_keeps_absent_ones_until_they_expire() -> None:
    before = memory_of(
        ("a", "b", "gone"), [100, 10, 500], [NOW - DAY_S, NOW - DAY_S, NOW - 2 * DAY_S]
    )
    after = update(before, recs_of(("b", "a", "new"), [30, 60, 7]), now=NOW, long_term_window=MONTH)
    m = after.limits[RATE.name]
    assert m.tenants == ("b", "a", "new", "gone")
    assert m.level.tolist() == [30, 100, 7, 500]
    assert m.seen_at.tolist() == [NOW, NOW - DAY_S, NOW, NOW - 2 * DAY_S]
    # A month after "gone" was last seen, it is forgotten; the others were renewed since.
    later = NOW - 2 * DAY_S + MONTH + 1
    again = update(
        after, recs_of(("b", "a", "new"), [30, 100, 7]), now=later, long_term_window=MONTH
    )
    assert again.limits[RATE.name].tenants == ("b", "a", "new")
    assert again.entries == 3


def test_update_off_is_empty_and_limits_not_computed_expire() -> None:
    before = memory_of(("a",), [100], [NOW - DAY_S])
    assert update(before, recs_of(("a",), [50]), now=NOW, long_term_window=0).entries == 0
    other = SimpleNamespace(tenants=("a",), results={})
    assert update(before, other, now=NOW, long_term_window=MONTH).entries == 1
    assert update(before, other, now=NOW + MONTH, long_term_window=MONTH).entries == 0


def test_recall_aligns_and_hides_expired_entries() -> None:
    memory = memory_of(("a", "b"), [100, 200], [NOW - 2 * MONTH, NOW - DAY_S])
    found = recall(memory, RATE.name, ("b", "x", "a"), now=NOW, long_term_window=MONTH)
    assert found is not None
    level, seen = found
    assert np.array_equal(level, arr(200, NAN, NAN), equal_nan=True)
    assert np.array_equal(seen, arr(NOW - DAY_S, NAN, NAN), equal_nan=True)
    assert recall(memory, RATE.name, ("a",), now=NOW, long_term_window=0) is None
    assert (
        recall(memory, "max_global_series_per_user", ("a",), now=NOW, long_term_window=MONTH)
        is None
    )


# --- the floor ---------------------------------------------------------------------------------
def test_memory_floor_lowers_part_of_the_way_and_never_raises() -> None:
    value, hit = pp.memory_floor(
        arr(500, 500, 500, 500, 500),
        arr(2000, 2000, 900, 2000, 2000),  # in force
        arr(1000, 1000, 1000, NAN, 1000),  # remembered
        np.array([True, True, True, True, False]),  # below the remembered level
        arr(20, 50, 20, 20, 20),  # buffer %
        keep=1.0,
    )
    # 1000 x 1.2; 1000 x 1.5; at most the limit in force (900); nothing remembered;
    # the window holds its level: untouched.
    assert value.tolist() == [1200, 1500, 900, 500, 500]
    assert hit.tolist() == [True, True, True, False, False]
    half, _ = pp.memory_floor(arr(500), arr(2000), arr(1000), np.array([True]), arr(20), keep=0.5)
    assert half.tolist() == [600]


def _observe(level: float) -> Observation:
    return Observation(
        tenants=("t",),
        timestamps=TS,
        step=STEP,
        usage={RATE.name: np.full((1, T), level)},
        discards={RATE.name: np.zeros((1, T))},
        current={RATE.name: arr(2000)},
    )


def test_the_engine_holds_a_tenant_quiet_for_the_whole_window_near_its_remembered_level() -> None:
    # The whole week at 500; 10 days ago it held 1000 a day. Without the memory: lowered
    # towards 500; with it: to 1000 + the 20% buffer (flat usage: the buffer unscaled).
    obs = _observe(500.0)
    memory = memory_of(("t",), [1000], [NOW - 10 * DAY_S])
    alone = recommend(obs, Config(), CATALOGUE, now=NOW, limits=[RATE.name]).results[RATE.name]
    kept = recommend(obs, Config(), CATALOGUE, now=NOW, limits=[RATE.name], memory=memory)
    result = kept.results[RATE.name]
    assert alone.recommended[0] < 700
    assert result.recommended[0] == 1200.0
    assert Reason.LONG_TERM_MEMORY in Reason(int(result.flags[0]))
    assert any("10d ago" in r and "longTermWindow" in r for r in result.reasons(0))
    part = Config.model_validate({"trendAnalysis": {"adaptive": {"longTermKeep": 0.5}}})
    half = recommend(obs, part, CATALOGUE, now=NOW, limits=[RATE.name], memory=memory)
    assert half.results[RATE.name].recommended[0] == 600.0
    # Expired (longTermWindow 7d < 10 days ago), or off: as without the memory.
    for adaptive in ({"longTermWindow": "7d"}, {"longTermWindow": 0}):
        cfg = Config.model_validate({"trendAnalysis": {"adaptive": adaptive}})
        gone = recommend(obs, cfg, CATALOGUE, now=NOW, limits=[RATE.name], memory=memory)
        assert gone.results[RATE.name].recommended[0] == alone.recommended[0]
    # The cycle's update keeps the remembered level and time (500 < 90% of 1000).
    after = update(memory, kept, now=NOW, long_term_window=MONTH).limits[RATE.name]
    assert after.level.tolist() == [1000] and after.seen_at.tolist() == [NOW - 10 * DAY_S]


def test_a_busy_window_is_not_held_by_the_memory_and_renews_it() -> None:
    obs = _observe(950.0)  # within 90% of the remembered 1000: the window holds its level
    memory = memory_of(("t",), [1000], [NOW - 10 * DAY_S])
    recs = recommend(obs, Config(), CATALOGUE, now=NOW, limits=[RATE.name], memory=memory)
    result = recs.results[RATE.name]
    assert Reason.LONG_TERM_MEMORY not in Reason(int(result.flags[0]))
    after = update(memory, recs, now=NOW, long_term_window=MONTH).limits[RATE.name]
    assert after.level.tolist() == [1000] and after.seen_at.tolist() == [NOW]


# --- the stored form ---------------------------------------------------------------------------
def test_encode_decode_round_trip() -> None:
    memory = LimitMemory(
        ("a", "b-ü", "c"), np.array([1.5, NAN, 3e9], np.float32), arr(NOW, NAN, NOW - 1)
    )
    back = decode(encode(memory))
    assert back.tenants == memory.tenants
    assert np.array_equal(back.level, memory.level, equal_nan=True)
    assert np.array_equal(back.seen_at, memory.seen_at, equal_nan=True)


BAD_NAMES = struct.pack("<6sIII", b"MLOPM2", 1, 3, 0) + b"abc" + bytes(4)


@pytest.mark.parametrize(
    "blob, why",
    [
        (b"not zlib", "shorter than the header"),
        (b"XXXXXX" + bytes(12), "unknown format"),
        (BAD_NAMES, "tenant names are not compressed data"),
    ],
    ids=["short", "unknown-format", "names"],
)
def test_corrupt_rows_are_named_and_skipped(blob: bytes, why: str) -> None:
    with pytest.raises(CorruptMemoryError, match=why):
        decode(blob)
    good = encode(LimitMemory(("a",), np.array([1.0], np.float32), arr(NOW)))
    memory, problems = decode_rows({"ok": good, "bad": blob, "cut": good[:-3]})
    assert list(memory.limits) == ["ok"]
    assert why in problems["bad"] and "where the header says" in problems["cut"]


def test_the_limits_of_a_save_share_their_tenant_names() -> None:
    level, seen = np.array([1.0, 2.0], np.float32), arr(NOW, NOW)
    tenants = ("a", "b")
    memory = PeakMemory(
        {"x": LimitMemory(tenants, level, seen), "y": LimitMemory(tenants, level * 2, seen)}
    )
    rows = encode_all(memory)
    back, problems = decode_rows({name: blob for name, (blob, _) in rows.items()})
    assert problems == {} and back.limits["y"].level.tolist() == [2.0, 4.0]
    assert back.limits["x"].tenants is back.limits["y"].tenants  # decoded once
    assert [known for _, known in rows.values()] == [2, 2]


def test_the_store_replaces_the_whole_memory_at_each_save(store: Store) -> None:
    assert store.load_peak_memory() == {} and store.peak_memory_updated_at() is None
    store.save_peak_memory({"a": (b"one", 1), "b": (b"two", 2)}, at=NOW)
    store.save_peak_memory({"b": (b"three", 3)}, at=NOW + 60)
    assert store.load_peak_memory() == {"b": b"three"}
    assert store.peak_memory_updated_at() == NOW + 60


def test_a_plan_outside_the_service_reads_the_saved_memory_and_never_creates_a_store(
    tmp_path: Path,
) -> None:
    from mimir_limit_optimizer.controller.plan_inputs import memory_from_store

    config = Config.model_validate({"dataDir": str(tmp_path / "data")})
    assert memory_from_store(config) is None
    assert not (tmp_path / "data").exists()  # `mlo plan` never creates the service's store
    saved = LimitMemory(("a", "b"), np.array([100, 200], np.float32), arr(NOW, NOW - 60))
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'mlo.db'}") as store:
        store.save_peak_memory({RATE.name: (encode(saved), 2)}, at=NOW)
    memory = memory_from_store(config)
    assert memory is not None and memory.limits[RATE.name].level.tolist() == [100, 200]
    off = config.model_copy(update={"trend_analysis": Config.model_validate(
        {"trendAnalysis": {"adaptive": {"longTermWindow": 0}}}).trend_analysis})  # fmt: skip
    assert memory_from_store(off) is None


@pytest.mark.parametrize(
    "key, value, words",
    [("longTermKeep", "1.5", "less than or equal to 1"), ("longTermWindow", "-1d", "0")],
)
def test_bad_memory_settings_name_file_line_and_key(
    tmp_path: Path, key: str, value: str, words: str
) -> None:
    from mimir_limit_optimizer.config.errors import ConfigError
    from mimir_limit_optimizer.config.loader import load_config

    file = tmp_path / "config.yaml"
    file.write_text(f"trendAnalysis:\n  adaptive:\n    {key}: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(file, env={}, cli={}, catalogue=CATALOGUE)
    text = str(caught.value)
    assert f"config.yaml:3: trendAnalysis.adaptive.{key}" in text and words in text


def _keeper(store: Store) -> Any:
    import logging

    from prometheus_client import CollectorRegistry

    from mimir_limit_optimizer.controller.peak_memory import PeakMemoryKeeper
    from mimir_limit_optimizer.controller.reporter import Reporter
    from mimir_limit_optimizer.observability.metrics import ControllerMetrics
    from mimir_limit_optimizer.store import AuditLog

    log = logging.getLogger("peak-memory-test")
    report = Reporter(audit=AuditLog(store, logger=log), alerts=None, logger=log, component="t")
    metrics = ControllerMetrics(CollectorRegistry())
    return PeakMemoryKeeper(store=store, report=report, metrics=metrics, logger=log)


def test_only_the_leader_saves_and_a_new_leader_reads_the_record_first(tmp_path: Path) -> None:
    config = Config()
    with Store.open(f"sqlite:///{tmp_path / 'mlo.db'}") as store:
        leader, follower = _keeper(store), _keeper(store)
        for keeper, leads in ((leader, True), (follower, False)):
            keeper.for_cycle(config, now=NOW, leader=leads)
        leader.after_cycle(recs_of(("a",), [100]), config, now=NOW, leader=True)
        # The follower saw a quieter window itself; it never saves.
        follower.after_cycle(recs_of(("a",), [10]), config, now=NOW, leader=False)
        assert decode_rows(store.load_peak_memory())[0].limits[RATE.name].level.tolist() == [100]
        # The leader remembers more, later; then the follower takes over: it reads that first.
        leader.after_cycle(recs_of(("a", "b"), [100, 70]), config, now=NOW + 300, leader=True)
        taken = follower.for_cycle(config, now=NOW + 600, leader=True)
        assert taken is not None and taken.limits[RATE.name].tenants == ("a", "b")
        assert taken.limits[RATE.name].level.tolist() == [100, 70]


def test_the_ui_what_if_plans_with_the_memory_the_cycles_use() -> None:
    # The UI's what-if must say what a cycle would: a tenant quiet for the whole window
    # keeps its remembered level there too (and without a memory, the window's level).
    from mimir_limit_optimizer.controller.ui_tools import ServiceTools
    from mimir_limit_optimizer.engine.results import render_value

    class Quiet:
        def collect(self, signals: object, *, start: float, end: float) -> Observation:
            return _observe(500.0)

    def what_if(memory: PeakMemory | None) -> dict[str, str]:
        parts = SimpleNamespace(
            config=Config,
            clock=lambda: NOW,
            catalogue=CATALOGUE,
            peak_memory=lambda: memory,
        )
        read = SimpleNamespace(p=parts)
        tools = ServiceTools(read, lambda config, now: Quiet())  # type: ignore[arg-type]
        rows = tools.what_if("t", buffer=None, strategy=None)["rows"]
        return next(r for r in rows if r["limit"] == RATE.name)

    remembered = what_if(memory_of(("t",), [1000], [NOW - 10 * DAY_S]))
    alone = what_if(None)
    assert remembered["now"] == render_value(1200.0, RATE)  # 1000 + the 20% buffer
    assert alone["now"] != remembered["now"]


def test_a_new_leader_that_cannot_read_the_record_saves_nothing(tmp_path: Path) -> None:
    # A follower that loaded the record once, then fails to read it on taking over, must not
    # save its own memory over the last leader's record.
    from mimir_limit_optimizer.store import StoreError

    config = Config()
    with Store.open(f"sqlite:///{tmp_path / 'mlo.db'}") as store:
        leader, follower = _keeper(store), _keeper(store)
        leader.for_cycle(config, now=NOW, leader=True)
        follower.for_cycle(config, now=NOW, leader=False)
        leader.after_cycle(recs_of(("a",), [100]), config, now=NOW, leader=True)
        follower.after_cycle(recs_of(("b",), [5]), config, now=NOW, leader=False)
        saved = dict(store.load_peak_memory())

        def unreadable() -> dict[str, bytes]:
            raise StoreError("the database is gone")

        store.load_peak_memory = unreadable  # type: ignore[method-assign]
        follower.for_cycle(config, now=NOW + 300, leader=True)
        follower.after_cycle(recs_of(("b",), [5]), config, now=NOW + 300, leader=True)
        del store.load_peak_memory
        assert store.load_peak_memory() == saved  # the last leader's record, untouched


def test_a_takeover_merges_tenant_by_tenant_the_higher_level_wins() -> None:
    stored = PeakMemory(
        {RATE.name: LimitMemory(("a", "b"), np.array([100, 10], np.float32), arr(NOW, NOW))}
    )
    seen_here = PeakMemory(
        {
            RATE.name: LimitMemory(
                ("b", "c", "a"),
                np.array([50, 7, 100], np.float32),
                arr(NOW + 60, NOW + 60, NOW + 60),
            ),
            "other": LimitMemory(("a",), np.array([1], np.float32), arr(NOW)),
        }
    )
    merged = merge(stored, seen_here)
    rate = merged.limits[RATE.name]
    assert rate.tenants == ("a", "b", "c")
    # a: equal levels, the later time; b: this process saw more; c: only here.
    assert rate.level.tolist() == [100, 50, 7]
    assert rate.seen_at.tolist() == [NOW + 60, NOW + 60, NOW + 60]
    assert merged.limits["other"].level.tolist() == [1]


def test_stored_entries_that_cannot_be_limits_are_forgotten() -> None:
    memory = LimitMemory(
        ("inf", "neg", "nan-time", "ok"),
        np.array([np.inf, -5, 10, 20], np.float32),
        arr(NOW, NOW, NAN, NOW),
    )
    back = decode(encode(memory))
    assert np.isnan(back.level[:3]).all() and back.level[3] == 20
    assert np.isnan(back.seen_at[:3]).all() and back.seen_at[3] == NOW


def test_a_time_ahead_of_now_expires_like_now() -> None:
    # A clock that jumped ahead for one save must not keep an entry alive for years: the
    # next cycle's update counts it as seen now, and it expires a window later.
    ahead = NOW + 5 * 365 * DAY_S
    found = recall(memory_of(("t",), [1000], [ahead]), RATE.name, ("t",), now=NOW,
                   long_term_window=MONTH)  # fmt: skip
    assert found is not None and found[1].tolist() == [NOW]  # never an age below zero
    level, seen = renew(arr(1000), arr(ahead), arr(NAN), now=NOW, long_term_window=MONTH)
    assert level.tolist() == [1000] and seen.tolist() == [NOW]
    later = memory_of(("t",), level.tolist(), seen.tolist())
    found = recall(later, RATE.name, ("t",), now=NOW + MONTH + 1, long_term_window=MONTH)
    assert found is not None and np.isnan(found[0]).all()


def test_a_plan_whose_memory_cannot_be_read_plans_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The memory is an optional input of `mlo recommend`/`mlo plan`: a store that cannot be
    # read for it (a PostgreSQL only the cluster reaches) is one warning, not a failed command.
    from typer.testing import CliRunner

    from mimir_limit_optimizer.cli.app import app
    from mimir_limit_optimizer.controller import plan_inputs
    from mimir_limit_optimizer.store import StoreError

    def unreachable(config: Config) -> PeakMemory | None:
        raise StoreError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(plan_inputs, "memory_from_store", unreachable)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"dataDir: {tmp_path / 'data'}\nsynthetic:\n  tenantCount: 3\n  history: 1d\n"
        "trendAnalysis:\n  analysisWindow: 1d\n  minHistory: 1h\n"
    )
    result = CliRunner().invoke(app, ["recommend", "-c", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "long-term peak memory not read" in result.stderr
    assert "Connection refused" in result.stderr
    assert '"source": "synthetic cluster (3 tenants' in result.stdout  # the plan was made
