"""What a leader knows about one follower's log, and how fast to feed it.

States (etcd's flow control):

``probe``
    The leader does not know where the follower's log ends.  It sends one
    AppendEntries and then waits (``paused``) for the answer, or for the next
    HeartbeatResp, before sending another: at most one probe per heartbeat
    interval.  A rejection moves ``next`` back (never below ``match + 1``).
``replicate``
    The follower accepted an append.  The leader streams entries
    optimistically (``next`` = last sent + 1) while the ``Inflights`` window
    of unacknowledged messages has room; acks free the window.
``snapshot``
    The follower needs entries the leader compacted away; an InstallSnapshot
    is on its way and nothing else is sent until it is acked (then
    probe -> replicate) or ``snapshot_ticks`` runs out (then probe again).

Rules:

1. ``match`` only grows (``maybe_update``); ``next > match`` always.  The one
   exception is ``regress``: the follower rejected the probe *at* ``match``,
   so it no longer holds an entry it acknowledged (a damaged or replaced
   disk).  Then nothing is known to match (``match = 0``, counted in
   ``regressions``) and probing starts again from its hint.  A lower match
   is never unsafe (it only delays commits, and a commit is never undone);
   a stale rejection taken for a regression only costs a resend.
2. Stale, duplicate or reordered responses are harmless: an ack at or below
   ``match`` changes nothing, and a rejection is only acted on if it rejects
   the probe we are waiting on (probe) or something above ``match``
   (replicate).
3. ``recent_active`` is set by any response and cleared by the leader's
   check-quorum round every election timeout; ``heard_at`` is the leader's
   tick count at the latest response (None: never), for the learner
   catch-up test (``RaftCore.is_caught_up``).
"""

from __future__ import annotations

from collections import deque
from typing import Literal

State = Literal["probe", "replicate", "snapshot"]


class Inflights:
    """The last index of each AppendEntries in flight, oldest first, bounded."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._last_indexes: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._last_indexes)

    def full(self) -> bool:
        return len(self._last_indexes) >= self.capacity

    def add(self, last_index: int) -> None:
        if self.full():
            raise OverflowError("inflights window is full")
        self._last_indexes.append(last_index)

    def free_le(self, index: int) -> None:
        """An ack for ``index`` frees every message that ended at or below it."""
        while self._last_indexes and self._last_indexes[0] <= index:
            self._last_indexes.popleft()

    def reset(self) -> None:
        self._last_indexes.clear()


class Progress:
    def __init__(self, next_index: int, max_inflight: int) -> None:
        self.match = 0
        self.next = next_index
        self.state: State = "probe"
        # probe: a probe is out, wait; replicate: the window is full.
        self.paused = False
        self.inflights = Inflights(max_inflight)
        self.pending_snapshot = 0
        self.snapshot_ticks = 0
        self.recent_active = False
        self.heard_at: int | None = None
        self.regressions = 0
        # Send an AppendEntries even if it carries no entries (a HeartbeatResp
        # told us the follower lags or is still being probed).
        self.kick = False

    def __repr__(self) -> str:
        return (
            f"Progress({self.state}, match={self.match}, next={self.next}, "
            f"inflight={len(self.inflights)}, paused={self.paused})"
        )

    # -- state transitions ---------------------------------------------------

    def _reset_state(self, state: State) -> None:
        self.state = state
        self.paused = False
        self.kick = False
        self.pending_snapshot = 0
        self.snapshot_ticks = 0
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state == "snapshot":
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self._reset_state("probe")

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self._reset_state("replicate")

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state("snapshot")
        self.pending_snapshot = snapshot_index

    # -- flow control ----------------------------------------------------------

    def is_paused(self) -> bool:
        return self.state == "snapshot" or self.paused

    def sent_append(self, entries: int, last_index: int) -> None:
        """An AppendEntries with ``entries`` entries ending at ``last_index`` went out."""
        self.kick = False
        if self.state == "replicate":
            if entries:
                self.next = last_index + 1
                self.inflights.add(last_index)
            self.paused = self.inflights.full()
        elif self.state == "probe":
            self.paused = True

    def maybe_update(self, index: int) -> bool:
        """A successful ack for ``index``; False if it taught us nothing new."""
        if index <= self.match:
            return False
        self.match = index
        self.next = max(self.next, index + 1)
        self.paused = False
        return True

    def maybe_decr_to(self, rejected: int, probe_prev: int) -> bool:
        """A rejection of prev_index ``rejected``; ``probe_prev`` is where to probe next.

        Returns False for a stale rejection.  ``next`` strictly decreases and
        never goes below ``match + 1``, so probing always terminates.
        """
        if self.state == "replicate":
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, probe_prev + 1), self.match + 1)
        self.paused = False
        return True

    def regress(self, probe_prev: int) -> None:
        """Rule 1's exception: the follower lost entries it acknowledged; start over from its hint."""
        self.regressions += 1
        self.next = max(probe_prev + 1, 1)
        self.match = 0
        self._reset_state("probe")

    def heartbeat_answered(self, lagging: bool) -> None:
        self.recent_active = True
        self.paused = False
        if lagging or self.state == "probe":
            self.kick = True

    def tick_snapshot(self, timeout: int) -> bool:
        """One tick in snapshot state; True when the snapshot should be resent."""
        if self.state != "snapshot":
            return False
        self.snapshot_ticks += 1
        if self.snapshot_ticks < timeout:
            return False
        self.next = self.match + 1
        self._reset_state("probe")
        return True
