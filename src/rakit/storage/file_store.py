"""``FileLogStore``: the node's durable Raft state as one append-only file.

Why not SQLite (the store before this one, still read to migrate old data
dirs): a Raft save is "append these bytes, then make them durable".  One
``pwrite`` and one ``fdatasync`` into preallocated space is all of that; a
SQLite transaction adds page writes and a WAL index around the same fsync,
and with three nodes on one disk it cost about twice as much per save
(``bench/storage_append.py``).  etcd's WAL is built the same way.

Rules:

1. The file (``raft.wal``) is a header (``RAKITWAL`` + format version) and
   then records.  A record is ``length (u32) | crc32 (u32) | payload``; the
   payload is one msgpack ``_Record``: exactly the arguments of one ``save``
   or ``compact`` call.  So one call is one record, one ``pwrite`` and one
   ``fdatasync``: all or nothing, because a record counts only if its CRC
   matches.
2. Replaying the records, in order, through the same calls on a
   ``MemoryLogStore`` rebuilds the state: the semantics are those of the
   twin by construction (the contract suite runs against all three stores).
   The twin also validates every call before anything is written (a bad
   request raises ``ValueError`` and changes nothing) and keeps the live
   state in memory for rewrites.
3. The end of the log is the first record that is not whole: a zero header
   (preallocated space), a length past the end of the file, a CRC mismatch,
   or a payload that does not decode or does not follow (a gap).  What lies
   after it decides (``wal_damage``): if no whole record follows, it is a
   torn tail (a crash mid-write, never acknowledged) and is cut off -- but
   a final record whose CRC is wrong counts as torn only if a sector's worth
   of it is still zero (``_looks_torn``), else it was altered after it was
   written and is damage like any other --
   (``ftruncate``) with fresh zeroed space after it, so stale bytes of a torn
   batch can never be read as records behind a later, shorter one; a cut
   that dropped non-zero bytes is logged, and the hard state's commit index
   is lowered to the log's end if it pointed past it.  If a whole record
   follows (or the bad record is itself whole: its CRC matches), the damage
   is in the middle: the store refuses to open (``WalError``, one line: the
   file, the offset, what follows, the ways back) and touches nothing, since
   cutting would drop acknowledged entries and could lower the term or vote.
3a. ``repair=True`` (``rakit node --repair``) cuts at the damage anyway and
   says what it dropped, keeping the latest term and vote the file shows
   (the last hard state, if it lies after every damaged stretch and no entry
   after it has a higher term; otherwise the vote cannot be known, and
   repair refuses too).  The commit index is the one the kept records show
   (never the later hard state's: the entries it counted may have been
   overwritten by dropped records), and never past the log's end.
4. Space is preallocated (``posix_fallocate``) in ``PREALLOCATE`` chunks, so
   a save's ``fdatasync`` flushes data without growing the file.
5. The file is rewritten when it has grown past ``REWRITE_BYTES`` and four
   times what it holds live: a new file with one record (snapshot, entries
   after it, hard state) is written and fsynced beside it, renamed over it,
   and the directory fsynced.  A leftover ``raft.wal.tmp`` is an unfinished
   rewrite and is deleted on open.  Only ``compact`` and snapshot saves
   rewrite (they run off the hot path, on the driver's disk thread).
6. An ``OSError`` out of a write or an fsync means the bytes may or may not
   be on disk: the store refuses every later call (the node must stop, not
   retry; see PostgreSQL's fsync-gate).
7. One thread at a time, as with the SQLite store: the driver calls from a
   single-thread executor.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from rakit.raft.messages import Entry, HardState, Snapshot
from rakit.storage.base import LoadedState
from rakit.storage.memory import MemoryLogStore
from rakit.storage.wal_damage import RECORD_HEADER, Survey, survey

log = logging.getLogger(__name__)

MAGIC = b"RAKITWAL"
FORMAT_VERSION = 1
_FILE_HEADER = struct.Struct("<8sI")
_RECORD_HEADER = RECORD_HEADER  # payload length, crc32 of the payload
PREALLOCATE = 16 * 1024 * 1024
REWRITE_BYTES = 64 * 1024 * 1024

_NON_ZERO = re.compile(rb"[^\x00]")
_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


class _Record(msgspec.Struct, array_like=True, omit_defaults=True):
    """One ``save`` (``compact=False``) or ``compact`` (``compact=True``) call."""

    hard_state: HardState | None = None
    entries: list[Entry] = []
    snapshot: Snapshot | None = None
    compact: bool = False


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Record).decode


def _frame(record: _Record) -> bytes:
    payload = _encode(record)
    return _RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


class WalError(Exception):
    """The file cannot be used (not a rakit log, a newer format, damage, a failed write)."""


@dataclass(frozen=True)
class RepairReport:
    """What ``repair=True`` dropped (rule 3a)."""

    offset: int
    records_dropped: int
    first_index: int
    last_index: int
    term: int
    vote: str | None


_WAYS_BACK = (
    "to recover, wipe this node's data dir and add it back as a learner "
    "(rakit member remove <id>, then rakit node --join <member url>, then rakit member promote <id>), "
    "or start it once with --repair to drop the damaged record and everything after it "
    "(safe only while the other members still hold those entries)"
)


class FileLogStore:
    def __init__(self, path: str | os.PathLike[str], *, repair: bool = False) -> None:
        self.path = Path(path)
        self.repair = repair
        self.repaired: RepairReport | None = None
        self._repair_hard_state: HardState | None = None
        self._mem = MemoryLogStore()
        self._failed: BaseException | None = None
        self._saves = 0
        self._entries_written = 0
        self._rewrites = 0
        _tmp_path(self.path).unlink(missing_ok=True)  # an unfinished rewrite (rule 5)
        if not self.path.exists():
            _write_log_file(self.path, [])
        self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            self._offset = self._replay()
            self._allocated = os.fstat(self._fd).st_size
            self._live_bytes = 0  # unknown until the first rewrite
            if self._repair_hard_state is not None:  # rule 3a: the kept term and vote, made durable
                self._append(_frame(_Record(self._repair_hard_state)))
        except BaseException:
            os.close(self._fd)
            raise

    # -- LogStore -----------------------------------------------------------

    def load(self) -> LoadedState:
        return self._mem.load()

    def save(
        self,
        hard_state: HardState | None,
        entries: list[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        self._check_usable()
        before = self._mem.saves
        self._mem.save(hard_state, entries, snapshot)  # validates first; ValueError changes nothing
        if self._mem.saves == before:
            return  # nothing to store
        self._append(_frame(_Record(hard_state, entries, snapshot)))
        self._saves += 1
        self._entries_written += len(entries)
        if snapshot is not None:
            self._maybe_rewrite()

    def compact(self, snapshot: Snapshot) -> None:
        self._check_usable()
        self._mem.compact(snapshot)
        self._append(_frame(_Record(snapshot=snapshot, compact=True)))
        self._maybe_rewrite()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def statistics(self) -> dict[str, Any]:
        mem = self._mem.statistics()
        return {
            "saves": self._saves,
            "entries_written": self._entries_written,
            "snapshot_index": mem["snapshot_index"],
            "last_index": mem["last_index"],
            "file_bytes": self._offset,
            "rewrites": self._rewrites,
        }

    # -- writing --------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise WalError(f"{self.path}: an earlier write failed ({self._failed}); restart the node")
        if self._fd < 0:
            raise WalError(f"{self.path} is closed")

    def _append(self, frame: bytes) -> None:
        try:
            end = self._offset + len(frame)
            if end > self._allocated:
                self._allocated = _preallocate(self._fd, end)
            os.pwrite(self._fd, frame, self._offset)
            _fdatasync(self._fd)
        except OSError as exc:
            self._failed = exc
            raise
        self._offset = end

    def _maybe_rewrite(self) -> None:
        if self._offset <= max(REWRITE_BYTES, 4 * self._live_bytes):
            return
        state = self._mem.load()
        try:
            size = _write_log_file(self.path, [_frame(_Record(state.hard_state, state.entries, state.snapshot))])
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            self._failed = exc
            raise
        os.close(self._fd)
        self._fd, self._offset, self._live_bytes = fd, size, size
        self._allocated = os.fstat(fd).st_size
        self._rewrites += 1
        log.info("%s: rewritten to %d bytes", self.path, size)

    # -- reading --------------------------------------------------------------

    def _replay(self) -> int:
        """Rebuild the state from the file; cut a torn tail (rule 3).  Returns the log's end."""
        with open(self._fd, "rb", closefd=False) as f:
            data = f.read()
        if len(data) < _FILE_HEADER.size:
            raise WalError(f"{self.path}: too short for a rakit log")
        magic, version = _FILE_HEADER.unpack_from(data)
        if magic != MAGIC:
            raise WalError(f"{self.path} is not a rakit log")
        if version > FORMAT_VERSION:
            raise WalError(f"{self.path}: format {version} is newer than this rakit ({FORMAT_VERSION})")
        pos, why, whole = _FILE_HEADER.size, "", False
        while pos + _RECORD_HEADER.size <= len(data):
            length, crc = _RECORD_HEADER.unpack_from(data, pos)
            if length == 0 and crc == 0:
                break  # preallocated space: the clean end
            start, end = pos + _RECORD_HEADER.size, pos + _RECORD_HEADER.size + length
            if end > len(data):
                why = "cut short"
                break
            payload = data[start:end]
            if zlib.crc32(payload) != crc:
                why = "bad checksum"
                break
            try:
                record = _decode(payload)
                if record.compact and record.snapshot is not None:
                    self._mem.compact(record.snapshot)
                else:
                    self._mem.save(record.hard_state, record.entries, record.snapshot)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                why, whole = f"its checksum matches but it does not follow: {exc}", True
                break
            pos = end
        stray = _NON_ZERO.search(data, pos) is not None
        if not (why or stray):
            return pos
        found = survey(data, pos, _decode)
        if why == "bad checksum" and not found.records and not _looks_torn(data, pos):
            why = "bad checksum, and no part of it is the zeroed space an unfinished write leaves"
            whole = True  # rule 3: the last record changed after it was written, not torn
        if whole or found.records:
            self._damaged(pos, why or "zeroed", whole, found)
        else:
            log.warning(
                "%s: log ends at byte %d (%s); dropped the %d bytes after it",
                self.path,
                pos,
                why or "stray bytes",
                len(data) - pos,
            )
        self._cut(pos)
        hard_state, last = self._mem.load().hard_state, self._mem.statistics()["last_index"]
        if self._repair_hard_state is not None:
            kept = self._repair_hard_state
            if kept.term < hard_state.term:  # never lower the term (a well-formed log cannot get here)
                kept = hard_state
            # The commit index the kept records themselves say: the later one counted entries that
            # the dropped records may have overwritten, and the kept log may hold the stale ones.
            self._repair_hard_state = HardState(kept.term, kept.vote, min(hard_state.commit, last))
            self._mem.save(self._repair_hard_state, [])
        elif hard_state.commit > last:  # committed entries are gone: never point past the log
            log.warning("%s: lowered commit index %d to %d", self.path, hard_state.commit, last)
            self._mem.save(HardState(hard_state.term, hard_state.vote, last), [])
        return pos

    def _damaged(self, pos: int, why: str, whole: bool, found: Survey) -> None:
        """Damage in the middle (rule 3): refuse, or with ``repair`` say what goes and go on (3a)."""
        first = self._mem.statistics()["last_index"] + 1
        last = max(found.last_index, first)
        if found.records:
            what = (
                f"{self.path}: the record at byte {pos} is damaged ({why}) and {found.records} whole "
                f"record(s) follow it, reaching log index {found.last_index} and term {found.max_term}"
            )
            lost = "these are entries this node acknowledged"
        else:
            what = f"{self.path}: the last record, at byte {pos}, is damaged ({why})"
            lost = "it was written whole, and may hold entries and the vote this node acknowledged"
        if not self.repair:
            raise WalError(f"{what}: {lost}, so it will not cut the log there and refuses to start; {_WAYS_BACK}")
        hard_state = found.last_hard_state
        if not found.hard_state_after_all_damage or hard_state is None:
            raise WalError(
                f"{what}: cannot repair: no whole record after the damage says this node's latest "
                f"term and vote (the damaged bytes may hold a vote, and starting without it could "
                f"vote twice in one term); wipe this node's data dir and add it back as a learner "
                f"(rakit member remove <id>, then rakit node --join <member url>)"
            )
        dropped = found.records + found.damaged_stretches
        self._repair_hard_state = hard_state
        self.repaired = RepairReport(pos, dropped, first, last, hard_state.term, hard_state.vote)
        log.warning(
            "%s: repair: dropped %d record(s) from byte %d on (log entries %d..%d); kept term %d "
            "and vote %s; the node catches up from the leader",
            self.path,
            dropped,
            pos,
            first,
            last,
            hard_state.term,
            hard_state.vote,
        )

    def _cut(self, pos: int) -> None:
        os.ftruncate(self._fd, pos)
        os.fsync(self._fd)
        _preallocate(self._fd, pos + 1)
        os.fsync(self._fd)


SECTOR = 512
MIN_TORN_BYTES = 64  # a zeroed stretch shorter than this may just be zeros in the payload


def _looks_torn(data: bytes, pos: int) -> bool:
    """Rule 3: the record at ``pos`` (its CRC wrong) has a sector's worth of it still zero.

    Records are written into preallocated zeroes, so a write cut short by a
    power loss leaves whole sectors of the record zero (etcd's test too); a
    flipped bit or an overwritten stretch leaves none.
    """
    length = _RECORD_HEADER.unpack_from(data, pos)[0]
    start, end = pos + _RECORD_HEADER.size, min(len(data), pos + _RECORD_HEADER.size + length)
    sector = start - start % SECTOR
    while sector < end:
        part = data[max(sector, start) : min(sector + SECTOR, end)]
        if len(part) >= MIN_TORN_BYTES and not any(part):
            return True
        sector += SECTOR
    return False


def _preallocate(fd: int, needed: int) -> int:
    """Make the file at least ``needed`` bytes, rounded up to whole ``PREALLOCATE`` chunks; its size."""
    size = -(-needed // PREALLOCATE) * PREALLOCATE
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError:  # EOPNOTSUPP and the like: writes past the end grow the file instead
        return max(needed, os.fstat(fd).st_size)
    return size


def _tmp_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _write_log_file(path: Path, frames: list[bytes]) -> int:
    """Write header + frames to a temp file, then rename it over ``path`` (rule 5); its size."""
    data = _FILE_HEADER.pack(MAGIC, FORMAT_VERSION) + b"".join(frames)
    tmp = _tmp_path(path)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        _preallocate(fd, len(data))
        os.pwrite(fd, data, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return len(data)


def create_from(path: str | os.PathLike[str], state: LoadedState) -> None:
    """Write a new log at ``path`` holding ``state`` (the SQLite migration)."""
    _write_log_file(Path(path), [_frame(_Record(state.hard_state, state.entries, state.snapshot))])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
