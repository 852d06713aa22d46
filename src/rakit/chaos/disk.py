"""The ``corrupt`` nemesis's damage: flipped bytes in the middle of a stopped node's Raft log.

A record is picked among all but the last (so whole records follow it) and
four bytes of its payload are inverted: exactly the damage a node must
refuse to start on (``rakit.storage.file_store`` rule 3) instead of cutting
its log and losing acknowledged entries in silence.
"""

from __future__ import annotations

import random
from pathlib import Path

from rakit.storage.wal_damage import RECORD_HEADER

FILE_HEADER = 12  # magic + format version
FLIPPED = 4


def records(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each record, in order, up to the first zero header."""
    out: list[tuple[int, int]] = []
    pos = FILE_HEADER
    while pos + RECORD_HEADER.size <= len(data):
        length, crc = RECORD_HEADER.unpack_from(data, pos)
        end = pos + RECORD_HEADER.size + length
        if (length == 0 and crc == 0) or end > len(data):
            break
        out.append((pos, end))
        pos = end
    return out


def damage_log(path: Path, rng: random.Random) -> int | None:
    """Flip bytes inside a record with whole records after it; its offset, or None if the log is too short."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    found = [r for r in records(data) if r[1] - r[0] - RECORD_HEADER.size >= FLIPPED]
    if len(found) < 3:
        return None
    start, end = found[rng.randrange(0, len(found) - 1)]
    at = rng.randrange(start + RECORD_HEADER.size, end - FLIPPED + 1)
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(bytes(b ^ 0xFF for b in data[at : at + FLIPPED]))
    return start
