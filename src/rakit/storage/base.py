"""The durable-state seam of a node: Raft log, hard state and snapshot.

One store holds all three so that one Ready is persisted in one atomic,
fsynced step.  ``memory.MemoryLogStore`` is its test twin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from rakit.raft.messages import Entry, HardState, Snapshot


@dataclass(slots=True)
class LoadedState:
    """What a node finds in its data dir at start."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    # Entries after the snapshot's index, contiguous and in order.
    entries: list[Entry] = field(default_factory=list)


class LogStore(Protocol):
    def load(self) -> LoadedState:
        """Everything persisted so far; an empty state for a new data dir."""
        ...

    def save(
        self,
        hard_state: HardState | None,
        entries: list[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        """Persist atomically and durably (fsync) before returning.

        ``snapshot`` (a received InstallSnapshot) replaces the stored snapshot
        and drops every stored entry at or below its index.  ``entries``
        replace every stored entry at or after ``entries[0].index``.
        """
        ...

    def compact(self, snapshot: Snapshot) -> None:
        """Store a locally taken snapshot and drop entries at or below its index."""
        ...

    def close(self) -> None: ...
