"""Elections: terms, votes, role changes and leadership transfer of ``RaftCore``.

Pure: no I/O, no clock.  :class:`ElectionMixin` acts on the fields of
:class:`~rakit.raft.state.RaftState`; ``RaftCore`` (``rakit.raft.core``)
mixes it in.  Its rules keep the numbers of the core's list (rules 5, 7-9
are in :mod:`rakit.raft.replication`, 10-18 in the core and
:mod:`rakit.raft.membership`):

1. *Terms* (paper 5.1).  A message with a higher term makes us a follower at
   that term -- its sender is our leader if it is an AppendEntries, Heartbeat
   or InstallSnapshot -- except a pre-vote request or a granted pre-vote
   response, which never change the receiver's term (thesis 9.6).
   A message with a lower term is dropped, but a stale leader's
   AppendEntries/Heartbeat gets an AppendEntriesResp carrying our term (so a
   leader resumed after a pause steps down) and a stale pre-vote request
   gets a rejection carrying our term.
2. *Leader lease* (thesis 4.2.3).  With check_quorum, a node that heard from
   a leader within the last election_ticks ignores RequestVote (pre or real)
   with a higher term, unless ``transfer`` is set, and keeps its term.
3. *Elections* (5.2).  A follower that hears no leader for its randomized
   timeout, drawn from [election_ticks, 2 * election_ticks) with the given
   ``rng``, becomes a pre-candidate (with pre_vote) and asks for votes at
   term + 1 without changing its term or vote; once a majority would vote
   for it, it becomes a candidate: term + 1, votes for itself, asks again.
   ``campaign()`` and TimeoutNow skip the pre-vote.
4. *Voting* (5.2, 5.4.1).  One vote per term: grant if we already voted for
   this candidate, or have not voted and know no leader in this term (a
   pre-vote: if its term is above ours), and the candidate's log is at
   least as up to date as ours.  A real grant resets our election timer.
6. *Check quorum*.  Every election_ticks a leader checks that a majority was
   recently active (answered) and steps down if not.
17. *Leadership transfer* (thesis 3.10).  ``transfer_leader(target)`` (a
   voter) makes the leader refuse proposals and conf changes
   (``TransferInProgress``, a NotLeader naming the target), bring the
   target's log up to date by normal replication, then send it one
   ``TimeoutNow``; the target campaigns at once, without pre-vote and past
   the lease (``transfer``).  The transfer is abandoned after election_ticks
   ticks, or when the leader loses leadership.

Each role is a pair of functions, swapped on every role change:
``_step_<role>`` (messages at the current term) and ``_tick_<role>``.
"""

from __future__ import annotations

from rakit.errors import TransferInProgress
from rakit.raft import quorum
from rakit.raft.messages import (
    ENTRY_NOOP,
    AnyMessage,
    AppendEntries,
    AppendEntriesResp,
    Entry,
    Heartbeat,
    InstallSnapshot,
    RequestVote,
    RequestVoteResp,
    TimeoutNow,
)
from rakit.raft.progress import Progress
from rakit.raft.roles import Role
from rakit.raft.state import RaftState

FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER = Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE, Role.LEADER


class ElectionMixin(RaftState):
    """Rules 1-4, 6 and 17 on the state of :class:`~rakit.raft.state.RaftState`."""

    # -- role changes --------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        if term != self._term:
            self._term = term
            self._vote = None
        self._leader_id = None
        self._leader_match = 0
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = self._config.election_ticks + self._rng.randrange(self._config.election_ticks)
        self._votes = {}
        self._progress = {}
        self._reads.reset()
        self._transfer_target = None

    def _become_follower(self, term: int, leader_id: str | None) -> None:
        self._reset(term)
        self._role = FOLLOWER
        self._leader_id = leader_id
        self._step = self._step_follower
        self._tick = self._tick_election

    def _become_pre_candidate(self) -> None:
        # Term, vote and election timer stay as they are (thesis 9.6).
        self._role = PRE_CANDIDATE
        self._leader_id = None
        self._votes = {}
        self._step = self._step_candidate
        self._tick = self._tick_election

    def _become_candidate(self) -> None:
        self._reset(self._term + 1)
        self._vote = self._id
        self._role = CANDIDATE
        self._step = self._step_candidate
        self._tick = self._tick_election

    def _become_leader(self) -> None:
        self._reset(self._term)
        self._role = LEADER
        self._leader_id = self._id
        self._step = self._step_leader
        self._tick = self._tick_leader
        next_index = self._log.last_index + 1
        self._progress = {p: Progress(next_index, self._config.max_inflight) for p in self._peers()}
        self._term_start = next_index
        self._leader_ticks = 0
        self._append([Entry(self._term, next_index, ENTRY_NOOP)])

    # -- step functions ------------------------------------------------------------------

    def _step_follower(self, msg: AnyMessage) -> None:
        match msg:
            case AppendEntries() | Heartbeat() | InstallSnapshot():
                self._election_elapsed = 0
                self._leader_id = msg.src
                self._handle_from_leader(msg)
            case TimeoutNow():
                self._campaign(pre_vote=False, transfer=True)

    def _step_candidate(self, msg: AnyMessage) -> None:
        """Both candidate roles; a pre-candidate counts pre-votes, a candidate votes."""
        match msg:
            case AppendEntries() | Heartbeat() | InstallSnapshot():
                self._become_follower(msg.term, msg.src)
                self._handle_from_leader(msg)
            case RequestVoteResp() if msg.pre_vote == (self._role == PRE_CANDIDATE):
                if msg.src in self._conf.voters:  # a learner's vote does not count
                    self._record_vote(msg.src, msg.granted)
            case TimeoutNow():
                self._campaign(pre_vote=False, transfer=True)

    # -- ticks ---------------------------------------------------------------------------

    def _tick_election(self) -> None:
        """Rule 3: campaign once the randomized timeout passes without a leader."""
        self._election_elapsed += 1
        if self._election_elapsed >= self._randomized_timeout and self._may_campaign():
            self._election_elapsed = 0
            self._campaign(pre_vote=self._config.pre_vote, transfer=False)

    def _tick_leader(self) -> None:
        """Rules 17 (abandon a transfer) and 6 (check quorum), then the replication tick."""
        self._election_elapsed += 1
        self._leader_ticks += 1
        if self._transfer_target is not None:
            self._transfer_elapsed += 1
            if self._transfer_elapsed >= self._config.election_ticks:
                self._transfer_target = None  # abandoned (rule 17)
        if self._election_elapsed >= self._config.election_ticks:
            self._election_elapsed = 0
            if self._config.check_quorum and not self._quorum_active():
                self._become_follower(self._term, None)
                return
        self._tick_replication()

    def _quorum_active(self) -> bool:
        """Rule 6: a majority answered since the last check (and the marks are cleared)."""
        active = {self._id: True}
        for peer, pr in self._progress.items():
            active[peer] = pr.recent_active
            pr.recent_active = False
        return quorum.vote_result(active, self._voters) == "won"

    # -- elections -----------------------------------------------------------------------

    def _in_lease(self) -> bool:
        """Rule 2."""
        return (
            self._config.check_quorum
            and self._leader_id is not None
            and self._election_elapsed < self._config.election_ticks
        )

    def _may_campaign(self) -> bool:
        """A voter, or the exception of rule 15 (our own removal, not known to be committed)."""
        if self._id in self._conf.voters:
            return True
        if self._confs.latest_index <= self._log.committed:
            return False
        return self._id in self._confs.before_latest.voters

    def _campaign(self, *, pre_vote: bool, transfer: bool) -> None:
        if not self._may_campaign():
            return  # learners and removed nodes never campaign (rules 14, 15)
        if pre_vote:
            self._become_pre_candidate()
            term = self._term + 1
        else:
            self._become_candidate()
            term = self._term
        if self._record_vote(self._id, True):
            return
        for peer in self._voters:
            if peer == self._id:
                continue
            self._send(
                RequestVote(
                    term=term,
                    src=self._id,
                    dst=peer,
                    last_index=self._log.last_index,
                    last_term=self._log.last_term,
                    pre_vote=pre_vote,
                    transfer=transfer,
                )
            )

    def _record_vote(self, voter: str, granted: bool) -> bool:
        """Count one answer; True if the election ended (won or lost)."""
        self._votes.setdefault(voter, granted)
        result = quorum.vote_result(self._votes, self._voters)
        if result == "won":
            if self._role == PRE_CANDIDATE:
                self._campaign(pre_vote=False, transfer=False)
            else:
                self._become_leader()
            return True
        if result == "lost":
            self._become_follower(self._term, None)
            return True
        return False

    def _accept_higher_term(self, msg: AnyMessage) -> bool:
        """Rules 1 and 2 for a message with a higher term; False to drop it."""
        if isinstance(msg, RequestVote):
            if not msg.transfer and self._in_lease():
                return False
            if msg.pre_vote:
                return True
        if isinstance(msg, RequestVoteResp) and msg.pre_vote and msg.granted:
            return True
        if isinstance(msg, (AppendEntries, Heartbeat, InstallSnapshot)):
            self._become_follower(msg.term, msg.src)
        else:
            self._become_follower(msg.term, None)
        return True

    def _answer_stale(self, msg: AnyMessage) -> None:
        """Rule 1: a stale leader or pre-candidate learns our term."""
        if isinstance(msg, (AppendEntries, Heartbeat)):
            self._send(AppendEntriesResp(term=self._term, src=self._id, dst=msg.src, success=False, index=0))
        elif isinstance(msg, RequestVote) and msg.pre_vote:
            self._send(RequestVoteResp(term=self._term, src=self._id, dst=msg.src, granted=False, pre_vote=True))

    def _handle_request_vote(self, msg: RequestVote) -> None:
        """Rule 4."""
        can_vote = (
            self._vote == msg.src
            or (self._vote is None and self._leader_id is None)
            or (msg.pre_vote and msg.term > self._term)
        )
        granted = can_vote and self._log.is_up_to_date(msg.last_index, msg.last_term)
        self._send(
            RequestVoteResp(
                term=msg.term if granted else self._term,
                src=self._id,
                dst=msg.src,
                granted=granted,
                pre_vote=msg.pre_vote,
            )
        )
        if granted and not msg.pre_vote:
            self._election_elapsed = 0
            self._vote = msg.src

    # -- leadership transfer -------------------------------------------------------------

    def _require_no_transfer(self) -> None:
        if self._transfer_target is not None:
            raise TransferInProgress(self._transfer_target)

    def _maybe_send_timeout_now(self) -> None:
        """Rule 17: one TimeoutNow, once the target has matched our whole log."""
        target = self._transfer_target
        if target is None or self._timeout_now_sent:
            return
        pr = self._progress.get(target)
        if pr is not None and pr.match == self._log.last_index:
            self._timeout_now_sent = True
            self._send(TimeoutNow(term=self._term, src=self._id, dst=target))
