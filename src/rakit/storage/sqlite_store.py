"""``SQLiteLogStore``: the node's durable Raft state in one SQLite file (older data dirs; migrated).

Nodes now write ``file_store.FileLogStore``; this store is kept to read an
older data dir's ``raft.db`` once, when ``DataDir`` migrates it, and as the
baseline of ``bench/storage_append.py``.

Why SQLite: the standard library ships it, and its write-ahead log gives us
atomic, checksummed, fsynced batches for free -- a torn last write is
dropped by the WAL checksums on the next open instead of being parsed.

Rules:

1. One transaction, hence one WAL fsync (``journal_mode=WAL``,
   ``synchronous=FULL``), per ``save``/``compact`` call, i.e. per Ready.
   Entries go in with one ``executemany``.
2. Semantics are those of ``memory.MemoryLogStore`` (its docstring lists
   them); the contract suite runs against both.
3. Three tables: ``hard_state`` (one row), ``entries`` (index primary key,
   term, kind, data blob) and ``snapshot`` (one row: index, term, voters and
   learners as JSON, data blob).  Schema 2 added ``snapshot.learners``;
   opening a schema-1 file adds the column (``'[]'``: a snapshot from before
   learners existed has none) and marks the file 2, which an older rakit
   then refuses to open rather than drop the learners it does not know.
4. ``load`` trusts nothing it cannot check: it returns only the contiguous
   run of entries after the snapshot (indices step by one, terms never go
   down), deletes whatever follows a gap, and logs a warning.
5. Any ``sqlite3.Error`` out of ``save``/``compact`` (disk full, EIO on
   fsync) means the write may or may not be on disk: the node must stop,
   not retry.
6. One thread at a time: the node's driver calls from a single-thread
   executor, hence ``check_same_thread=False`` and no locking here.

Twin: ``memory.MemoryLogStore`` (as hashicorp/raft's ``inmem_store.go``).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rakit.raft.messages import Entry, HardState, Snapshot, SnapshotMeta
from rakit.storage.base import LoadedState
from rakit.storage.memory import check_contiguous

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hard_state (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    term INTEGER NOT NULL,
    vote TEXT,
    commit_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    idx INTEGER NOT NULL,
    term INTEGER NOT NULL,
    voters TEXT NOT NULL,
    data BLOB NOT NULL,
    learners TEXT NOT NULL DEFAULT '[]'
);
"""

_PUT_HARD_STATE = "INSERT OR REPLACE INTO hard_state (id, term, vote, commit_index) VALUES (0, ?, ?, ?)"
_PUT_SNAPSHOT = "INSERT OR REPLACE INTO snapshot (id, idx, term, voters, learners, data) VALUES (0, ?, ?, ?, ?, ?)"
_INSERT_ENTRY = "INSERT INTO entries (idx, term, kind, data) VALUES (?, ?, ?, ?)"


class SQLiteLogStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (rule 1).
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise
        self._saves = 0
        self._entries_written = 0

    def _setup(self) -> None:
        db = self._db
        # One connection in one process (the data dir is locked): no shared-memory WAL index
        # and no file locks per transaction, about 60 us off every save here.
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"{self.path}: cannot switch to WAL mode (got {mode})")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA fullfsync=ON")  # only matters on macOS: a real flush
        db.execute("PRAGMA wal_autocheckpoint=1000")  # pages, about 4 MiB
        db.execute("PRAGMA journal_size_limit=67108864")  # shrink the WAL back to 64 MiB
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"{self.path}: schema version {version} is newer than this rakit ({SCHEMA_VERSION})"
            )
        with self._txn():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            columns = {row[1] for row in db.execute("PRAGMA table_info(snapshot)")}
            if "learners" not in columns:  # a schema-1 file (rule 3)
                db.execute("ALTER TABLE snapshot ADD COLUMN learners TEXT NOT NULL DEFAULT '[]'")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        row = db.execute("SELECT idx, term FROM snapshot WHERE id = 0").fetchone()
        self._snap_index: int = row[0] if row else 0
        self._snap_term: int = row[1] if row else 0
        (last,) = db.execute("SELECT max(idx) FROM entries").fetchone()
        self._last_index = max(last or 0, self._snap_index)

    @contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _term_at(self, index: int) -> int | None:
        if index == self._snap_index:
            return self._snap_term
        row = self._db.execute("SELECT term FROM entries WHERE idx = ?", (index,)).fetchone()
        return int(row[0]) if row else None

    # -- LogStore -----------------------------------------------------------

    def load(self) -> LoadedState:
        db = self._db
        row = db.execute("SELECT term, vote, commit_index FROM hard_state WHERE id = 0").fetchone()
        hard_state = HardState(term=row[0], vote=row[1], commit=row[2]) if row else HardState()
        snapshot = None
        row = db.execute("SELECT idx, term, voters, data, learners FROM snapshot WHERE id = 0").fetchone()
        if row:
            meta = SnapshotMeta(index=row[0], term=row[1], voters=json.loads(row[2]), learners=json.loads(row[4]))
            snapshot = Snapshot(meta=meta, data=row[3])
        snap_index, snap_term = (row[0], row[1]) if row else (0, 0)

        entries: list[Entry] = []
        expect, min_term, bad = snap_index + 1, snap_term, None
        cursor = db.execute("SELECT idx, term, kind, data FROM entries WHERE idx > ? ORDER BY idx", (snap_index,))
        for idx, term, kind, data in cursor:
            if idx != expect or term < min_term:
                bad = (idx, term)
                break
            entries.append(Entry(term=term, index=idx, kind=kind, data=data))
            expect, min_term = idx + 1, term
        cursor.close()
        last = expect - 1
        if bad is not None:
            with self._txn():
                dropped = db.execute("DELETE FROM entries WHERE idx > ?", (last,)).rowcount
            log.warning(
                "%s: log broken after index %d (found index %d term %d): dropped %d entries",
                self.path,
                last,
                bad[0],
                bad[1],
                dropped,
            )
            if hard_state.commit > last:  # committed entries are gone: never point past the log
                log.warning("%s: lowered commit index %d to %d", self.path, hard_state.commit, last)
                hard_state = HardState(term=hard_state.term, vote=hard_state.vote, commit=last)
        self._snap_index, self._snap_term, self._last_index = snap_index, snap_term, last
        return LoadedState(hard_state=hard_state, snapshot=snapshot, entries=entries)

    def save(
        self,
        hard_state: HardState | None,
        entries: list[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        # Validate before writing anything; see MemoryLogStore.save.
        check_contiguous(entries)
        snap_index, snap_term, last = self._snap_index, self._snap_term, self._last_index
        keep_log = True
        if snapshot is not None:
            index = snapshot.meta.index
            if index < snap_index:
                raise ValueError(f"snapshot at {index} is older than the stored one at {snap_index}")
            keep_log = self._term_at(index) == snapshot.meta.term
            last = last if keep_log else index
            snap_index, snap_term = index, snapshot.meta.term
        if entries and entries[0].index <= snap_index:  # already covered by the snapshot
            entries = entries[snap_index - entries[0].index + 1 :]
        if entries and entries[0].index > last + 1:
            raise ValueError(f"entries from {entries[0].index} would leave a gap after {last}")
        if hard_state is None and not entries and snapshot is None:
            return

        with self._txn() as db:
            if snapshot is not None:
                self._put_snapshot(db, snapshot)
                if keep_log:
                    db.execute("DELETE FROM entries WHERE idx <= ?", (snap_index,))
                else:
                    db.execute("DELETE FROM entries")
            if entries:
                db.execute("DELETE FROM entries WHERE idx >= ?", (entries[0].index,))
                db.executemany(_INSERT_ENTRY, [(e.index, e.term, e.kind, e.data) for e in entries])
                last = entries[-1].index
            if hard_state is not None:
                db.execute(_PUT_HARD_STATE, (hard_state.term, hard_state.vote, hard_state.commit))
        self._snap_index, self._snap_term, self._last_index = snap_index, snap_term, last
        self._saves += 1
        self._entries_written += len(entries)

    def compact(self, snapshot: Snapshot) -> None:
        index = snapshot.meta.index
        if index < self._snap_index:
            raise ValueError(f"snapshot at {index} is older than the stored one at {self._snap_index}")
        with self._txn() as db:
            self._put_snapshot(db, snapshot)
            db.execute("DELETE FROM entries WHERE idx <= ?", (index,))
        self._snap_index, self._snap_term = index, snapshot.meta.term
        self._last_index = max(self._last_index, index)

    def close(self) -> None:
        self._db.close()

    # -- helpers ------------------------------------------------------------

    @staticmethod
    def _put_snapshot(db: sqlite3.Connection, snapshot: Snapshot) -> None:
        meta = snapshot.meta
        db.execute(
            _PUT_SNAPSHOT,
            (meta.index, meta.term, json.dumps(meta.voters), json.dumps(meta.learners), snapshot.data),
        )

    def statistics(self) -> dict[str, Any]:
        return {
            "saves": self._saves,
            "entries_written": self._entries_written,
            "snapshot_index": self._snap_index,
            "last_index": self._last_index,
        }
