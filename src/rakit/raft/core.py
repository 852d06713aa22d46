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

The rules are numbered across the core and the modules that implement
them; each module states its own at its top.

Rules
-----
1.-4., 6., 17. *Terms, leader lease, elections, voting, check quorum,
   leadership transfer*: stated in :mod:`rakit.raft.election`.
5., 7.-9. *Leader commit, replication, follower AppendEntries, snapshots*:
   stated in :mod:`rakit.raft.replication`.
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
from collections.abc import Sequence

from rakit.errors import (
    AlreadyVoter,
    ConfChangeInProgress,
    LastVoter,
    LearnerNotCaughtUp,
    MemberExists,
    NoLeader,
    NotAVoter,
    NotLeader,
    UnknownMember,
)
from rakit.raft.config import RaftConfig
from rakit.raft.election import ElectionMixin
from rakit.raft.log import RaftLog
from rakit.raft.membership import ConfHistory
from rakit.raft.messages import (
    ENTRY_CONF,
    ENTRY_NORMAL,
    AnyMessage,
    AppendEntries,
    ConfChange,
    ConfEntry,
    ConfState,
    Entry,
    HardState,
    Heartbeat,
    InstallSnapshot,
    ReadState,
    RequestVote,
    Snapshot,
    SnapshotMeta,
    TimeoutNow,
    encode_conf_entry,
)
from rakit.raft.progress import Progress
from rakit.raft.readonly import ReadOnly
from rakit.raft.ready import Ready, SoftState
from rakit.raft.replication import ReplicationMixin
from rakit.raft.roles import Role

FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER = Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE, Role.LEADER

# Messages stepped even from a sender outside our configuration (rule 16).
_REQUESTS = (AppendEntries, Heartbeat, InstallSnapshot, RequestVote, TimeoutNow)
_CONF_OPS = ("add_learner", "promote", "remove")
# A leader's replication, sent before its fsync when term and vote are durable (rule 18).
EARLY_KINDS = (AppendEntries, Heartbeat, InstallSnapshot)


DEFAULT_CONFIG = RaftConfig()
NO_HARD_STATE = HardState()  # term 0, no vote, commit 0: a new node


class RaftCore(ElectionMixin, ReplicationMixin):
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
        # The fields are declared, with what they hold, in rakit.raft.state.
        self._id = node_id
        self._config = config
        self._rng = rng if rng is not None else random.Random(node_id)
        self._log = RaftLog(snapshot, entries, hard_state.commit)
        # Rule 12: the configuration at the snapshot (or the initial one), then the conf entries after it.
        self._confs = ConfHistory(snapshot.meta.conf_state() if snapshot else ConfState.of(voters), entries)
        self._conf = self._confs.current
        self._voters = list(self._conf.voters)
        self._prev_conf = self._conf
        self._log.on_append = self._on_log_append
        self._term_start = 0
        self._leader_ticks = 0
        self._transfer_target = None
        self._transfer_elapsed = 0
        self._timeout_now_sent = False
        self._term = hard_state.term
        self._vote = hard_state.vote
        self._leader_id = None
        self._leader_match = 0
        self._role = FOLLOWER
        self._step = self._step_follower
        self._tick = self._tick_election
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = config.election_ticks
        self._votes = {}
        self._progress = {}
        self.follower_regressions = 0
        self._msgs = []
        self._reads = ReadOnly()
        self._read_states = []
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

    def send_commit(self, peer: str) -> None:
        """Leader: send ``peer`` the commit index with the next Ready (an append, empty if need be).

        A new commit index alone rides on the next append or heartbeat; a follower that
        waits for one (a read index it must apply) should not wait for that.  Elsewhere:
        nothing.
        """
        pr = self._progress.get(peer) if self._role == LEADER and peer != self._id else None
        if pr is not None:
            pr.kick = True

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

    def _require_leader(self) -> None:
        if self._role != LEADER:
            if self._leader_id is None:
                raise NoLeader()
            raise NotLeader(self._leader_id)

    def _committed_in_term(self) -> bool:
        return self._log.term_at(self._log.committed) == self._term

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
