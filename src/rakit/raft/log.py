"""The in-memory view of one node's Raft log.

Layout::

    snapshot (index s, term t) | entries s+1 .. last
                                 |<- stable ->|<- unstable ->|
    applied <= committed <= last,  s <= applied,  stable_index <= last

Rules:

1. The log keeps every entry after the latest snapshot in memory; the driver
   trims it with ``compact`` once the state machine has a snapshot.  So the
   core never reads storage.
2. ``term_at(i)`` is known for ``s <= i <= last`` (the snapshot's own index
   included) and ``None`` outside: compacted below, absent above.
3. ``stable_index`` is the last entry the driver has persisted.  Entries
   after it are *unstable* and are handed out in ``Ready.entries``.
   Truncating a conflicting suffix below ``stable_index`` lowers it, so the
   re-written suffix is handed out (and persisted) again.
4. ``maybe_append`` only truncates at the first *conflicting* entry (same
   index, different term); a matching suffix is never dropped, so a delayed,
   shorter AppendEntries cannot lose entries.  Committed entries never
   conflict; if one does, the log is corrupt and we fail loudly.
5. Entries are handed out for applying only once committed *and* stable
   (``next_committed``), and not while a received snapshot awaits restoring.
6. ``restore`` replaces the whole log by a received snapshot (pending until
   the driver persists it, see ``snapshot_restored``); ``compact`` drops the
   entries covered by a locally taken snapshot.
7. ``on_append``, if set, is called after every ``append`` with the entries
   just written; everything from their first index on was replaced.  (The
   core tracks configuration entries with it: a configuration takes effect
   when appended and is undone when truncated away.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rakit.raft.messages import Entry, Snapshot


class LogCorrupt(AssertionError):
    """A Raft invariant on the log broke: a bug, never an expected condition."""


class RaftLog:
    def __init__(
        self,
        snapshot: Snapshot | None = None,
        entries: Sequence[Entry] = (),
        committed: int = 0,
    ) -> None:
        # The latest snapshot (received or taken locally), if any.
        self.snapshot: Snapshot | None = snapshot
        # A received snapshot not yet persisted and restored by the driver.
        self.pending_snapshot: Snapshot | None = None
        self._entries: list[Entry] = []
        base = self.snapshot_index
        for offset, entry in enumerate(entries):
            if entry.index != base + 1 + offset:
                raise LogCorrupt(f"entries not contiguous after {base}: {entry.index}")
        self._entries = list(entries)
        self.stable_index = self.last_index
        self.committed = max(base, min(committed, self.last_index))
        self.applied = base
        self.on_append: Callable[[Sequence[Entry]], None] | None = None

    # -- shape ---------------------------------------------------------------

    @property
    def snapshot_index(self) -> int:
        return self.snapshot.meta.index if self.snapshot else 0

    @property
    def snapshot_term(self) -> int:
        return self.snapshot.meta.term if self.snapshot else 0

    @property
    def first_index(self) -> int:
        return self.snapshot_index + 1

    @property
    def last_index(self) -> int:
        return self._entries[-1].index if self._entries else self.snapshot_index

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.snapshot_term

    def term_at(self, index: int) -> int | None:
        if index == self.snapshot_index:
            return self.snapshot_term
        if index < self.snapshot_index or index > self.last_index:
            return None
        return self._entries[index - self.first_index].term

    def match_term(self, index: int, term: int) -> bool:
        return self.term_at(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Is a log ending at (last_index, last_term) at least as new as ours (§5.4.1)?"""
        return (last_term, last_index) >= (self.last_term, self.last_index)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index < hi; both bounds must be inside the log."""
        if lo < self.first_index or hi > self.last_index + 1 or lo > hi:
            raise IndexError(f"slice [{lo}, {hi}) outside ({self.snapshot_index}, {self.last_index}]")
        return self._entries[lo - self.first_index : hi - self.first_index]

    def entries_for_message(self, lo: int, max_entries: int, max_bytes: int) -> list[Entry]:
        """Entries from ``lo`` on, bounded in count and data bytes (at least one)."""
        out: list[Entry] = []
        size = 0
        for entry in self._entries[lo - self.first_index :]:
            size += len(entry.data)
            if out and (len(out) >= max_entries or size > max_bytes):
                break
            out.append(entry)
        return out

    # -- conflict search -------------------------------------------------------

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """Index of the first entry whose term differs from ours (or that we lack); 0 if none."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def first_index_of_term_at(self, index: int) -> int:
        """The first index (not below the snapshot) whose term equals term_at(index)."""
        term = self.term_at(index)
        while index > self.snapshot_index and self.term_at(index - 1) == term:
            index -= 1
        return index

    def last_index_with_term_at_most(self, index: int, term: int) -> int:
        """The largest i <= index with term_at(i) <= term (or where our term is unknown)."""
        index = min(index, self.last_index)
        while index > self.snapshot_index:
            ours = self.term_at(index)
            if ours is not None and ours <= term:
                return index
            index -= 1
        return index

    # -- mutation ----------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> None:
        """Append at entries[0].index, dropping any suffix from there on."""
        if not entries:
            return
        after = entries[0].index - 1
        if after < self.committed:
            raise LogCorrupt(f"truncating committed entry {after + 1} (committed {self.committed})")
        if after > self.last_index:
            raise LogCorrupt(f"gap: appending {after + 1} after last {self.last_index}")
        del self._entries[after + 1 - self.first_index :]
        self._entries.extend(entries)
        self.stable_index = min(self.stable_index, after)
        if self.on_append is not None:
            self.on_append(entries)

    def maybe_append(self, prev_index: int, prev_term: int, commit: int, entries: Sequence[Entry]) -> int | None:
        """Follower side of AppendEntries; the last new index, or None on mismatch."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            self.append(entries[conflict - prev_index - 1 :])
        self.commit_to(min(commit, last_new))
        return last_new

    def commit_to(self, index: int) -> bool:
        if index <= self.committed:
            return False
        if index > self.last_index:
            raise LogCorrupt(f"commit {index} beyond last index {self.last_index}")
        self.committed = index
        return True

    def unstable_entries(self) -> list[Entry]:
        if self.stable_index >= self.last_index:
            return []
        return self.slice(self.stable_index + 1, self.last_index + 1)

    def stable_to(self, index: int) -> None:
        self.stable_index = min(max(self.stable_index, index), self.last_index)

    def has_next_committed(self) -> bool:
        return self.pending_snapshot is None and min(self.committed, self.stable_index) > self.applied

    def next_committed(self, max_count: int) -> list[Entry]:
        """Committed, stable, unapplied entries (at most max_count)."""
        if not self.has_next_committed():
            return []
        hi = min(self.committed, self.stable_index, self.applied + max_count)
        return self.slice(self.applied + 1, hi + 1)

    def applied_to(self, index: int) -> None:
        if index > self.committed:
            raise LogCorrupt(f"applied {index} beyond committed {self.committed}")
        self.applied = max(self.applied, index)

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by a received snapshot (pending until persisted)."""
        self.snapshot = snapshot
        self.pending_snapshot = snapshot
        self._entries = []
        self.committed = snapshot.meta.index
        self.stable_index = snapshot.meta.index

    def snapshot_restored(self, snapshot: Snapshot) -> None:
        """The driver persisted ``snapshot`` and restored its state machine from it."""
        if self.pending_snapshot is snapshot:
            self.pending_snapshot = None
        self.applied = max(self.applied, snapshot.meta.index)

    def compact(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (taken locally) and drop the entries it covers."""
        index = snapshot.meta.index
        if index <= self.snapshot_index:
            raise ValueError(f"snapshot {index} not after current snapshot {self.snapshot_index}")
        if index > self.applied:
            raise ValueError(f"cannot compact to {index}: applied only {self.applied}")
        del self._entries[: index + 1 - self.first_index]
        self.snapshot = snapshot
