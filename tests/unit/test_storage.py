"""The LogStore contract, run against FileLogStore, SQLiteLogStore and their in-memory twin.

Every test reads its result through ``reloaded()``, which also closes and
reopens the store and checks the reopened store loads the same state, so
each case doubles as a durability check for the two disk stores.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rakit.raft.messages import (
    ENTRY_CONF,
    ENTRY_NOOP,
    ConfChange,
    ConfEntry,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMeta,
    encode_conf_entry,
)
from rakit.storage.base import LoadedState, LogStore
from rakit.storage.file_store import FileLogStore
from rakit.storage.memory import MemoryLogStore
from rakit.storage.sqlite_store import SQLiteLogStore


class Harness:
    """A store plus the ability to 'restart' it (close and open again)."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind, self.path = kind, path
        self.store: LogStore = self._open()

    def _open(self) -> LogStore:
        if self.kind == "memory":
            return getattr(self, "store", None) or MemoryLogStore()
        if self.kind == "file":
            return FileLogStore(self.path.with_suffix(".wal"))
        return SQLiteLogStore(self.path)

    def reopen(self) -> None:
        self.store.close()
        self.store = self._open()

    def reloaded(self) -> LoadedState:
        before = self.store.load()
        self.reopen()
        after = self.store.load()
        assert after == before
        return after


@pytest.fixture(params=["memory", "sqlite", "file"])
def h(request: pytest.FixtureRequest, tmp_path: Path):
    harness = Harness(request.param, tmp_path / "raft.db")
    yield harness
    harness.store.close()


def ents(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(term=term, index=i, data=b"e%d" % i) for i in range(first, last + 1)]


def snap(index: int, term: int, voters: list[str] | None = None) -> Snapshot:
    return Snapshot(SnapshotMeta(index, term, voters or ["a", "b", "c"]), b"state@%d" % index)


def indices(state: LoadedState) -> list[int]:
    return [e.index for e in state.entries]


def test_empty_load(h: Harness) -> None:
    assert h.reloaded() == LoadedState()


def test_round_trip(h: Harness) -> None:
    hs = HardState(term=3, vote="n2", commit=4)
    entries = [
        Entry(term=1, index=1, kind=ENTRY_NOOP),
        Entry(term=2, index=2, data=b"\x00\xff binary"),
        Entry(term=3, index=3, data=b""),
        Entry(term=3, index=4, data=b"x" * 100_000),
    ]
    h.store.save(hs, entries)
    assert h.reloaded() == LoadedState(hard_state=hs, entries=entries)


def test_round_trip_with_snapshot(h: Harness) -> None:
    hs = HardState(term=5, vote=None, commit=12)
    s = snap(10, 4, ["n1", "n2"])
    h.store.save(hs, ents(11, 12, term=5), s)
    assert h.reloaded() == LoadedState(hard_state=hs, snapshot=s, entries=ents(11, 12, term=5))


def test_none_hard_state_keeps_stored_one(h: Harness) -> None:
    hs = HardState(term=2, vote="n1", commit=0)
    h.store.save(hs, [])
    h.store.save(None, ents(1, 3))
    state = h.reloaded()
    assert state.hard_state == hs and indices(state) == [1, 2, 3]


def test_appends_accumulate(h: Harness) -> None:
    for first in range(1, 30, 3):
        h.store.save(HardState(term=1, commit=first - 1), ents(first, first + 2))
    state = h.reloaded()
    assert state.entries == ents(1, 30)
    assert state.hard_state.commit == 27


def test_suffix_overwrite(h: Harness) -> None:
    h.store.save(None, ents(1, 10, term=1))
    h.store.save(None, ents(5, 6, term=2))  # a new leader's shorter log wins
    assert h.reloaded().entries == ents(1, 4, term=1) + ents(5, 6, term=2)
    h.store.save(None, ents(7, 8, term=2))
    h.store.save(None, ents(1, 1, term=3))
    assert h.reloaded().entries == ents(1, 1, term=3)


def test_gap_is_refused_and_changes_nothing(h: Harness) -> None:
    h.store.save(HardState(term=1), ents(1, 3))
    with pytest.raises(ValueError, match="gap"):
        h.store.save(HardState(term=9), ents(5, 6))
    with pytest.raises(ValueError, match="contiguous"):
        h.store.save(HardState(term=9), [Entry(1, 4), Entry(1, 6)])
    state = h.reloaded()
    assert state.hard_state == HardState(term=1) and indices(state) == [1, 2, 3]


def test_empty_save_is_a_no_op(h: Harness) -> None:
    h.store.save(HardState(term=1), ents(1, 2))
    h.store.save(None, [])
    assert indices(h.reloaded()) == [1, 2]


def test_snapshot_keeps_matching_suffix(h: Harness) -> None:
    h.store.save(None, ents(1, 4, term=1) + ents(5, 10, term=2))
    s = snap(6, 2)
    h.store.save(HardState(term=2, commit=6), [], s)
    state = h.reloaded()
    assert state.snapshot == s
    assert state.entries == ents(7, 10, term=2)


def test_snapshot_drops_non_matching_log(h: Harness) -> None:
    h.store.save(None, ents(1, 10, term=1))
    s = snap(6, 2)  # the log has index 6 but at term 1: it diverged
    h.store.save(None, [], s)
    state = h.reloaded()
    assert state.snapshot == s and state.entries == []
    h.store.save(None, ents(7, 8, term=2))  # the log restarts after the snapshot
    assert h.reloaded().entries == ents(7, 8, term=2)


def test_snapshot_past_the_log_drops_it(h: Harness) -> None:
    h.store.save(None, ents(1, 3))
    h.store.save(None, [], snap(20, 4))
    assert h.reloaded().entries == []
    with pytest.raises(ValueError, match="gap"):
        h.store.save(None, ents(22, 22, term=4))


def test_snapshot_and_entries_in_one_save(h: Harness) -> None:
    h.store.save(None, ents(1, 5, term=1))
    h.store.save(HardState(term=3, commit=10), ents(9, 12, term=3), snap(10, 3))
    state = h.reloaded()
    assert state.snapshot == snap(10, 3)
    assert state.entries == ents(11, 12, term=3)  # 9 and 10 are covered by the snapshot


def test_entries_covered_by_stored_snapshot_are_skipped(h: Harness) -> None:
    h.store.save(None, ents(1, 10))
    h.store.compact(snap(5, 1))
    h.store.save(None, ents(3, 7))  # 3..5 compacted, 6..7 replace the suffix
    assert h.reloaded().entries == ents(6, 7)


def test_older_snapshot_is_refused(h: Harness) -> None:
    h.store.save(None, ents(1, 10))
    h.store.compact(snap(8, 1))
    with pytest.raises(ValueError, match="older"):
        h.store.save(None, [], snap(4, 1))
    with pytest.raises(ValueError, match="older"):
        h.store.compact(snap(4, 1))
    state = h.reloaded()
    assert state.snapshot == snap(8, 1) and indices(state) == [9, 10]


def test_same_snapshot_again_keeps_log(h: Harness) -> None:
    h.store.save(None, ents(1, 10))
    h.store.compact(snap(5, 1))
    h.store.save(None, [], snap(5, 1))
    assert indices(h.reloaded()) == [6, 7, 8, 9, 10]


def test_compact(h: Harness) -> None:
    h.store.save(HardState(term=1, commit=10), ents(1, 10))
    h.store.compact(snap(4, 1))
    state = h.reloaded()
    assert state.snapshot == snap(4, 1) and state.entries == ents(5, 10)
    h.store.compact(snap(9, 1))
    h.store.save(None, ents(11, 12))
    state = h.reloaded()
    assert state.snapshot == snap(9, 1) and state.entries == ents(10, 12)
    assert state.hard_state == HardState(term=1, commit=10)


def test_compact_whole_log(h: Harness) -> None:
    h.store.save(None, ents(1, 3))
    h.store.compact(snap(3, 1))
    assert h.reloaded().entries == []
    h.store.save(None, ents(4, 4))
    assert indices(h.reloaded()) == [4]


def test_store_keeps_its_own_copies(h: Harness) -> None:
    entries, voters = ents(1, 3), ["a", "b"]
    h.store.save(None, entries, snap(0, 0, voters))
    entries.append(Entry(1, 4))
    voters.append("c")
    loaded = h.store.load()
    loaded.entries.clear()
    loaded.snapshot.meta.voters.append("z")  # type: ignore[union-attr]
    state = h.reloaded()
    assert indices(state) == [1, 2, 3] and state.snapshot.meta.voters == ["a", "b"]  # type: ignore[union-attr]


def test_snapshot_learners_and_conf_entries_round_trip(h: Harness) -> None:
    """Membership (core.py rule 12): the snapshot's learners and ENTRY_CONF entries persist."""
    learners = ["d"]
    meta = SnapshotMeta(3, 1, ["a", "b", "c"], learners)
    conf = encode_conf_entry(ConfEntry(ConfChange.promote("d"), ConfState.of(["a", "b", "c", "d"])))
    h.store.save(None, [Entry(1, 4, ENTRY_CONF, conf)], Snapshot(meta, b"s"))
    learners.append("z")  # the store kept its own copy
    state = h.reloaded()
    assert state.snapshot is not None and state.snapshot.meta.learners == ["d"]
    assert state.snapshot.meta.conf_state() == ConfState.of(["a", "b", "c"], ["d"])
    assert state.entries == [Entry(1, 4, ENTRY_CONF, conf)]
    h.store.compact(Snapshot(SnapshotMeta(4, 1, ["a", "b", "c", "d"]), b"t"))
    state = h.reloaded()
    assert state.snapshot is not None and state.snapshot.meta.learners == []


# -- the twin agrees with both disk stores on random, Raft-shaped operation sequences --

op = st.one_of(
    st.tuples(
        st.just("save"),
        st.integers(1, 14),  # first index
        st.integers(0, 4),  # how many entries
        st.booleans(),  # a new term first
        st.booleans(),  # with a hard state
    ),
    st.tuples(st.just("snap"), st.integers(0, 14), st.booleans()),
    st.tuples(st.just("compact"), st.integers(0, 14)),
    st.tuples(st.just("reopen")),
)


def _compact_point(state: LoadedState, index: int) -> Snapshot:
    """A snapshot a node could take: at a stored index, with that entry's term."""
    snap_index = state.snapshot.meta.index if state.snapshot else 0
    snap_term = state.snapshot.meta.term if state.snapshot else 0
    by_index = {e.index: e.term for e in state.entries}
    index = min(max(index, snap_index), snap_index + len(state.entries))
    return snap(index, by_index.get(index, snap_term))


def _apply(store: LogStore, call: tuple) -> str:
    try:
        getattr(store, call[0])(*call[1:])
    except ValueError as exc:
        return str(exc)
    return "ok"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, max_size=25))
@pytest.mark.parametrize("disk", ["sqlite", "file"])
def test_twin_matches_the_disk_stores(tmp_path_factory: pytest.TempPathFactory, disk: str, ops: list[tuple]) -> None:
    path = tmp_path_factory.mktemp("twin") / "raft.db"
    memory, sqlite = Harness("memory", path), Harness(disk, path)
    term = 1  # terms only grow, as in Raft, so load() never sees a broken log
    try:
        for o in ops:
            if o[0] == "reopen":
                memory.reopen()
                sqlite.reopen()
                continue
            if o[0] == "save":
                _, first, n, bump, with_hs = o
                term += bump
                hs = HardState(term=term, commit=first - 1) if with_hs else None
                call: tuple = ("save", hs, ents(first, first + n - 1, term))
            elif o[0] == "snap":
                term += o[2]
                call = ("save", None, ents(o[1] + 1, o[1] + 1, term), snap(o[1], term))
            else:
                call = ("compact", _compact_point(memory.store.load(), o[1]))
            assert _apply(memory.store, call) == _apply(sqlite.store, call)
            assert memory.store.load() == sqlite.store.load()
            ms, ss = memory.store.statistics(), sqlite.store.statistics()  # type: ignore[attr-defined]
            for key in ("snapshot_index", "last_index"):
                assert ms[key] == ss[key], key
    finally:
        sqlite.store.close()


# -- SQLite only: load() repairs a broken log ---------------------------------


def _raw(path: Path, sql: str, *args: object) -> None:
    db = sqlite3.connect(path)
    with db:
        db.execute(sql, args)
    db.close()


def test_load_drops_everything_after_a_gap(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "raft.db"
    store = SQLiteLogStore(path)
    store.save(HardState(term=1, commit=9), ents(1, 10))
    store.close()
    _raw(path, "DELETE FROM entries WHERE idx = 6")
    store = SQLiteLogStore(path)
    with caplog.at_level(logging.WARNING):
        state = store.load()
    assert state.entries == ents(1, 5)
    assert state.hard_state.commit == 5  # never past the log
    assert "dropped 4 entries" in caplog.text
    store.save(None, ents(6, 7, term=2))  # writable and contiguous again
    store.close()
    store = SQLiteLogStore(path)
    assert store.load().entries == ents(1, 5) + ents(6, 7, term=2)
    store.close()


def test_load_drops_a_tail_whose_term_goes_down(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "raft.db"
    store = SQLiteLogStore(path)
    store.save(None, ents(1, 3, term=2) + ents(4, 5, term=3))
    store.close()
    _raw(path, "UPDATE entries SET term = 1 WHERE idx = 4")
    store = SQLiteLogStore(path)
    with caplog.at_level(logging.WARNING):
        assert store.load().entries == ents(1, 3, term=2)
    assert "broken after index 3" in caplog.text
    store.close()


def test_load_drops_a_log_that_does_not_follow_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    store = SQLiteLogStore(path)
    store.save(None, ents(1, 10))
    store.compact(snap(5, 1))
    store.close()
    _raw(path, "DELETE FROM entries WHERE idx = 6")
    store = SQLiteLogStore(path)
    state = store.load()
    assert state.snapshot == snap(5, 1) and state.entries == []
    store.close()


SCHEMA_1 = """
CREATE TABLE hard_state (id INTEGER PRIMARY KEY CHECK (id = 0), term INTEGER NOT NULL, vote TEXT,
                         commit_index INTEGER NOT NULL);
CREATE TABLE entries (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, kind INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 0), idx INTEGER NOT NULL, term INTEGER NOT NULL,
                       voters TEXT NOT NULL, data BLOB NOT NULL);
INSERT INTO hard_state VALUES (0, 2, 'a', 6);
INSERT INTO snapshot VALUES (0, 5, 1, '["a", "b", "c"]', x'73');
INSERT INTO entries VALUES (6, 2, 1, x'');
PRAGMA user_version = 1;
"""


def test_a_schema_1_file_still_loads_and_is_upgraded(tmp_path: Path) -> None:
    """A data dir written before learners existed: its snapshot's voters are the configuration."""
    path = tmp_path / "raft.db"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    db.close()
    store = SQLiteLogStore(path)
    state = store.load()
    assert state.hard_state == HardState(2, "a", 6)
    assert state.snapshot == Snapshot(SnapshotMeta(5, 1, ["a", "b", "c"], []), b"s")
    assert state.entries == [Entry(2, 6, ENTRY_NOOP)]
    store.compact(Snapshot(SnapshotMeta(6, 2, ["a", "b"], ["c"]), b"t"))
    store.close()
    store = SQLiteLogStore(path)
    assert store.load().snapshot == Snapshot(SnapshotMeta(6, 2, ["a", "b"], ["c"]), b"t")
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == 2
    store.close()


def test_a_file_from_a_newer_rakit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    _raw(path, "PRAGMA user_version = 99")
    with pytest.raises(sqlite3.DatabaseError, match="newer"):
        SQLiteLogStore(path)


def test_wal_mode_and_full_sync(tmp_path: Path) -> None:
    store = SQLiteLogStore(tmp_path / "raft.db")
    db = store._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


# -- FileLogStore only: the file is rewritten once mostly dead --------------------


def test_file_store_rewrites_a_mostly_dead_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rakit.storage import file_store

    monkeypatch.setattr(file_store, "REWRITE_BYTES", 4096)
    path = tmp_path / "raft.wal"
    store = FileLogStore(path)
    for last in range(10, 1500, 10):
        store.save(HardState(term=1, commit=last), ents(last - 9, last))
        if last % 50 == 0:
            store.compact(snap(last - 5, 1))
    stats = store.statistics()
    assert stats["rewrites"] >= 2 and stats["file_bytes"] < 8 * 4096
    before = store.load()
    assert before.snapshot == snap(1445, 1) and indices(before) == list(range(1446, 1491))
    store.close()
    assert not (tmp_path / "raft.wal.tmp").exists()
    store = FileLogStore(path)
    assert store.load() == before
    store.save(None, ents(1491, 1502))
    store.close()
    assert indices(FileLogStore(path).load())[-1] == 1502
