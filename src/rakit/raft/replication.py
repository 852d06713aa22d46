"""Replication: appends, snapshots, heartbeats and commit of ``RaftCore``.

Pure: no I/O, no clock.  :class:`ReplicationMixin` acts on the fields of
:class:`~rakit.raft.state.RaftState`; ``RaftCore`` (``rakit.raft.core``)
mixes it in.  Its rules keep the numbers of the core's list (rules 1-4, 6
and 17 are in :mod:`rakit.raft.election`, 10-18 in the core and
:mod:`rakit.raft.membership`):

5. *Leader*.  A new leader appends one ENTRY_NOOP of its term.  Commit
   advances to the index a majority has matched (the leader's own match is
   its *stable* index), and only if that entry has the current term (5.4.2).
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
"""

from __future__ import annotations

from rakit.raft import quorum
from rakit.raft.messages import (
    AnyMessage,
    AppendEntries,
    AppendEntriesResp,
    Entry,
    Heartbeat,
    HeartbeatResp,
    InstallSnapshot,
)
from rakit.raft.progress import Progress
from rakit.raft.state import RaftState


class ReplicationMixin(RaftState):
    """Rules 5 and 7-9 on the state of :class:`~rakit.raft.state.RaftState`."""

    # -- step and tick -------------------------------------------------------------------

    def _step_leader(self, msg: AnyMessage) -> None:
        match msg:
            case AppendEntriesResp():
                self._handle_append_resp(msg)
            case HeartbeatResp():
                self._handle_heartbeat_resp(msg)

    def _tick_replication(self) -> None:
        """The leader's tick after its quorum check: snapshot resends (rule 9), heartbeats (rule 7)."""
        self._heartbeat_elapsed += 1
        for pr in self._progress.values():
            pr.tick_snapshot(2 * self._config.election_ticks)
        if self._heartbeat_elapsed >= self._config.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat()

    # -- follower side -------------------------------------------------------------------

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

    # -- leader side ---------------------------------------------------------------------

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
