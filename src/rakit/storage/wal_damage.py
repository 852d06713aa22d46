"""What lies after the first bad record of a ``raft.wal``: a torn tail, or damage.

``FileLogStore`` replays records until the first one that is not whole (a
zero header, a length past the end, a CRC mismatch).  Whether it may cut
the file there depends on what follows, and this module looks (pure
functions over the file's bytes, no I/O):

1. A torn write is only ever the *last* record: a crash stops the writer,
   so nothing whole can follow it.  If no whole record starts anywhere after
   the bad one, the bad bytes are a torn tail and the cut loses nothing that
   was acknowledged.
2. A whole record after the bad one (length in bounds, CRC matches, payload
   decodes) means the damage is in the middle: bytes the node once wrote
   and fsynced have changed.  Cutting would silently drop acknowledged
   entries and could lower the saved term or vote, so the store refuses.
3. The search tries every byte offset after the bad record, skipping runs of
   zeros (a record's length is never 0), so it is linear in the non-zero
   bytes; a false match needs a 32-bit CRC to agree by chance.
4. ``survey`` walks every whole record after the damage (re-searching past
   each further bad stretch) and reports what the refusal message and a
   repair need: how many, the highest index and term they hold, and the
   last hard state, with whether it comes after every damaged stretch (only
   then is the latest term and vote known).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rakit.raft.messages import HardState

RECORD_HEADER = struct.Struct("<II")  # payload length, crc32 of the payload
_NON_ZERO = re.compile(rb"[^\x00]")


def whole_record_at(data: bytes, off: int, decode: Callable[[bytes], Any]) -> tuple[Any, int] | None:
    """The record starting at ``off`` and where it ends, if it is whole there (rule 2)."""
    if off + RECORD_HEADER.size > len(data):
        return None
    length, crc = RECORD_HEADER.unpack_from(data, off)
    end = off + RECORD_HEADER.size + length
    if length == 0 or end > len(data):
        return None
    payload = data[off + RECORD_HEADER.size : end]
    if zlib.crc32(payload) != crc:
        return None
    try:
        return decode(payload), end
    except Exception:
        return None


def next_whole_record(data: bytes, lo: int, decode: Callable[[bytes], Any]) -> int | None:
    """The first offset at or after ``lo`` where a whole record starts (rule 3), or None."""
    off = lo
    while off + RECORD_HEADER.size <= len(data):
        if data[off : off + 4] == b"\0\0\0\0":
            match = _NON_ZERO.search(data, off + 4)
            if match is None:
                return None
            off = max(off + 1, match.start() - 3)
            continue
        if whole_record_at(data, off, decode) is not None:
            return off
        off += 1
    return None


@dataclass(frozen=True)
class Survey:
    """The whole records found after a bad one (rule 4)."""

    records: int = 0
    damaged_stretches: int = 1
    last_index: int = 0
    max_term: int = 0
    last_hard_state: HardState | None = None
    hard_state_after_all_damage: bool = False


def survey(data: bytes, bad: int, decode: Callable[[bytes], Any]) -> Survey:
    """Everything whole after the bad record at ``bad``; ``records == 0`` means a torn tail."""
    records = stretches = last_index = max_term = 0
    last_hard_state: HardState | None = None
    hard_state_clean = False
    off: int | None = bad + 1
    while off is not None:
        start = next_whole_record(data, off, decode)
        if start is None:
            break
        stretches += 1
        hard_state_clean = False
        pos = start
        while (found := whole_record_at(data, pos, decode)) is not None:
            record, pos = found
            records += 1
            for entry in record.entries:
                last_index = max(last_index, entry.index)
                max_term = max(max_term, entry.term)
            if record.snapshot is not None:
                last_index = max(last_index, record.snapshot.meta.index)
                max_term = max(max_term, record.snapshot.meta.term)
            if record.hard_state is not None:
                last_hard_state = record.hard_state
                max_term = max(max_term, record.hard_state.term)
                hard_state_clean = True
        off = pos + 1
    clean = hard_state_clean and last_hard_state is not None and last_hard_state.term >= max_term
    return Survey(records, max(stretches, 1), last_index, max_term, last_hard_state, clean)
