"""RaftCore: the Raft state machine of one node, with no I/O at all.

Theory of operation
-------------------
The core is driven from outside (etcd's RawNode model): ``tick()`` is one
logical clock tick, ``step(msg)`` hands it one message, ``propose`` and
``read_index`` are client requests.  None of them waits or sends; they change
fields and pile up work.  ``ready()`` returns all pending work as a
:class:`~rakit.raft.ready.Ready`; the driver persists it, sends its messages,
applies its committed entries and calls ``advance(ready)``.  Only a
leader's replication at an already durable term and vote is in
``Ready.messages`` (it may leave before the fsync); every other message is in
``Ready.persisted_messages``, sent once the Ready is on disk, so a vote or an
ack is never sent for state that is not on disk yet (rule 18).

Each role is a pair of functions, swapped on every role change:
``_step_<role>`` (messages at the current term) and ``_tick_<role>``.

Rules
-----
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
5. *Leader*.  A new leader appends one ENTRY_NOOP of its term.  Commit
   advances to the index a majority has matched (the leader's own match is
   its *stable* index), and only if that entry has the current term (5.4.2).
6. *Check quorum*.  Every election_ticks a leader checks that a majority was
   recently active (answered) and steps down if not.
7. *Replication* (see progress.py).  Appends are generated only in
   ``ready()`` (and decided by ``_append_due``): every proposal since the last
   Ready travels in one AppendEntries per follower.  Heartbeats go out every
   heartbeat_ticks with commit = min(match, commit).
8. *Follower AppendEntries* (5.3).  prev_index below our commit: ack our
   commit.  Mismatch: reject with a hint (our last index if prev_index is past
   our log, else the first index of the conflicting term, and its term).
   Match: append, truncating conflicts only; commit = min(leader commit,
   last new index); ack the last new index.  A Heartbeat commits its index
   only if our entry there has the term the leader says it has (Log
   Matching), else only up to what an AppendEntries (or snapshot) of this
   term's leader confirmed; never just up to our last index: after a lost
   tail the leader's match is stale and our log may hold an older term's
   entries.
9. *Snapshots* (7).  A follower whose next entry was compacted away gets the
   latest snapshot (progress state ``snapshot``; resent after
   2 * election_ticks ticks without an answer).  A follower installs it unless
   it is already committed that far or holds the snapshot's last entry.
10. *ReadIndex* (thesis 6.4).  The leader records its commit index for the
   read, waits until it has committed an entry of its own term, confirms
   leadership with one heartbeat round carrying ``ctx`` and then hands out a
   ReadState.  Unconfirmed reads are dropped when leadership is lost
   (the bookkeeping: :mod:`rakit.raft.readonly`).
11. *Determinism*.  Peers are always visited in sorted order; the only
   randomness is the ``rng`` passed in.
12.-16. *Membership* (one server at a time, why, learners, removal,
   senders outside our configuration): stated in :mod:`rakit.raft.membership`,
   which keeps the configuration history; the core applies them.
17. *Leadership transfer* (thesis 3.10).  ``transfer_leader(target)`` (a
   voter) makes the leader refuse proposals and conf changes
   (``TransferInProgress``, a NotLeader naming the target), bring the
   target's log up to date by normal replication, then send it one
   ``TimeoutNow``; the target campaigns at once, without pre-vote and past
   the lease (``transfer``).  The transfer is abandoned after election_ticks
   ticks, or when the leader loses leadership.
18. *What may leave before the fsync* (thesis 10.2.1).  A leader's
   AppendEntries, Heartbeat and InstallSnapshot go in ``Ready.messages`` when
   this Ready changes neither term nor vote: they claim nothing about this
   node's disk, and its own log counts toward commit only from ``advance``
   (rule 5).  Every other message -- votes and vote requests, acks,
   rejections, TimeoutNow, and everything of a Ready that changes the term
   or vote -- is in ``Ready.persisted_messages``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from rakit.errors import (
    AlreadyVoter,
    ConfChangeInProgress,
    LastVoter,
    LearnerNotCaughtUp,
    MemberExists,
    NoLeader,
    NotAVoter,
    NotLeader,
    TransferInProgress,
    UnknownMember,
)
from rakit.raft import quorum
from rakit.raft.config import RaftConfig
from rakit.raft.log import RaftLog
from rakit.raft.membership import ConfHistory
from rakit.raft.messages import (
    ENTRY_CONF,
    ENTRY_NOOP,
    ENTRY_NORMAL,
    AnyMessage,
    AppendEntries,
    AppendEntriesResp,
    ConfChange,
    ConfEntry,
    ConfState,
    Entry,
    HardState,
    Heartbeat,
    HeartbeatResp,
    InstallSnapshot,
    ReadState,
    RequestVote,
    RequestVoteResp,
    Snapshot,
    SnapshotMeta,
    TimeoutNow,
    encode_conf_entry,
)
from rakit.raft.progress import Progress
from rakit.raft.readonly import ReadOnly
from rakit.raft.ready import Ready, SoftState
from rakit.raft.roles import Role

FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER = Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE, Role.LEADER

# Messages stepped even from a sender outside our configuration (rule 16).
_REQUESTS = (AppendEntries, Heartbeat, InstallSnapshot, RequestVote, TimeoutNow)
_CONF_OPS = ("add_learner", "promote", "remove")
# A leader's replication, sent before its fsync when term and vote are durable (rule 18).
EARLY_KINDS = (AppendEntries, Heartbeat, InstallSnapshot)


DEFAULT_CONFIG = RaftConfig()
NO_HARD_STATE = HardState()  # term 0, no vote, commit 0: a new node


class RaftCore:
    """One node's Raft state machine; ``voters`` is the initial configuration.

    The configuration in force is recomputed from ``snapshot`` (its
    ``SnapshotMeta``) and the conf entries in ``entries`` (rule 12); ``voters``
    only counts when neither has one, i.e. it must be the cluster's
    *initial* voter set.  A node joining a running cluster with an empty
    data dir may pass the initial voters or ``[]``: it is no voter either
    way, and its first conf entry or snapshot tells it the configuration.
    """

    def __init__(
        self,
        node_id: str,
        voters: list[str],
        *,
        config: RaftConfig = DEFAULT_CONFIG,
        rng: random.Random | None = None,
        hard_state: HardState = NO_HARD_STATE,
        snapshot: Snapshot | None = None,
        entries: Sequence[Entry] = (),
    ) -> None:
        self._id = node_id
        self._config = config
        self._rng = rng if rng is not None else random.Random(node_id)
        self._log = RaftLog(snapshot, entries, hard_state.commit)
        # Membership (rule 12): the configuration at the snapshot (or the
        # initial one) and (index, configuration) of every conf entry after it.
        self._confs = ConfHistory(snapshot.meta.conf_state() if snapshot else ConfState.of(voters), entries)
        self._conf = self._confs.current
        self._voters = list(self._conf.voters)
        self._prev_conf = self._conf
        self._log.on_append = self._on_log_append
        # Leader only: its first index of the term, its tick count, a transfer.
        self._term_start = 0
        self._leader_ticks = 0
        self._transfer_target: str | None = None
        self._transfer_elapsed = 0
        self._timeout_now_sent = False
        self._term = hard_state.term
        self._vote = hard_state.vote
        self._leader_id: str | None = None
        # Rule 8: the last index this follower's log is known to share with the leader of this term.
        self._leader_match = 0
        self._role: Role = FOLLOWER
        self._step: Callable[[AnyMessage], None] = self._step_follower
        self._tick: Callable[[], None] = self._tick_election
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = config.election_ticks
        self._votes: dict[str, bool] = {}
        self._progress: dict[str, Progress] = {}
        self.follower_regressions = 0  # rule 7: followers found to have lost acknowledged entries
        self._msgs: list[AnyMessage] = []
        self._reads = ReadOnly()  # ReadIndex: held and pending reads (rule 10)
        self._read_states: list[ReadState] = []
        self._become_follower(self._term, None)
        self._prev_hard_state = hard_state
        self._prev_soft_state = self._soft_state()

    # -- read-only view ------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def role(self) -> Role:
        return self._role

    @property
    def term(self) -> int:
        return self._term

    @property
    def vote(self) -> str | None:
        return self._vote

    @property
    def leader_id(self) -> str | None:
        return self._leader_id

    @property
    def commit_index(self) -> int:
        return self._log.committed

    @property
    def applied_index(self) -> int:
        return self._log.applied

    @property
    def last_index(self) -> int:
        return self._log.last_index

    @property
    def last_term(self) -> int:
        return self._log.last_term

    @property
    def first_index(self) -> int:
        return self._log.first_index

    @property
    def snapshot(self) -> Snapshot | None:
        return self._log.snapshot

    @property
    def voters(self) -> list[str]:
        return list(self._voters)

    @property
    def learners(self) -> list[str]:
        return list(self._conf.learners)

    @property
    def conf_state(self) -> ConfState:
        """The configuration in force on this node (rule 12: as appended, committed or not)."""
        return self._conf

    @property
    def pending_conf_index(self) -> int:
        """The index that must be committed before the next conf change (rule 13)."""
        index = self._confs.latest_index
        if self._role == LEADER:
            index = max(index, self._term_start)
        return index

    @property
    def transferring_to(self) -> str | None:
        """The target of a leadership transfer in progress (leader only), else None."""
        return self._transfer_target if self._role == LEADER else None

    def is_caught_up(self, peer: str) -> bool:
        """Leader only: may ``peer`` be promoted now?  (Rule 14.)"""
        if self._role != LEADER:
            return False
        if peer == self._id:
            return True
        pr = self._progress.get(peer)
        return (
            pr is not None
            and pr.state == "replicate"
            and pr.match >= self._log.last_index - self._config.max_entries_per_msg
            and pr.heard_at is not None
            and self._leader_ticks - pr.heard_at <= self._config.election_ticks
        )

    @property
    def log(self) -> RaftLog:
        """The log view (for tests and diagnostics; do not mutate)."""
        return self._log

    def progress(self, peer: str) -> Progress | None:
        """A leader's replication progress for ``peer`` (diagnostics)."""
        return self._progress.get(peer) if self._role == LEADER else None

    # -- inputs ------------------------------------------------------------------

    def tick(self) -> None:
        self._tick()

    def step(self, msg: AnyMessage) -> None:
        if msg.dst != self._id or msg.src == self._id:
            return
        if not isinstance(msg, _REQUESTS) and msg.src not in self._conf.voters and (msg.src not in self._conf.learners):
            return  # rule 16
        if msg.term > self._term:
            if not self._accept_higher_term(msg):
                return
        elif msg.term < self._term:
            self._answer_stale(msg)
            return
        if isinstance(msg, RequestVote):
            self._handle_request_vote(msg)
        else:
            self._step(msg)

    def propose(self, commands: list[bytes]) -> tuple[int, int]:
        self._require_leader()
        self._require_no_transfer()
        if not commands:
            raise ValueError("propose() needs at least one command")
        first = self._log.last_index + 1
        self._append([Entry(self._term, first + i, ENTRY_NORMAL, data) for i, data in enumerate(commands)])
        return self._term, first

    def read_index(self, ctx: int) -> None:
        """Start a ReadIndex round for ``ctx`` (unique, non-zero, chosen by the driver)."""
        self._require_leader()
        if ctx == 0 or self._reads.knows(ctx):
            raise ValueError(f"read ctx must be non-zero and unique, got {ctx}")
        if self._committed_in_term():
            self._start_read(ctx)
        else:
            self._reads.hold(ctx)

    def campaign(self) -> None:
        """Start an election now, skipping the pre-vote (a non-voter does nothing)."""
        if self._role != LEADER:
            self._campaign(pre_vote=False, transfer=False)

    def propose_conf_change(self, change: ConfChange) -> tuple[int, int]:
        """Append a one-server configuration change; ``(term, index)`` like ``propose``.

        Leader only (NotLeader/NoLeader, TransferInProgress).  Refused, with
        nothing changed, by a ``ConfChangeRefused`` subclass: an earlier change
        is not committed yet (``ConfChangeInProgress``, rule 13), adding a
        member (``MemberExists``), promoting or removing a non-member
        (``UnknownMember``), removing the only voter (``LastVoter``), promoting
        a voter (``AlreadyVoter``) or a learner not caught up
        (``LearnerNotCaughtUp``).  The change takes effect at once (rule 12).
        """
        if change.op not in _CONF_OPS:
            raise ValueError(f"unknown conf change op {change.op!r}")
        self._require_leader()
        self._require_no_transfer()
        pending = self.pending_conf_index
        if pending > self._log.committed:
            raise ConfChangeInProgress(
                f"the configuration change at index {pending} is not committed yet (commit index {self._log.committed})"
            )
        conf, node = self._conf, change.node
        if change.op == "add_learner":
            if node in conf.voters or node in conf.learners:
                raise MemberExists(f"{node} is already a member")
        elif node not in conf.voters and node not in conf.learners:
            raise UnknownMember(f"{node} is not a member")
        elif change.op == "promote":
            if node in conf.voters:
                raise AlreadyVoter(f"{node} is already a voter")
            if not self.is_caught_up(node):
                raise LearnerNotCaughtUp(f"learner {node} has not caught up with the leader's log")
        elif conf.voters == (node,):
            raise LastVoter(f"{node} is the last voter")
        data = encode_conf_entry(ConfEntry(change, conf.apply(change)))
        index = self._log.last_index + 1
        self._append([Entry(self._term, index, ENTRY_CONF, data)])
        return self._term, index

    def transfer_leader(self, target: str) -> None:
        """Hand leadership to the voter ``target`` (rule 17).

        A no-op for ourselves or for the target of the transfer in progress;
        ``NotAVoter`` for a non-voter, ``TransferInProgress`` while another
        transfer runs; NotLeader/NoLeader on a non-leader.
        """
        self._require_leader()
        if target == self._id or target == self._transfer_target:
            return
        if target not in self._conf.voters:
            raise NotAVoter(f"{target} is not a voter")
        self._require_no_transfer()
        self._transfer_target = target
        self._transfer_elapsed = 0
        self._timeout_now_sent = False
        self._maybe_send_timeout_now()

    # -- Ready / advance -----------------------------------------------------------

    def has_ready(self) -> bool:
        log = self._log
        return bool(
            self._msgs
            or self._read_states
            or self._hard_state() != self._prev_hard_state
            or self._soft_state_changed()
            or log.pending_snapshot is not None
            or log.stable_index < log.last_index
            or log.has_next_committed()
            or self._conf_changed()
            or (self._role == LEADER and self._reads.heartbeat_due)
            or (self._role == LEADER and any(self._append_due(pr) for pr in self._progress.values()))
        )

    def ready(self) -> Ready:
        if self._role == LEADER:
            self._flush_appends()
            if self._reads.heartbeat_due:
                self._broadcast_heartbeat()
        rd = Ready(
            entries=self._log.unstable_entries(),
            snapshot=self._log.pending_snapshot,
            committed_entries=self._log.next_committed(self._config.max_committed_per_ready),
            read_states=self._read_states,
        )
        hard_state = self._hard_state()
        if hard_state != self._prev_hard_state:
            rd.hard_state = hard_state
        rd.messages, rd.persisted_messages = self._split_by_durability(hard_state)
        if self._soft_state_changed():
            rd.soft_state = self._soft_state()
        if self._conf_changed():
            rd.conf_state = self._conf
        self._msgs = []
        self._read_states = []
        return rd

    def _split_by_durability(self, hard_state: HardState) -> tuple[list[AnyMessage], list[AnyMessage]]:
        """Rule 18: (messages that may leave before this Ready is persisted, those that must wait)."""
        prev = self._prev_hard_state
        if self._role != LEADER or hard_state.term != prev.term or hard_state.vote != prev.vote:
            return [], self._msgs
        early: list[AnyMessage] = []
        late: list[AnyMessage] = []
        for msg in self._msgs:
            (early if isinstance(msg, EARLY_KINDS) else late).append(msg)
        return early, late

    def advance(self, ready: Ready) -> None:
        if ready.hard_state is not None:
            self._prev_hard_state = ready.hard_state
        if ready.soft_state is not None:
            self._prev_soft_state = ready.soft_state
        if ready.conf_state is not None:
            self._prev_conf = ready.conf_state
        if ready.snapshot is not None:
            self._log.snapshot_restored(ready.snapshot)
        if ready.entries:
            self._log.stable_to(ready.entries[-1].index)
        if ready.committed_entries:
            self._log.applied_to(ready.committed_entries[-1].index)
        if self._role == LEADER and ready.entries:
            self._maybe_commit()

    def compact(self, index: int, data: bytes) -> Snapshot:
        """Keep a state-machine snapshot taken at ``index`` and drop the entries it covers."""
        if index > self._log.applied:
            raise ValueError(f"cannot compact to {index}: applied only {self._log.applied}")
        term = self._log.term_at(index)
        if term is None or index <= self._log.snapshot_index:
            raise ValueError(f"cannot compact to {index}: snapshot at {self._log.snapshot_index}")
        conf = self._confs.at(index)
        snap = Snapshot(SnapshotMeta(index, term, list(conf.voters), list(conf.learners)), data)
        self._log.compact(snap)
        self._confs.compacted(index, conf)
        return snap

    # -- small helpers -----------------------------------------------------------

    def _hard_state(self) -> HardState:
        return HardState(self._term, self._vote, self._log.committed)

    def _soft_state(self) -> SoftState:
        return SoftState(self._role, self._leader_id, self._term)

    def _soft_state_changed(self) -> bool:
        prev = self._prev_soft_state
        return (prev.role, prev.leader_id) != (self._role, self._leader_id)

    def _conf_changed(self) -> bool:
        return self._conf is not self._prev_conf and self._conf != self._prev_conf

    def _peers(self) -> list[str]:
        """Every member but us: whom a leader replicates to."""
        return [m for m in self._conf.members if m != self._id]

    def _send(self, msg: AnyMessage) -> None:
        self._msgs.append(msg)

    def _require_leader(self) -> None:
        if self._role != LEADER:
            if self._leader_id is None:
                raise NoLeader()
            raise NotLeader(self._leader_id)

    def _require_no_transfer(self) -> None:
        if self._transfer_target is not None:
            raise TransferInProgress(self._transfer_target)

    def _in_lease(self) -> bool:
        return (
            self._config.check_quorum
            and self._leader_id is not None
            and self._election_elapsed < self._config.election_ticks
        )

    def _committed_in_term(self) -> bool:
        return self._log.term_at(self._log.committed) == self._term

    # -- role changes ----------------------------------------------------------------

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

    # -- ticks -------------------------------------------------------------------------

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._election_elapsed >= self._randomized_timeout and self._may_campaign():
            self._election_elapsed = 0
            self._campaign(pre_vote=self._config.pre_vote, transfer=False)

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
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
        for pr in self._progress.values():
            pr.tick_snapshot(2 * self._config.election_ticks)
        if self._heartbeat_elapsed >= self._config.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat()

    def _quorum_active(self) -> bool:
        active = {self._id: True}
        for peer, pr in self._progress.items():
            active[peer] = pr.recent_active
            pr.recent_active = False
        return quorum.vote_result(active, self._voters) == "won"

    # -- elections ---------------------------------------------------------------------

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
        if isinstance(msg, (AppendEntries, Heartbeat)):
            self._send(AppendEntriesResp(term=self._term, src=self._id, dst=msg.src, success=False, index=0))
        elif isinstance(msg, RequestVote) and msg.pre_vote:
            self._send(RequestVoteResp(term=self._term, src=self._id, dst=msg.src, granted=False, pre_vote=True))

    def _handle_request_vote(self, msg: RequestVote) -> None:
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

    def _step_leader(self, msg: AnyMessage) -> None:
        match msg:
            case AppendEntriesResp():
                self._handle_append_resp(msg)
            case HeartbeatResp():
                self._handle_heartbeat_resp(msg)

    # -- follower side -----------------------------------------------------------------

    def _handle_from_leader(self, msg: AppendEntries | Heartbeat | InstallSnapshot) -> None:
        if isinstance(msg, AppendEntries):
            self._handle_append(msg)
        elif isinstance(msg, Heartbeat):
            # Rule 8: only an entry known to match the leader's: the heartbeat's commit entry has
            # the leader's term there (Log Matching), or an AppendEntries confirmed it.  The leader's
            # match may be stale (our disk lost acknowledged records and what is left holds an
            # older term's entries at those indexes); committing them would apply entries the
            # cluster never committed.
            matched = msg.commit_term and self._log.match_term(msg.commit, msg.commit_term)
            self._log.commit_to(msg.commit if matched else min(msg.commit, self._leader_match))
            self._send(HeartbeatResp(term=self._term, src=self._id, dst=msg.src, ctx=msg.ctx))
        else:
            self._handle_snapshot(msg)

    def _ack(self, leader: str, index: int) -> None:
        self._send(AppendEntriesResp(term=self._term, src=self._id, dst=leader, success=True, index=index))

    def _handle_append(self, msg: AppendEntries) -> None:
        log = self._log
        if msg.prev_index < log.committed:
            self._ack(msg.src, log.committed)
            return
        last_new = log.maybe_append(msg.prev_index, msg.prev_term, msg.commit, msg.entries)
        if last_new is not None:
            self._leader_match = max(self._leader_match, last_new)
            self._ack(msg.src, last_new)
            return
        if msg.prev_index > log.last_index:
            hint_index = log.last_index
        else:
            hint_index = log.first_index_of_term_at(msg.prev_index)
        self._send(
            AppendEntriesResp(
                term=self._term,
                src=self._id,
                dst=msg.src,
                success=False,
                index=msg.prev_index,
                hint_index=hint_index,
                hint_term=log.term_at(hint_index) or 0,
            )
        )

    def _handle_snapshot(self, msg: InstallSnapshot) -> None:
        meta = msg.snapshot.meta
        log = self._log
        if meta.index <= log.committed:
            self._ack(msg.src, log.committed)
        elif log.match_term(meta.index, meta.term):
            log.commit_to(meta.index)
            self._leader_match = max(self._leader_match, meta.index)
            self._ack(msg.src, meta.index)
        else:
            self._leader_match = max(self._leader_match, meta.index)
            log.restore(msg.snapshot)
            self._confs.restored(meta.conf_state())
            self._set_conf(self._confs.current)
            self._ack(msg.src, meta.index)

    # -- leader side -------------------------------------------------------------------

    def _append(self, entries: list[Entry]) -> None:
        # Our own copy counts toward commit once persisted: see advance().
        self._log.append(entries)

    def _maybe_commit(self) -> bool:
        match = {peer: pr.match for peer, pr in self._progress.items()}
        match[self._id] = self._log.stable_index
        index = quorum.committed_index(match, self._voters)
        if index <= self._log.committed or self._log.term_at(index) != self._term:
            return False
        self._log.commit_to(index)
        self._release_held_reads()
        if self._id not in self._conf.voters and index >= self.pending_conf_index:
            # Our own removal is committed: step down, never to campaign (rule 15).
            self._become_follower(self._term, None)
        return True

    def _handle_append_resp(self, msg: AppendEntriesResp) -> None:
        pr = self._progress.get(msg.src)
        if pr is None:
            return  # removed since it was sent to
        pr.recent_active = True
        pr.heard_at = self._leader_ticks
        if not msg.success:
            self._handle_reject(pr, msg)
            return
        if msg.index > self._log.last_index:
            return
        if not pr.maybe_update(msg.index) and not (pr.state == "probe" and msg.index == pr.match):
            return  # stale or duplicate
        if pr.state == "probe":
            pr.become_replicate()
        elif pr.state == "snapshot":
            if pr.match >= pr.pending_snapshot or pr.match + 1 >= self._log.first_index:
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.inflights.free_le(msg.index)
        if msg.src == self._transfer_target:
            self._maybe_send_timeout_now()
        self._maybe_commit()

    def _handle_reject(self, pr: Progress, msg: AppendEntriesResp) -> None:
        if msg.hint_term:
            probe_prev = self._log.last_index_with_term_at_most(msg.hint_index, msg.hint_term)
        else:
            probe_prev = min(msg.hint_index, self._log.last_index)
        if pr.state == "probe" and 0 < msg.index == pr.next - 1 and msg.index <= pr.match:
            pr.regress(min(probe_prev, msg.index - 1))  # rule 7: its log went back
            self.follower_regressions += 1
            return
        if pr.maybe_decr_to(msg.index, probe_prev) and pr.state == "replicate":
            pr.become_probe()

    def _handle_heartbeat_resp(self, msg: HeartbeatResp) -> None:
        pr = self._progress.get(msg.src)
        if pr is None:
            return  # removed since it was sent to
        pr.heard_at = self._leader_ticks
        pr.heartbeat_answered(lagging=pr.match < self._log.last_index)
        self._read_states.extend(self._reads.ack(msg.ctx, msg.src, self._voters))

    def _append_due(self, pr: Progress) -> bool:
        if pr.is_paused():
            return False
        if pr.next < self._log.first_index:
            return True  # needs the snapshot
        window_open = pr.state != "replicate" or not pr.inflights.full()
        if pr.next <= self._log.last_index and window_open:
            return True
        # A new commit index alone does not warrant a message: it rides on the
        # next append or heartbeat (<= heartbeat_ticks away), which halves the
        # messages per write at low concurrency.
        return pr.kick

    def _flush_appends(self) -> None:
        for peer in self._peers():
            pr = self._progress[peer]
            while self._append_due(pr):
                self._send_append(peer, pr)

    def _send_append(self, peer: str, pr: Progress) -> None:
        log = self._log
        prev_index = pr.next - 1
        prev_term = log.term_at(prev_index)
        if prev_term is None:
            self._send_snapshot(peer, pr)
            return
        entries: list[Entry] = []
        if pr.state != "replicate" or not pr.inflights.full():
            entries = log.entries_for_message(pr.next, self._config.max_entries_per_msg, self._config.max_bytes_per_msg)
        self._send(
            AppendEntries(
                term=self._term,
                src=self._id,
                dst=peer,
                prev_index=prev_index,
                prev_term=prev_term,
                entries=entries,
                commit=log.committed,
            )
        )
        pr.sent_append(len(entries), entries[-1].index if entries else prev_index)

    def _send_snapshot(self, peer: str, pr: Progress) -> None:
        snap = self._log.snapshot
        if snap is None:  # pragma: no cover - term unknown only below a snapshot
            raise AssertionError(f"no snapshot to send to {peer} at next={pr.next}")
        self._send(InstallSnapshot(term=self._term, src=self._id, dst=peer, snapshot=snap))
        pr.become_snapshot(snap.meta.index)
        pr.kick = False

    def _broadcast_heartbeat(self) -> None:
        ctx = self._reads.latest_ctx()
        self._reads.heartbeat_due = False
        for peer in self._peers():
            commit = min(self._progress[peer].match, self._log.committed)
            self._send(
                Heartbeat(
                    term=self._term,
                    src=self._id,
                    dst=peer,
                    commit=commit,
                    commit_term=self._log.term_at(commit) or 0,
                    ctx=ctx,
                )
            )

    # -- ReadIndex -------------------------------------------------------------------------

    def _start_read(self, ctx: int) -> None:
        index = self._log.committed
        if self._voters == [self._id]:
            self._read_states.append(ReadState(ctx, index))
            return
        self._reads.start(ctx, index, self._id)

    def _release_held_reads(self) -> None:
        if self._reads.held and self._committed_in_term():
            for ctx in self._reads.take_held():
                self._start_read(ctx)

    # -- membership ------------------------------------------------------------------------

    def _on_log_append(self, entries: Sequence[Entry]) -> None:
        """The log replaced everything from entries[0] on (membership rule 1: undo, then apply)."""
        if self._confs.replaced_from(entries):
            self._set_conf(self._confs.current)

    def _set_conf(self, conf: ConfState) -> None:
        if conf == self._conf:
            return
        self._conf = conf
        self._voters = list(conf.voters)
        if self._role != LEADER:
            return
        peers = self._peers()
        for peer in peers:
            if peer not in self._progress:
                self._progress[peer] = Progress(self._log.last_index + 1, self._config.max_inflight)
        for peer in [p for p in self._progress if p not in peers]:
            del self._progress[peer]
        if self._transfer_target is not None and self._transfer_target not in conf.voters:
            self._transfer_target = None
        self._maybe_commit()  # a smaller quorum may commit more

    def _maybe_send_timeout_now(self) -> None:
        target = self._transfer_target
        if target is None or self._timeout_now_sent:
            return
        pr = self._progress.get(target)
        if pr is not None and pr.match == self._log.last_index:
            self._timeout_now_sent = True
            self._send(TimeoutNow(term=self._term, src=self._id, dst=target))
