"""ReadIndex bookkeeping of a leader (thesis 6.4; the core's rule 10), as etcd's read_only.go.

Pure: no I/O, no clock.  Rules:

1. A read asked before the leader committed an entry of its own term is
   *held* and started once it has.
2. A started read records the commit index at its start and is *pending*
   until a quorum of voters acknowledged a heartbeat round carrying its
   ``ctx`` (or a later one); the leader's own ack counts from the start.
3. A quorum confirming ``ctx`` confirms every read started before it too,
   in the order they started.
4. Losing leadership drops every held and pending read (``reset``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rakit.raft import quorum
from rakit.raft.messages import ReadState


@dataclass(slots=True)
class PendingRead:
    index: int
    acks: set[str] = field(default_factory=set)


class ReadOnly:
    __slots__ = ("held", "pending", "heartbeat_due")

    def __init__(self) -> None:
        self.held: list[int] = []
        self.pending: dict[int, PendingRead] = {}  # in start order
        self.heartbeat_due = False

    def knows(self, ctx: int) -> bool:
        return ctx in self.pending or ctx in self.held

    def hold(self, ctx: int) -> None:
        """Rule 1."""
        self.held.append(ctx)

    def take_held(self) -> list[int]:
        held, self.held = self.held, []
        return held

    def start(self, ctx: int, index: int, leader: str) -> None:
        """Rule 2: wait for a quorum's acks of a heartbeat round carrying ``ctx``."""
        self.pending[ctx] = PendingRead(index, {leader})
        self.heartbeat_due = True

    def latest_ctx(self) -> int:
        """The ctx a heartbeat round carries: the latest pending read's (0: none)."""
        return next(reversed(self.pending)) if self.pending else 0

    def ack(self, ctx: int, voter: str, voters: list[str]) -> list[ReadState]:
        """``voter`` acknowledged the round carrying ``ctx``: the reads it confirms (rules 2, 3)."""
        pending = self.pending.get(ctx) if ctx else None
        if pending is None:
            return []
        pending.acks.add(voter)
        if quorum.vote_result(dict.fromkeys(pending.acks, True), voters) != "won":
            return []
        confirmed = []
        while self.pending:
            first = next(iter(self.pending))
            read = self.pending.pop(first)
            confirmed.append(ReadState(first, read.index))
            if first == ctx:
                break
        return confirmed

    def reset(self) -> None:
        """Rule 4."""
        self.held = []
        self.pending = {}
        self.heartbeat_due = False


__all__ = ["PendingRead", "ReadOnly"]
