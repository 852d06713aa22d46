"""The disk stores (FileLogStore, SQLiteLogStore) under crashes and torn tails; the data-dir lock.

(a) A writer process appends batches and prints each batch's last index once
    ``save()`` returned; we SIGKILL it at a random moment and check every
    printed index survived, in a contiguous log.
(b) A log whose last record (SQLite: WAL frame) is torn or overwritten
    opens cleanly and holds the state after some earlier batch -- never a
    half-applied one.
(c) ``open_data_dir`` refuses a locked or unwritable directory with a
    one-line ``DataDirError``, and moves an older rakit's SQLite log to the
    file store.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rakit.raft.messages import Entry, HardState, Snapshot, SnapshotMeta
from rakit.storage.base import LoadedState
from rakit.storage.datadir import DataDirError, open_data_dir
from rakit.storage.file_store import FileLogStore, WalError
from rakit.storage.sqlite_store import SQLiteLogStore

STORES = {"file": FileLogStore, "sqlite": SQLiteLogStore}

DEADLINE = 30.0  # seconds to wait for the writer's output before failing

WRITER = r"""
import sys
from rakit.raft.messages import Entry, HardState, Snapshot, SnapshotMeta
from rakit.storage.file_store import FileLogStore
from rakit.storage.sqlite_store import SQLiteLogStore

def payload(i):
    return b"%d:" % i + b"x" * (i % 300)

path, batch, compact_every, kind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
store = (FileLogStore if kind == "file" else SQLiteLogStore)(path)
state = store.load()
last = state.entries[-1].index if state.entries else (state.snapshot.meta.index if state.snapshot else 0)
n = 0
while True:
    entries = [Entry(term=1, index=i, data=payload(i)) for i in range(last + 1, last + 1 + batch)]
    last += batch
    store.save(HardState(term=1, vote="n1", commit=last), entries)
    print(last, flush=True)
    n += 1
    if n % compact_every == 0 and last > 50:
        store.compact(Snapshot(SnapshotMeta(last - 50, 1, ["n1"]), b"snap%d" % (last - 50)))
"""


def payload(i: int) -> bytes:
    return b"%d:" % i + b"x" * (i % 300)


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        if line.endswith("\n"):  # only whole lines were acknowledged
            lines.put(int(line))
    lines.put(None)


def _run_and_kill(path: Path, batch: int, compact_every: int, kill_after: int, kind: str) -> int:
    """Start a writer, SIGKILL it after ``kill_after`` acks; return the last ack."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(batch), str(compact_every), kind],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    reader.start()
    acked: list[int] = []
    deadline = time.monotonic() + DEADLINE
    try:
        while len(acked) < kill_after:
            item = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert item is not None, f"writer exited early with {proc.wait()}"
            acked.append(item)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=DEADLINE)
    reader.join(timeout=DEADLINE)
    while (item := lines.get_nowait()) is not None:  # acks printed before the kill landed
        acked.append(item)
    assert proc.returncode == -signal.SIGKILL
    return max(acked)


def _check_log(state: LoadedState, acked: int) -> None:
    snap_index = state.snapshot.meta.index if state.snapshot else 0
    if state.snapshot:
        assert state.snapshot.data == b"snap%d" % snap_index
    idx = [e.index for e in state.entries]
    assert idx == list(range(snap_index + 1, snap_index + 1 + len(idx)))
    last = idx[-1] if idx else snap_index
    assert last >= acked, f"acknowledged index {acked} lost (log ends at {last})"
    assert all(e.data == payload(e.index) for e in state.entries)
    assert acked <= state.hard_state.commit <= last


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("seed", range(4))
def test_sigkill_keeps_every_acknowledged_batch(
    tmp_path: Path, seed: int, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(seed)
    path = tmp_path / "raft.log"
    acked = 0
    for _ in range(3):  # each round resumes from what the last crash left
        batch = rng.choice([1, 7, 64])
        acked = max(acked, _run_and_kill(path, batch, rng.randint(3, 20), rng.randint(5, 80), kind))
        with caplog.at_level(logging.WARNING, logger="rakit.storage"):
            store = STORES[kind](path)
            state = store.load()
        store.close()
        # A SIGKILL loses no written byte (the page cache survives it), so nothing is torn.
        assert not caplog.records, "load() had to repair the log"
        _check_log(state, acked)


# -- (b) torn WAL tail ---------------------------------------------------------


def _write_batches(path: Path, rng: random.Random, kind: str = "sqlite") -> tuple[SQLiteLogStore, list[int]]:
    """Write a few batches, leaving the store open so SQLite's WAL is not checkpointed."""
    store = STORES[kind](path)
    ends, last = [0], 0
    for _ in range(12):
        n = rng.randint(1, 6)
        entries = [Entry(term=1, index=i, data=payload(i)) for i in range(last + 1, last + n + 1)]
        last += n
        store.save(HardState(term=1, commit=last), entries)
        ends.append(last)
    return store, ends


def _recovered_batches(state: LoadedState, ends: list[int]) -> int:
    """Check a repaired log holds whole batches (entries with their hard state); its last index."""
    last = len(state.entries)
    assert [e.index for e in state.entries] == list(range(1, last + 1))
    assert all(e.data == payload(e.index) for e in state.entries)
    assert last in ends, "a batch was half applied"
    assert state.hard_state.commit == last  # hard state and entries went in together
    return last


def _wal_frame_size(db: Path) -> int:
    store = SQLiteLogStore(db)
    page = store._db.execute("PRAGMA page_size").fetchone()[0]
    store.close()
    return 24 + page


@pytest.mark.parametrize("damage", ["cut_mid_last_frame", "cut_in_last_frame_header", "garbage_tail", "cut_mid_wal"])
def test_torn_wal_tail(tmp_path: Path, damage: str) -> None:
    rng = random.Random(damage)
    src = tmp_path / "src.db"
    store, ends = _write_batches(src, rng)
    copy = tmp_path / "copy.db"
    shutil.copyfile(src, copy)
    shutil.copyfile(f"{src}-wal", f"{copy}-wal")  # -shm is rebuilt on open
    store.close()

    wal = Path(f"{copy}-wal")
    size, frame = wal.stat().st_size, _wal_frame_size(src)
    assert size > 32 and (size - 32) % frame == 0, "unexpected WAL layout"
    frames = (size - 32) // frame
    with open(wal, "r+b") as f:
        if damage == "cut_mid_last_frame":
            f.truncate(size - frame // 2)
        elif damage == "cut_in_last_frame_header":
            f.truncate(size - frame + 10)
        elif damage == "garbage_tail":
            f.seek(size - 64)
            f.write(rng.randbytes(64))
        else:
            f.truncate(32 + (frames // 2) * frame + frame // 3)

    store = SQLiteLogStore(copy)
    last = _recovered_batches(store.load(), ends)
    if damage != "cut_mid_wal":
        assert last == ends[-2], "only the torn last batch may be lost"

    # The recovered store takes new writes and keeps them.
    store.save(HardState(term=2, commit=last + 1), [Entry(term=2, index=last + 1)])
    store.close()
    store = SQLiteLogStore(copy)
    assert store.load().entries[-1] == Entry(term=2, index=last + 1)
    store.close()


def _record_ends(path: Path) -> list[int]:
    """Byte offsets where the file store's records end (its first one: where the header ends)."""
    data, pos, ends = path.read_bytes(), 12, [12]
    while True:
        length = int.from_bytes(data[pos : pos + 4], "little")
        if length == 0:
            return ends
        pos += 8 + length
        ends.append(pos)


@pytest.mark.parametrize(
    "damage",
    [
        "cut_mid_last_record",
        "cut_in_last_header",
        "garbage_tail",
        "flipped_byte_mid_log",
        "stale_records_after_torn_one",
    ],
)
def test_torn_file_tail(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(damage)
    path = tmp_path / "raft.wal"
    store, ends = _write_batches(path, rng, "file")
    store.close()
    records = _record_ends(path)
    assert len(records) == len(ends)  # one record per save, after the header
    with open(path, "r+b") as f:
        if damage == "cut_mid_last_record":
            f.truncate((records[-2] + records[-1]) // 2)
        elif damage == "cut_in_last_header":
            f.truncate(records[-2] + 5)
        elif damage == "garbage_tail":
            f.seek(records[-1] - 20)
            f.write(rng.randbytes(20))
        elif damage == "flipped_byte_mid_log":
            middle = records[len(records) // 2]
            f.seek(middle + 12)
            byte = f.read(1)
            f.seek(middle + 12)
            f.write(bytes([byte[0] ^ 0xFF]))
        else:  # the last record torn at its start, the ones after it whole: they must not come back
            f.seek(records[-4] + 8)
            f.write(b"\xff")

    if damage in ("flipped_byte_mid_log", "stale_records_after_torn_one", "garbage_tail"):
        # Whole records after the bad one, or a last record overwritten with garbage (no zeroed
        # sector, as an unfinished write leaves): damage, refused and left as it is
        # (tests/unit/test_storage_corruption.py has the rest, --repair included).
        before = path.read_bytes()
        with pytest.raises(WalError, match="byte"):
            FileLogStore(path)
        assert path.read_bytes() == before
        return
    with caplog.at_level(logging.WARNING, logger="rakit.storage"):
        store = FileLogStore(path)
    assert "log ends at byte" in caplog.text
    last = _recovered_batches(store.load(), ends)
    assert last == ends[-2]

    # The recovered store takes new writes, and what lay beyond the cut stays gone.
    store.save(HardState(term=2, commit=last + 1), [Entry(term=2, index=last + 1)])
    store.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rakit.storage"):
        store = FileLogStore(path)
    assert not caplog.records
    assert store.load().entries[-1] == Entry(term=2, index=last + 1)
    assert len(store.load().entries) == last + 1
    store.close()


def test_a_file_from_elsewhere_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "raft.wal"
    path.write_bytes(b"SQLite format 3\x00" + bytes(100))
    with pytest.raises(Exception, match="not a rakit log"):
        FileLogStore(path)


# -- (c) the data-dir lock and the migration --------------------------------------


def test_data_dir_is_locked(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "node1"
    first = open_data_dir(path)
    assert (path / "LOCK").read_text().strip() == str(os.getpid())
    with pytest.raises(DataDirError, match="in use by another node") as err:
        open_data_dir(path)
    assert "\n" not in str(err.value)
    first.close()
    with open_data_dir(path) as again:
        assert isinstance(again.log_store(), FileLogStore)
        assert again.log_store() is again.log_store()
        assert again.log_store().path == path / "raft.wal"


def test_an_older_data_dir_moves_to_the_file_store(tmp_path: Path) -> None:
    old = SQLiteLogStore(tmp_path / "raft.db")
    snapshot = Snapshot(SnapshotMeta(5, 1, ["a", "b", "c"], ["d"]), b"state")
    old.save(HardState(term=3, vote="a", commit=7), [Entry(1, i, data=b"%d" % i) for i in range(1, 9)])
    old.compact(snapshot)
    old.save(None, [Entry(3, 9, data=b"nine")])
    before = old.load()
    old.close()
    with open_data_dir(tmp_path) as d:
        assert d.log_store().load() == before
    assert not list(tmp_path.glob("raft.db*"))
    with open_data_dir(tmp_path) as d:
        assert d.log_store().load() == before


def test_data_dir_log_store_persists(tmp_path: Path) -> None:
    with open_data_dir(tmp_path) as d:
        d.log_store().save(HardState(term=4, vote="me"), [Entry(4, 1)])
    with open_data_dir(tmp_path) as d:
        state = d.log_store().load()
    assert state.hard_state == HardState(term=4, vote="me") and state.entries == [Entry(4, 1)]


def test_lock_dies_with_its_process(tmp_path: Path) -> None:
    code = (
        "import sys; from rakit.storage.datadir import open_data_dir\n"
        "d = open_data_dir(sys.argv[1]); print('ready', flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        with pytest.raises(DataDirError, match=f"pid {proc.pid}"):
            open_data_dir(tmp_path)
    finally:
        proc.kill()
        proc.wait(timeout=DEADLINE)
    open_data_dir(tmp_path).close()


def test_unwritable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for bad in (blocker / "node1", blocker):
        with pytest.raises(DataDirError) as err:
            open_data_dir(bad)
        message = str(err.value)
        assert "\n" not in message and str(blocker) in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_dir(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    try:
        with pytest.raises(DataDirError, match="not writable"):
            open_data_dir(ro)
    finally:
        ro.chmod(0o755)
