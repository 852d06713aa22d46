"""``MemoryLogStore``: the in-memory twin of ``FileLogStore`` (and ``SQLiteLogStore``).

``FileLogStore`` also uses it inside: its records replay through these calls.

The deterministic simulation uses it to model a crash: a restarted node sees
exactly what ``save``/``compact`` were given before the crash and nothing
else.  So the store keeps its own copies (lists and the snapshot's voter and
learner lists; the Structs themselves are frozen) and hands out fresh copies from
``load``.  ``close`` does not forget anything: the simulation keeps the
object as the node's "disk" across restarts.

Rules -- the same as the disk stores', checked by the same contract suite
(``tests/unit/test_storage.py``):

1. The log is contiguous: the stored entries are ``snapshot.index + 1 ..
   last`` (``0 + 1 ..`` without a snapshot).
2. ``save(hard_state, entries, snapshot)`` is all-or-nothing.  A bad request
   raises ``ValueError`` and changes nothing.
3. ``snapshot`` first: it replaces the stored one (an older one than stored
   is refused).  If the log holds an entry at its index with its term, the
   entries after it stay; otherwise the whole log goes (the log restarts
   after the snapshot).  Entries at or below its index always go.
4. Then ``entries`` (contiguous): those at or below the snapshot index are
   skipped, the rest replace every stored entry from their first index on.
   The first may not lie past ``last + 1`` (that would leave a gap).
5. ``hard_state=None`` leaves the stored hard state as it is.
6. ``compact(snapshot)`` stores the snapshot and drops the entries at or
   below its index, whatever their terms.
"""

from __future__ import annotations

from typing import Any

import msgspec

from rakit.raft.messages import Entry, HardState, Snapshot
from rakit.storage.base import LoadedState


def _own(snapshot: Snapshot) -> Snapshot:
    """A copy that shares no mutable list with the caller's snapshot."""
    meta = msgspec.structs.replace(
        snapshot.meta, voters=list(snapshot.meta.voters), learners=list(snapshot.meta.learners)
    )
    return msgspec.structs.replace(snapshot, meta=meta)


def check_contiguous(entries: list[Entry]) -> None:
    for prev, cur in zip(entries, entries[1:]):
        if cur.index != prev.index + 1:
            raise ValueError(f"entries not contiguous: {prev.index} then {cur.index}")


class MemoryLogStore:
    def __init__(self) -> None:
        self._hard_state = HardState()
        self._snapshot: Snapshot | None = None
        # Entries after the snapshot: self._entries[i].index == self._offset + 1 + i.
        self._entries: list[Entry] = []
        self._saves = 0
        self._entries_written = 0

    @property
    def _offset(self) -> int:
        return self._snapshot.meta.index if self._snapshot else 0

    def _term_at(self, index: int) -> int | None:
        if index == self._offset:
            return self._snapshot.meta.term if self._snapshot else 0
        i = index - self._offset - 1
        return self._entries[i].term if 0 <= i < len(self._entries) else None

    def load(self) -> LoadedState:
        return LoadedState(
            hard_state=self._hard_state,
            snapshot=_own(self._snapshot) if self._snapshot else None,
            entries=list(self._entries),
        )

    def save(
        self,
        hard_state: HardState | None,
        entries: list[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        # Validate everything before changing anything (rule 2).
        check_contiguous(entries)
        offset, last = self._offset, self._offset + len(self._entries)
        keep_log = True
        if snapshot is not None:
            index = snapshot.meta.index
            if index < offset:
                raise ValueError(f"snapshot at {index} is older than the stored one at {offset}")
            keep_log = self._term_at(index) == snapshot.meta.term
            last = last if keep_log else index
            offset = index
        new = entries
        if new and new[0].index <= offset:  # already covered by the snapshot
            new = new[offset - new[0].index + 1 :]
        if new and new[0].index > last + 1:
            raise ValueError(f"entries from {new[0].index} would leave a gap after {last}")

        if snapshot is not None:
            drop = offset - self._offset
            self._entries = self._entries[drop:] if keep_log else []
            self._snapshot = _own(snapshot)
        if new:
            del self._entries[new[0].index - offset - 1 :]
            self._entries.extend(new)
            self._entries_written += len(new)
        if hard_state is not None:
            self._hard_state = hard_state
        if hard_state is not None or new or snapshot is not None:
            self._saves += 1

    def compact(self, snapshot: Snapshot) -> None:
        index = snapshot.meta.index
        if index < self._offset:
            raise ValueError(f"snapshot at {index} is older than the stored one at {self._offset}")
        del self._entries[: index - self._offset]
        self._snapshot = _own(snapshot)

    @property
    def saves(self) -> int:
        """How many ``save`` calls changed something."""
        return self._saves

    def close(self) -> None:
        """Nothing to release; the contents survive (they are the node's disk)."""

    def statistics(self) -> dict[str, Any]:
        return {
            "saves": self._saves,
            "entries_written": self._entries_written,
            "snapshot_index": self._offset,
            "last_index": self._offset + len(self._entries),
        }
