"""The ``Ready`` batch: what the pure core asks its driver to do next.

The driver handles one Ready at a time, in the order
:func:`rakit.raft.turn.plan` gives (raft-rs's ``messages`` /
``persisted_messages`` split):

1. send ``messages``: they need nothing of this Ready on disk.  The core puts
   there only a leader's replication (AppendEntries, Heartbeat,
   InstallSnapshot) at a term and vote already persisted; a leader counts
   its own log toward commit only once it is stable, at ``advance``
   (thesis 10.2.1), so its appends may leave while its own fsync runs;
2. persist ``hard_state``, ``snapshot`` and ``entries`` durably (fsync),
   ``entries`` replacing any stored suffix from ``entries[0].index`` on;
3. send ``persisted_messages``: votes, acks, answers, a candidate's requests
   -- every message that asserts something this Ready makes durable;
4. restore the state machine from ``snapshot`` if set, then apply
   ``committed_entries`` in order;
5. call ``core.advance(ready)``.

``read_states`` are ReadIndex confirmations: answer read ``ctx`` once the
state machine has applied up to ``index``.  ``soft_state`` is set when the
role or the known leader changed (for metrics and for failing waiters).
``conf_state`` is set when this node's configuration changed (an appended or
truncated ENTRY_CONF entry, a restored snapshot): the driver updates its peer
set (transport, accepted senders) from it before sending ``messages``, which
may already be addressed to a new member.  It needs no persisting: the
configuration lives in the log and the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rakit.raft.messages import (
    AnyMessage,
    ConfState,
    Entry,
    HardState,
    ReadState,
    Snapshot,
)
from rakit.raft.roles import Role


@dataclass(frozen=True, slots=True)
class SoftState:
    role: Role
    leader_id: str | None
    term: int


@dataclass(slots=True)
class Ready:
    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    messages: list[AnyMessage] = field(default_factory=list)
    persisted_messages: list[AnyMessage] = field(default_factory=list)
    committed_entries: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    soft_state: SoftState | None = None
    conf_state: ConfState | None = None

    def is_empty(self) -> bool:
        return not (
            self.hard_state
            or self.entries
            or self.snapshot
            or self.messages
            or self.persisted_messages
            or self.committed_entries
            or self.read_states
            or self.soft_state
            or self.conf_state
        )

    def all_messages(self) -> list[AnyMessage]:
        """Both kinds, early ones first (for tests and tools that do not model the disk)."""
        return [*self.messages, *self.persisted_messages]
