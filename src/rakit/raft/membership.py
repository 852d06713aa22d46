"""Membership: the configuration history of one node's log, and the rules the core applies.

Pure: no I/O, no clock.  ``ConfHistory`` holds the configuration at the
snapshot (or the initial one) and ``(index, configuration)`` of every conf
entry after it; ``rakit.raft.core`` asks it what is in force.  The rules
(numbered 12-16 in the core's list, 1-5 here):

1.  *Membership, one server at a time* (thesis 4.1).  A configuration
   (``ConfState``: voters and learners) is a log entry (``ENTRY_CONF``,
   whose data carries the change and the configuration it yields).  It
   takes effect on a node as soon as the entry is appended to its log, on
   the leader and on followers alike, committed or not; a truncated conf
   entry is undone (the node returns to the latest conf entry left in its
   log, else to its snapshot's configuration, else to the initial voters).
   A restart recomputes the same from snapshot + log.  ``compact`` stores the
   configuration in force at the snapshot's index in ``SnapshotMeta``.
   Every decision uses the node's current configuration: commit, elections
   and vote counting, check-quorum, ReadIndex acks, replication targets.
2.  *Why single-server changes* (rather than joint consensus, thesis 4.3):
   they need no second kind of quorum, and a learner stage (rule 3) already
   covers the catch-up that makes changes safe to *availability*.  Safety:
   if C and C' differ by one server, any majority of C and any majority of
   C' share a server (with |C| = n and |C'| = n + 1, majorities have at
   least floor(n/2) + 1 and floor((n+1)/2) + 1 members, together more than
   the n + 1 servers there are; removal is symmetric).  So two leaders of
   one term, or a committed entry and a leader lacking it, would need two
   disjoint majorities: impossible, *provided configurations do not skip a
   step*.  Hence at most one uncommitted change at a time: the leader
   refuses a change while ``pending_conf_index`` (the latest conf entry, and
   on a leader at least its first entry of its term) is above the commit
   index.  The "first entry of its term" part is Ongaro's 2015 fix: a new
   leader must commit an entry of its own term before changing the
   configuration, or two leaders of different terms could each commit a
   change from the same base and together skip a step.
3.  *Learners*.  A learner is replicated to like a follower (it has a
   Progress, gets snapshots) but never counts toward commit, check-quorum or
   ReadIndex, and never campaigns (nor does any non-voter, but for rule 4's
   exception: ``campaign()``, the election timer and TimeoutNow do nothing
   on it).  It does answer
   vote requests by rule 4: a candidate may hold the entry promoting it
   while the learner does not yet, and if it refused, a quorum of the
   candidate's configuration could be unable to elect anyone.  A candidate
   counts only the votes of its own voters.  ``promote`` is refused unless
   the learner is caught up (``is_caught_up``): in replicate state, its match
   within ``max_entries_per_msg`` of the leader's last index, and heard from
   within the last election_ticks ticks -- so adding it does not stall
   commits while it catches up (thesis 4.2.1).
4.  *Removal*.  From the moment the leader appends a removal, the removed
   node gets no more appends or heartbeats.  A leader that removes itself
   keeps leading -- without counting itself -- until that entry is
   committed, then steps down and, being no voter, never campaigns.  A
   removed node that does not know it (it never gets the entry) can only
   pre-vote in vain (its log lacks the committed removal) or be ignored by
   the leader lease (the core's rule 2): thesis 4.2.3.  One exception to "non-voters
   never campaign": a node whose latest conf entry removed it *and is not
   known to be committed* still campaigns if it was a voter before that
   entry.  It is the ex-leader that lost leadership (check-quorum, a
   crash) before committing its own removal: its log may be the only one
   the remaining voters would elect, while those lacking the removal still
   need its vote -- without the exception, no one could ever win.  It
   counts votes in its own (new) configuration, like any candidate, so
   safety is the usual argument; elected, it commits the removal and steps
   down.
5.  *Senders outside our configuration*.  Their requests (AppendEntries,
   Heartbeat, InstallSnapshot, RequestVote, TimeoutNow) are stepped, their
   responses dropped.  A node's configuration may lag: a leader or candidate
   added in entries it has not received yet must be heard, or a quorum that
   includes the lagging node could never elect or replicate.  Terms, the
   log check of rule 4 and the lease keep strangers harmless.
"""

from __future__ import annotations

from collections.abc import Sequence

from rakit.raft.messages import ENTRY_CONF, ConfState, Entry, decode_conf_entry


def conf_of(entry: Entry) -> ConfState | None:
    """The configuration an ENTRY_CONF entry yields; None for other entries and bad data."""
    if entry.kind != ENTRY_CONF:
        return None
    conf_entry = decode_conf_entry(entry.data)
    return conf_entry.conf if conf_entry is not None else None


class ConfHistory:
    """The configurations of a log: ``base`` (at the snapshot) and one per conf entry after it."""

    __slots__ = ("base", "confs")

    def __init__(self, base: ConfState, entries: Sequence[Entry] = ()) -> None:
        self.base = base
        self.confs: list[tuple[int, ConfState]] = []
        for entry in entries:
            conf = conf_of(entry)
            if conf is not None:
                self.confs.append((entry.index, conf))

    @property
    def current(self) -> ConfState:
        """The configuration in force: the latest conf entry's, committed or not (rule 1)."""
        return self.confs[-1][1] if self.confs else self.base

    @property
    def latest_index(self) -> int:
        """The index of the latest conf entry (0: none after the snapshot)."""
        return self.confs[-1][0] if self.confs else 0

    @property
    def before_latest(self) -> ConfState:
        """The configuration the latest conf entry replaced (rule 4's exception)."""
        return self.confs[-2][1] if len(self.confs) > 1 else self.base

    def replaced_from(self, entries: Sequence[Entry]) -> bool:
        """The log replaced everything from ``entries[0]`` on: undo, then apply (rule 1).

        True when the configuration in force may have changed.
        """
        first = entries[0].index
        changed = False
        while self.confs and self.confs[-1][0] >= first:
            self.confs.pop()
            changed = True
        for entry in entries:
            conf = conf_of(entry)
            if conf is not None:
                self.confs.append((entry.index, conf))
                changed = True
        return changed

    def at(self, index: int) -> ConfState:
        """The configuration in force at ``index`` (not below the snapshot)."""
        conf = self.base
        for at, c in self.confs:
            if at > index:
                break
            conf = c
        return conf

    def compacted(self, index: int, conf: ConfState) -> None:
        """A snapshot at ``index`` now holds ``conf``: forget the entries it covers."""
        self.base = conf
        self.confs = [(i, c) for i, c in self.confs if i > index]

    def restored(self, conf: ConfState) -> None:
        """A received snapshot replaced the whole log."""
        self.base = conf
        self.confs = []


__all__ = ["ConfHistory", "conf_of"]
