"""FileLogStore and a damaged ``raft.wal``: only a torn final record is cut.

(a) Damage in the middle of the log (flipped bytes in a record's payload or
    header, a zeroed stretch) with valid records after it is refused: one
    ``WalError`` line naming the file, the byte offset and the ways back, and
    the file is left exactly as it was.
(b) A torn final record (cut short, or a bad checksum with only zeroed
    preallocated space after it) is still cut with a warning, as before.
(c) So damage can never silently take the persisted term or vote back.
(d) ``repair=True`` drops the damaged record and everything after it, says
    what it dropped, and keeps the latest term and vote the file shows; if
    that vote cannot be known, it refuses too.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rakit.raft.messages import Entry, HardState
from rakit.storage.datadir import DataDirError, open_data_dir
from rakit.storage.file_store import FileLogStore, WalError, _frame, _Record


def payload(i: int) -> bytes:
    return b"%d:" % i + b"x" * (i % 50)


def _record_ends(path: Path) -> list[int]:
    """Byte offsets where the records end (the first: where the file header ends)."""
    data, pos, ends = path.read_bytes(), 12, [12]
    while True:
        length = int.from_bytes(data[pos : pos + 4], "little")
        if length == 0:
            return ends
        pos += 8 + length
        ends.append(pos)


def _write(path: Path, saves: list[tuple[HardState | None, list[Entry]]]) -> list[int]:
    store = FileLogStore(path)
    for hard_state, entries in saves:
        store.save(hard_state, entries)
    store.close()
    return _record_ends(path)


def _batches(n: int, term: int = 1, first: int = 1, vote: str | None = "n1", size: int = 5):
    """``n`` saves of ``size`` entries each, each with its hard state."""
    saves = []
    for b in range(n):
        lo = first + b * size
        entries = [Entry(term=term, index=i, data=payload(i)) for i in range(lo, lo + size)]
        saves.append((HardState(term=term, vote=vote, commit=lo + size - 1), entries))
    return saves


def _flip(path: Path, offset: int, n: int = 4) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(n)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in old))


def _open(path: Path, caplog: pytest.LogCaptureFixture, **kw) -> FileLogStore:
    with caplog.at_level(logging.WARNING, logger="rakit.storage"):
        return FileLogStore(path, **kw)


# -- (a) mid-log damage is refused ------------------------------------------------


@pytest.mark.parametrize("where", ["payload", "length", "crc", "zeroed"])
def test_damage_in_the_middle_is_refused(tmp_path: Path, where: str) -> None:
    path = tmp_path / "raft.wal"
    ends = _write(path, _batches(40))
    mid = len(ends) // 2
    start = ends[mid - 1]  # the damaged record starts here
    if where == "payload":
        _flip(path, start + 8 + 10)
    elif where == "length":
        _flip(path, start, 3)
    elif where == "crc":
        _flip(path, start + 4)
    else:
        with open(path, "r+b") as f:
            f.seek(start)
            f.write(bytes(ends[mid + 1] - start))  # two whole records zeroed
    before = path.read_bytes()
    with pytest.raises(WalError) as err:
        FileLogStore(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    assert f"byte {start}" in message
    assert "--repair" in message and "learner" in message
    assert path.read_bytes() == before, "a refused log must not be touched"


def test_the_issue_case_four_bytes_in_a_follower_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """~275 acknowledged entries and a term-2 vote behind four flipped bytes: refused, not cut."""
    path = tmp_path / "raft.wal"
    saves = _batches(20, term=1, size=5) + [(HardState(term=2, vote="n2", commit=100), [])]
    saves += _batches(55, term=2, first=101, vote="n2", size=5)
    ends = _write(path, saves)
    _flip(path, ends[10] + 20)  # inside the 11th record, term 1
    with pytest.raises(WalError, match=r"term 2") as err:
        _open(path, caplog)
    assert "375" in str(err.value)  # the last index the later records reach
    assert "log ends at byte" not in caplog.text  # nothing was cut


def test_a_data_dir_refuses_it_in_one_line(tmp_path: Path) -> None:
    with open_data_dir(tmp_path) as d:
        store = d.log_store()
        for hard_state, entries in _batches(10):
            store.save(hard_state, entries)
    ends = _record_ends(tmp_path / "raft.wal")
    _flip(tmp_path / "raft.wal", ends[4] + 12)
    with open_data_dir(tmp_path) as d, pytest.raises(DataDirError) as err:
        d.log_store()
    message = str(err.value)
    assert "\n" not in message and "raft.wal" in message and f"byte {ends[4]}" in message


def test_a_whole_record_that_does_not_follow_is_refused(tmp_path: Path) -> None:
    """A record whose checksum matches was written whole: it is not a torn write."""
    path = tmp_path / "raft.wal"
    ends = _write(path, _batches(5))
    with open(path, "r+b") as f:
        f.seek(ends[-1])
        f.write(_frame(_Record(None, [Entry(term=1, index=99)])))  # a gap after index 25
    with pytest.raises(WalError, match=f"byte {ends[-1]}"):
        FileLogStore(path)


# -- (b) a torn final record is still cut --------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        "cut_mid_last_record",
        "cut_in_last_header",
        "garbage_length_last_record",
        "stray_bytes_after_the_end",
    ],
)
def test_a_torn_last_record_is_cut_with_a_warning(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "raft.wal"
    ends = _write(path, _batches(30))
    with open(path, "r+b") as f:
        if damage == "cut_mid_last_record":
            f.truncate((ends[-2] + ends[-1]) // 2)
        elif damage == "cut_in_last_header":
            f.truncate(ends[-2] + 5)
        elif damage == "garbage_length_last_record":
            f.seek(ends[-2])
            f.write((1000).to_bytes(4, "little"))
        else:
            f.seek(ends[-1] + 100)
            f.write(b"\x13\x37" * 10)
    store = _open(path, caplog)
    assert "log ends at byte" in caplog.text
    want = 150 if damage == "stray_bytes_after_the_end" else 145
    state = store.load()
    assert [e.index for e in state.entries] == list(range(1, want + 1))
    assert state.hard_state == HardState(term=1, vote="n1", commit=want)
    store.save(HardState(term=2, commit=want + 1), [Entry(term=2, index=want + 1)])
    store.close()
    caplog.clear()
    store = _open(path, caplog)
    assert not caplog.records
    assert store.load().entries[-1] == Entry(term=2, index=want + 1)
    store.close()


def test_a_last_record_whose_last_sectors_never_got_written_is_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Power lost mid-write: the sectors the write did not reach are still preallocated zeroes."""
    path = tmp_path / "raft.wal"
    ends = _write(path, [*_batches(10), (None, [Entry(term=1, index=51, data=b"y" * 3000)])])
    first_full_sector = -(-(ends[-2] + 8) // 512) * 512
    with open(path, "r+b") as f:
        f.seek(first_full_sector)
        f.write(bytes(ends[-1] - first_full_sector))
    store = _open(path, caplog)
    assert "log ends at byte" in caplog.text
    assert [e.index for e in store.load().entries] == list(range(1, 51))
    store.close()


@pytest.mark.parametrize("damage", ["flipped_bytes", "overwritten_end"])
def test_a_last_record_altered_after_it_was_written_is_refused(tmp_path: Path, damage: str) -> None:
    """A wrong CRC with none of the record still zero is no unfinished write: it may hide a vote."""
    path = tmp_path / "raft.wal"
    ends = _write(path, _batches(30))
    if damage == "flipped_bytes":
        _flip(path, ends[-2] + 40)
    else:
        with open(path, "r+b") as f:
            f.seek(ends[-1] - 3)
            f.write(b"\x00\x01\x02")
    before = path.read_bytes()
    with pytest.raises(WalError, match=f"byte {ends[-2]}") as err:
        FileLogStore(path)
    assert "zeroed space" in str(err.value) and path.read_bytes() == before


def test_a_clean_log_opens_without_a_word(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "raft.wal"
    _write(path, _batches(30))
    store = _open(path, caplog, repair=True)
    assert not caplog.records and store.repaired is None
    assert len(store.load().entries) == 150
    store.close()


# -- (c)/(d) repair ---------------------------------------------------------------------


def test_repair_drops_the_damage_and_everything_after_and_keeps_the_vote(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "raft.wal"
    saves = _batches(20, term=1, size=5) + [(HardState(term=2, vote="n2", commit=100), [])]
    saves += _batches(20, term=2, first=101, vote="n2", size=5)
    ends = _write(path, saves)
    _flip(path, ends[10] + 20)  # the 11th record: entries 51..55
    store = _open(path, caplog, repair=True)
    report = store.repaired
    assert report is not None
    assert report.offset == ends[10]
    assert report.records_dropped == len(ends) - 1 - 10  # the damaged one and every one after it
    assert report.first_index == 51 and report.last_index == 200
    assert "repair" in caplog.text and "51..200" in caplog.text
    state = store.load()
    assert [e.index for e in state.entries] == list(range(1, 51))
    # The term and vote are the latest the file shows, never lowered; commit is within the log.
    assert state.hard_state == HardState(term=2, vote="n2", commit=50)
    store.close()

    caplog.clear()
    store = _open(path, caplog)  # repaired for good: a plain open is clean and sees the same
    assert not caplog.records
    assert store.load() == state
    store.save(None, [Entry(term=2, index=51)])
    store.close()
    assert FileLogStore(path).load().entries[-1] == Entry(term=2, index=51)


def test_repair_keeps_the_commit_index_the_kept_records_show(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The later hard state counted entries a dropped record had written over older ones: the
    kept log holds the older (never committed) entries there, so its commit index must not."""
    path = tmp_path / "raft.wal"
    stale = [Entry(term=1, index=i, data=payload(i)) for i in range(1, 6)]
    overwrite = [Entry(term=3, index=i, data=payload(i)) for i in (3, 4)]
    saves = [(HardState(1, "n1", 2), stale), (HardState(3, "n3", 2), overwrite), (HardState(3, "n3", 4), [])]
    ends = _write(path, saves)
    _flip(path, ends[1] + 20)  # the record that overwrote 3..5
    store = _open(path, caplog, repair=True)
    state = store.load()
    assert [(e.index, e.term) for e in state.entries] == [(i, 1) for i in range(1, 6)]
    assert state.hard_state == HardState(term=3, vote="n3", commit=2)
    store.close()


def test_repair_refuses_when_the_vote_is_only_in_the_damaged_record(tmp_path: Path) -> None:
    path = tmp_path / "raft.wal"
    saves = _batches(10, term=1) + [(HardState(term=2, vote="n2", commit=50), [])]
    saves += [(None, [Entry(term=2, index=i, data=payload(i))]) for i in range(51, 60)]
    ends = _write(path, saves)
    _flip(path, ends[10] + 8 + 2)  # the term-2 vote record; nothing later says the vote
    before = path.read_bytes()
    with pytest.raises(WalError, match="cannot repair") as err:
        FileLogStore(path, repair=True)
    assert "learner" in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == before


def test_repair_of_a_torn_tail_is_the_plain_cut(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "raft.wal"
    ends = _write(path, _batches(10))
    with open(path, "r+b") as f:
        f.truncate(ends[-1] - 7)
    store = _open(path, caplog, repair=True)
    assert "log ends at byte" in caplog.text and store.repaired is None
    assert store.load().hard_state == HardState(term=1, vote="n1", commit=45)
    store.close()


def test_a_data_dir_can_be_opened_with_repair(tmp_path: Path) -> None:
    with open_data_dir(tmp_path) as d:
        store = d.log_store()
        for hard_state, entries in _batches(10):
            store.save(hard_state, entries)
    ends = _record_ends(tmp_path / "raft.wal")
    _flip(tmp_path / "raft.wal", ends[4] + 12)
    with open_data_dir(tmp_path, repair_log=True) as d:
        state = d.log_store().load()
        assert d.log_store().repaired is not None
    assert len(state.entries) == 20 and state.hard_state == HardState(term=1, vote="n1", commit=20)
