"""RaftCore: the Raft state machine of one node, with no I/O at all.

Theory of operation
-------------------
The core is driven from outside (etcd's RawNode model): ``tick()`` is one
logical clock tick, ``step(msg)`` hands it one message, ``propose`` and
``read_index`` are client requests.  None of them waits or sends; they change
fields and pile up work.  ``ready()`` returns all pending work as a
:class:`~rakit.raft.ready.Ready`; the driver persists it, sends its messages,
applies its committed entries and calls ``advance(ready)``.  Because messages
are only sent after the Ready is persisted, a vote or an ack is never sent
for state that is not on disk yet.

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
   last new index); ack the last new index.
9. *Snapshots* (7).  A follower whose next entry was compacted away gets the
   latest snapshot (progress state ``snapshot``; resent after
   2 * election_ticks ticks without an answer).  A follower installs it unless
   it is already committed that far or holds the snapshot's last entry.
10. *ReadIndex* (thesis 6.4).  The leader records its commit index for the
   read, waits until it has committed an entry of its own term, confirms
   leadership with one heartbeat round carrying ``ctx`` and then hands out a
   ReadState.  Unconfirmed reads are dropped when leadership is lost.
11. *Determinism*.  Peers are always visited in sorted order; the only
   randomness is the ``rng`` passed in.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rakit.errors import NoLeader, NotLeader
from rakit.raft import quorum
from rakit.raft.config import RaftConfig
from rakit.raft.log import RaftLog
from rakit.raft.messages import (
    ENTRY_NOOP,
    ENTRY_NORMAL,
    AnyMessage,
    AppendEntries,
    AppendEntriesResp,
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
)
from rakit.raft.progress import Progress
from rakit.raft.ready import Ready, SoftState

FOLLOWER = "follower"
PRE_CANDIDATE = "pre_candidate"
CANDIDATE = "candidate"
LEADER = "leader"


@dataclass(slots=True)
class _PendingRead:
    index: int
    acks: set[str] = field(default_factory=set)


class RaftCore:
    def __init__(
        self,
        node_id: str,
        voters: list[str],
        *,
        config: RaftConfig = RaftConfig(),
        rng: random.Random | None = None,
        hard_state: HardState = HardState(),
        snapshot: Snapshot | None = None,
        entries: Sequence[Entry] = (),
    ) -> None:
        self._id = node_id
        self._config = config
        self._rng = rng if rng is not None else random.Random(node_id)
        self._voters = sorted(snapshot.meta.voters if snapshot else voters)
        self._log = RaftLog(snapshot, entries, hard_state.commit)
        self._term = hard_state.term
        self._vote = hard_state.vote
        self._leader_id: str | None = None
        self._role = FOLLOWER
        self._step: Callable[[AnyMessage], None] = self._step_follower
        self._tick: Callable[[], None] = self._tick_election
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = config.election_ticks
        self._votes: dict[str, bool] = {}
        self._progress: dict[str, Progress] = {}
        self._msgs: list[AnyMessage] = []
        # ReadIndex: waiting for a commit in our term / waiting for acks.
        self._held_reads: list[int] = []
        self._pending_reads: dict[int, _PendingRead] = {}
        self._read_heartbeat_due = False
        self._read_states: list[ReadState] = []
        self._become_follower(self._term, None)
        self._prev_hard_state = hard_state
        self._prev_soft_state = self._soft_state()

    # -- read-only view ------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def role(self) -> str:
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
        if msg.dst != self._id or msg.src == self._id or msg.src not in self._voters:
            return
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
        if not commands:
            raise ValueError("propose() needs at least one command")
        first = self._log.last_index + 1
        self._append(
            [Entry(self._term, first + i, ENTRY_NORMAL, data) for i, data in enumerate(commands)]
        )
        return self._term, first

    def read_index(self, ctx: int) -> None:
        """Start a ReadIndex round for ``ctx`` (unique, non-zero, chosen by the driver)."""
        self._require_leader()
        if ctx == 0 or ctx in self._pending_reads or ctx in self._held_reads:
            raise ValueError(f"read ctx must be non-zero and unique, got {ctx}")
        if self._committed_in_term():
            self._start_read(ctx)
        else:
            self._held_reads.append(ctx)

    def campaign(self) -> None:
        """Start an election now, skipping the pre-vote."""
        if self._role != LEADER:
            self._campaign(pre_vote=False, transfer=False)

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
            or (self._role == LEADER and self._read_heartbeat_due)
            or (self._role == LEADER and any(self._append_due(pr) for pr in self._progress.values()))
        )

    def ready(self) -> Ready:
        if self._role == LEADER:
            self._flush_appends()
            if self._read_heartbeat_due:
                self._broadcast_heartbeat()
        rd = Ready(
            entries=self._log.unstable_entries(),
            snapshot=self._log.pending_snapshot,
            messages=self._msgs,
            committed_entries=self._log.next_committed(self._config.max_committed_per_ready),
            read_states=self._read_states,
        )
        hard_state = self._hard_state()
        if hard_state != self._prev_hard_state:
            rd.hard_state = hard_state
        if self._soft_state_changed():
            rd.soft_state = self._soft_state()
        self._msgs = []
        self._read_states = []
        return rd

    def advance(self, ready: Ready) -> None:
        if ready.hard_state is not None:
            self._prev_hard_state = ready.hard_state
        if ready.soft_state is not None:
            self._prev_soft_state = ready.soft_state
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
        snap = Snapshot(SnapshotMeta(index, term, list(self._voters)), data)
        self._log.compact(snap)
        return snap

    # -- small helpers -----------------------------------------------------------

    def _hard_state(self) -> HardState:
        return HardState(self._term, self._vote, self._log.committed)

    def _soft_state(self) -> SoftState:
        return SoftState(self._role, self._leader_id, self._term)

    def _soft_state_changed(self) -> bool:
        prev = self._prev_soft_state
        return (prev.role, prev.leader_id) != (self._role, self._leader_id)

    def _peers(self) -> list[str]:
        return [v for v in self._voters if v != self._id]

    def _send(self, msg: AnyMessage) -> None:
        self._msgs.append(msg)

    def _require_leader(self) -> None:
        if self._role != LEADER:
            if self._leader_id is None:
                raise NoLeader()
            raise NotLeader(self._leader_id)

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
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = self._config.election_ticks + self._rng.randrange(
            self._config.election_ticks
        )
        self._votes = {}
        self._progress = {}
        self._held_reads = []
        self._pending_reads = {}
        self._read_heartbeat_due = False

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
        self._append([Entry(self._term, next_index, ENTRY_NOOP)])

    # -- ticks -------------------------------------------------------------------------

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._id in self._voters and self._election_elapsed >= self._randomized_timeout:
            self._election_elapsed = 0
            self._campaign(pre_vote=self._config.pre_vote, transfer=False)

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
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

    def _campaign(self, *, pre_vote: bool, transfer: bool) -> None:
        if pre_vote:
            self._become_pre_candidate()
            term = self._term + 1
        else:
            self._become_candidate()
            term = self._term
        if self._record_vote(self._id, True):
            return
        for peer in self._peers():
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
            self._send(
                AppendEntriesResp(term=self._term, src=self._id, dst=msg.src, success=False, index=0)
            )
        elif isinstance(msg, RequestVote) and msg.pre_vote:
            self._send(
                RequestVoteResp(
                    term=self._term, src=self._id, dst=msg.src, granted=False, pre_vote=True
                )
            )

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
            self._log.commit_to(min(msg.commit, self._log.last_index))
            self._send(HeartbeatResp(term=self._term, src=self._id, dst=msg.src, ctx=msg.ctx))
        else:
            self._handle_snapshot(msg)

    def _ack(self, leader: str, index: int) -> None:
        self._send(
            AppendEntriesResp(term=self._term, src=self._id, dst=leader, success=True, index=index)
        )

    def _handle_append(self, msg: AppendEntries) -> None:
        log = self._log
        if msg.prev_index < log.committed:
            self._ack(msg.src, log.committed)
            return
        last_new = log.maybe_append(msg.prev_index, msg.prev_term, msg.commit, msg.entries)
        if last_new is not None:
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
            self._ack(msg.src, meta.index)
        else:
            log.restore(msg.snapshot)
            self._voters = sorted(meta.voters)
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
        return True

    def _handle_append_resp(self, msg: AppendEntriesResp) -> None:
        pr = self._progress[msg.src]
        pr.recent_active = True
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
        self._maybe_commit()

    def _handle_reject(self, pr: Progress, msg: AppendEntriesResp) -> None:
        if msg.hint_term:
            probe_prev = self._log.last_index_with_term_at_most(msg.hint_index, msg.hint_term)
        else:
            probe_prev = min(msg.hint_index, self._log.last_index)
        if pr.maybe_decr_to(msg.index, probe_prev) and pr.state == "replicate":
            pr.become_probe()

    def _handle_heartbeat_resp(self, msg: HeartbeatResp) -> None:
        pr = self._progress[msg.src]
        pr.heartbeat_answered(lagging=pr.match < self._log.last_index)
        pending = self._pending_reads.get(msg.ctx) if msg.ctx else None
        if pending is not None:
            pending.acks.add(msg.src)
            if quorum.vote_result(dict.fromkeys(pending.acks, True), self._voters) == "won":
                self._confirm_reads_through(msg.ctx)

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
            entries = log.entries_for_message(
                pr.next, self._config.max_entries_per_msg, self._config.max_bytes_per_msg
            )
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
        ctx = next(reversed(self._pending_reads)) if self._pending_reads else 0
        self._read_heartbeat_due = False
        for peer in self._peers():
            pr = self._progress[peer]
            self._send(
                Heartbeat(
                    term=self._term,
                    src=self._id,
                    dst=peer,
                    commit=min(pr.match, self._log.committed),
                    ctx=ctx,
                )
            )

    # -- ReadIndex -------------------------------------------------------------------------

    def _start_read(self, ctx: int) -> None:
        index = self._log.committed
        if len(self._voters) == 1:
            self._read_states.append(ReadState(ctx, index))
            return
        self._pending_reads[ctx] = _PendingRead(index, {self._id})
        self._read_heartbeat_due = True

    def _release_held_reads(self) -> None:
        if self._held_reads and self._committed_in_term():
            held, self._held_reads = self._held_reads, []
            for ctx in held:
                self._start_read(ctx)

    def _confirm_reads_through(self, ctx: int) -> None:
        """A quorum confirmed ``ctx``: it and every read started before it are safe."""
        while self._pending_reads:
            first = next(iter(self._pending_reads))
            pending = self._pending_reads.pop(first)
            self._read_states.append(ReadState(first, pending.index))
            if first == ctx:
                return
