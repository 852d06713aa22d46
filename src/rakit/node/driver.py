"""The Raft driver: the one loop that turns the pure core's Readies into effects.

Theory of operation
-------------------
Everything that touches the core goes through this loop, on the event loop:
ticks (from a ticker task), incoming messages (from the HTTP routes),
proposals and read requests (from request handlers) are queued and the loop
is woken.  One turn of the loop:

1. feed the core: pending ticks, then messages, then one ``propose`` with
   every queued command (one batch -> one AppendEntries per follower and one
   fsync), then one ``read_index`` for every queued read;
2. while the core has a Ready, run the effects ``rakit.raft.turn.plan``
   orders for it (the simulation runs the same plan):
   a. send a leader's replication (``Ready.messages``) at once;
   b. persist hard state, snapshot and entries in one fsynced write: inline
      when small, else in a worker thread (the event loop keeps accepting
      requests meanwhile; what arrives then forms the next batch);
   c. send ``Ready.persisted_messages``, and answer the peers whose messages
      this turn stepped (their acks and votes need only what is now on disk);
   d. restore a received snapshot, apply committed entries in order and
      answer their proposals; release confirmed reads whose index is applied;
   e. ``advance``;
3. take a snapshot and truncate the log when enough entries were applied.

Nothing else calls into the core, so the core's "no step between ready and
advance" contract holds by construction.  What the loop drains is queued by
``rakit.node.intake`` (commands, peers' messages); the address book it keeps
is ``rakit.node.addresses``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from rakit.errors import MemberExists, NoLeader, NotLeader, ProposalDropped, Unavailable
from rakit.metrics import NodeMetrics
from rakit.node.addresses import AddressBook, CommittedMembershipListener, MembershipListener
from rakit.node.clock import Clock, SystemClock
from rakit.node.intake import CoreCalls, PeerInbox, ProposalIntake
from rakit.node.proposals import AppliedWaiters, PendingProposals, PendingReads
from rakit.raft.config import RaftConfig
from rakit.raft.core import RaftCore
from rakit.raft.messages import (
    ENTRY_CONF,
    ENTRY_NORMAL,
    AnyMessage,
    AppendEntries,
    ConfChange,
    Entry,
    HardState,
    Heartbeat,
    InstallSnapshot,
    Snapshot,
)
from rakit.raft.ready import Ready
from rakit.raft.roles import Role
from rakit.raft.turn import Apply, ConfirmReads, Persist, Restore, Send
from rakit.raft.turn import plan as turn_plan
from rakit.statemachines.base import StateMachine
from rakit.statemachines.members import MembersMachine
from rakit.storage.base import LogStore
from rakit.transport.base import Transport

log = logging.getLogger(__name__)

LEADER_MESSAGES = (AppendEntries, Heartbeat, InstallSnapshot)

# A lazy proposal (one nobody waits on soon, e.g. an acquire that will queue) waits this
# long at most for an eager one to share its AppendEntries round and fsyncs.
LAZY_DELAY = 0.006
INLINE_SAVE_ENTRIES = 2

T = TypeVar("T")
ApplyListener = Callable[[Entry, Any], None]
RoleListener = Callable[[str, "str | None"], None]


class RaftDriver:
    def __init__(
        self,
        node_id: str,
        voters: list[str],
        *,
        store: LogStore,
        machine: StateMachine,
        transport: Transport,
        metrics: NodeMetrics,
        config: RaftConfig,
        tick_seconds: float,
        snapshot_entries: int = 10_000,
        rng: random.Random | None = None,
        addresses: dict[str, str] | None = None,
        members: MembersMachine | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.node_id = node_id
        self.clock: Clock = clock or SystemClock()
        self.store = store
        self.machine = machine
        self.transport = transport
        self._sends_at_once = transport.sends_at_once
        self.metrics = metrics
        self.tick_seconds = tick_seconds
        self.snapshot_entries = snapshot_entries
        loaded = store.load()
        # This data dir's first run: no earlier run of this node lent cache leases or acked rounds.
        self.first_run = loaded.snapshot is None and not loaded.entries and loaded.hard_state.term == 0
        if loaded.snapshot is not None:
            machine.restore(loaded.snapshot.data)
        self.core = RaftCore(
            node_id,
            voters,
            config=config,
            rng=rng or random.Random(),
            hard_state=loaded.hard_state,
            snapshot=loaded.snapshot,
            entries=loaded.entries,
        )
        self.members = members
        self.address_book = AddressBook(addresses, members, loaded.entries)
        self._leader_contact = -math.inf  # when a leader of the current term last sent us entries
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"raft-disk-{node_id}")
        self._wake = asyncio.Event()
        self._ticks = 0
        self.inbox = PeerInbox(self._wake.set)
        self.intake = ProposalIntake(self.clock, self._wake.set)
        self._core_calls = CoreCalls(self._wake.set)
        self._pending = PendingProposals()
        self._reads = PendingReads()
        self._applied_waiters = AppliedWaiters()
        self._propose_started: dict[int, float] = {}
        self._listeners: list[ApplyListener] = []
        self._role_listeners: list[RoleListener] = []
        self._role_waiters: list[asyncio.Future[None]] = []
        self.role = self.core.role
        self.leader_id = self.core.leader_id
        self.stopped = False
        self._durable_hard_state = loaded.hard_state
        self._carried_hard_state: HardState | None = None
        self._watch_metrics()

    # -- what request handlers and routes call -------------------------------------

    @property
    def addresses(self) -> dict[str, str]:
        """Node id -> URL (``rakit.node.addresses``): one dict for the node's life, changed in place."""
        return self.address_book.urls

    @property
    def is_leader(self) -> bool:
        return self.role == Role.LEADER

    def receive(self, messages: list[AnyMessage]) -> None:
        """Queue messages from a peer (or replies that came back on our own requests)."""
        self.inbox.receive(messages)  # dropped when overloaded: Raft retransmits

    def exchange(self, src: str, messages: list[AnyMessage]) -> asyncio.Future[list[AnyMessage]]:
        """Queue a peer's messages; the future gets what this node then has for that peer.

        It resolves once the first Ready of the loop turn that stepped them is
        persisted, before that Ready's entries are applied, so it may carry
        acks and votes; what later Readies of the turn have for the peer goes
        through the transport.  The caller answers the peer's request with it.
        """
        return self.inbox.exchange(src, messages)

    async def propose(self, command: bytes, timeout: float = 5.0, *, lazy: bool = False) -> Any:
        """Replicate ``command`` and return the state machine's result.

        ``lazy``: the caller will not be answered soon anyway (an acquire that
        will wait), so the command may wait up to ``LAZY_DELAY`` to go out
        with the next eager proposal: one replication round and one fsync per
        node for both, instead of one each.

        Raises ``NotLeader``/``NoLeader`` when this node cannot lead the write,
        ``ProposalDropped`` or ``Unavailable`` when its fate is unknown.
        """
        self._check_leader()
        return await self.intake.submit(command, timeout, lazy=lazy, lazy_delay=LAZY_DELAY)

    async def read_barrier(self, timeout: float = 5.0) -> None:
        """Return once this node's state machine reflects every write committed before the call."""
        self._check_leader()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reads.requested.append(future)
        self._wake.set()
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise Unavailable(f"leadership could not be confirmed within {timeout:g}s") from None

    async def send_commit(self, peer: str) -> None:
        """Send ``peer`` the commit index now (``RaftCore.send_commit``): it waits to apply a read index."""
        await self.on_core(lambda: self.core.send_commit(peer))

    async def wait_applied(self, index: int, timeout: float = 5.0) -> None:
        """Return once this node's state machine has applied ``index`` (a read index from the leader)."""
        if self.core.applied_index >= index:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied_waiters.add(index, future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise Unavailable(f"this node did not apply index {index} within {timeout:g}s") from None

    async def on_core(self, action: Callable[[], T]) -> T:
        """Run ``action()`` (a call into the core) at the loop's next turn; its result or exception."""
        if self.stopped:
            raise Unavailable("the node is shutting down")
        return await self._core_calls.submit(action)

    async def transfer_leader(self, target: str | None = None, timeout: float = 2.0) -> str:
        """Hand leadership to ``target`` (default: the most caught-up other voter); its id once it leads.

        Raises NotLeader/NoLeader here, ``NotAVoter``, ``TransferInProgress``
        (another transfer runs) or ``Unavailable`` when the target has not
        taken over within ``timeout`` (the core abandons the transfer after an
        election timeout).
        """
        self._check_leader()
        if target is None:
            target = await self.on_core(self._best_successor)
        if target == self.node_id:
            return target
        await self.on_core(lambda: self.core.transfer_leader(str(target)))
        deadline = self.clock.monotonic() + timeout
        while self.leader_id != target or (target == self.node_id and not self.is_leader):
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise Unavailable(f"{target} did not take over leadership within {timeout:g} s")
            await self._leader_change(remaining)
        return target

    async def _leader_change(self, remaining: float) -> bool:
        """Wait at most ``remaining`` s for the next known leader (``_on_soft_state``); False on timeout."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._role_waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, remaining)
        except TimeoutError:
            return False
        return True

    def _best_successor(self) -> str:
        """The other voter with the highest match index (ties: the lowest id)."""
        core = self.core
        if core.role != Role.LEADER:
            raise NotLeader(core.leader_id) if core.leader_id else NoLeader()
        others = [v for v in core.voters if v != self.node_id]
        if not others:
            return self.node_id
        return min(others, key=lambda v: (-(p.match if (p := core.progress(v)) else 0), v))

    async def change_membership(self, change: ConfChange, timeout: float = 5.0) -> int:
        """Propose a one-server change and return its log index once committed.

        Refusals (``ConfChangeRefused`` subclasses, ``NotAVoter``...) come
        from the core with nothing changed; adding a URL another member
        already has is refused here (``MemberExists``).
        """
        self._check_leader()
        if change.op == "add_learner":
            holder = self.address_book.holder_of(change.url, self.core.conf_state.members, besides=change.node)
            if holder is not None:
                raise MemberExists(f"{change.url} is already the address of {holder}")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def propose() -> int:
            term, index = self.core.propose_conf_change(change)
            self._pending.add(term, index, future)
            return index

        index = await self.on_core(propose)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise Unavailable(
                f"the membership change at index {index} did not commit within {timeout:g} s; it may still take effect"
            ) from None
        return index

    def add_membership_listener(self, listener: MembershipListener) -> None:
        """Call ``listener(conf_state, addresses)`` whenever the configuration or the address book changes,
        before any message of that turn is sent."""
        self.address_book.add_membership_listener(listener)

    def leader_contact_age(self) -> float:
        """Seconds since a leader of the current term last replicated to this node (0 on the leader).

        A node removed from the configuration stops hearing from the leader once the
        removal is appended; the cache stops serving on it after a grace period."""
        if self.role == Role.LEADER:
            return 0.0
        return self.clock.monotonic() - self._leader_contact

    def add_committed_membership_listener(self, listener: CommittedMembershipListener) -> None:
        """Call ``listener(generation, members, addresses)`` after a configuration entry is
        applied or a snapshot installed, once the committed member set is known
        (``MembersMachine.members``); the generation tells whether the set changed."""
        self.address_book.add_committed_membership_listener(listener)

    def add_apply_listener(self, listener: ApplyListener) -> None:
        """Call ``listener(entry, result)`` for every applied command, in log order."""
        self._listeners.append(listener)

    def add_role_listener(self, listener: RoleListener) -> None:
        """Call ``listener(role, leader_id)`` whenever the role or the known leader changes."""
        self._role_listeners.append(listener)

    async def wait_for_leader(self, timeout: float) -> str | None:
        """The leader's id once one is known, or None after ``timeout``."""
        deadline = self.clock.monotonic() + timeout
        while self.leader_id is None:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0 or not await self._leader_change(remaining):
                return None
        return self.leader_id

    def status(self) -> dict[str, Any]:
        core = self.core
        return {
            "node_id": self.node_id,
            "role": str(Role.CANDIDATE if core.role == Role.PRE_CANDIDATE else core.role),
            "term": core.term,
            "leader_id": core.leader_id,
            "commit_index": core.commit_index,
            "last_applied": core.applied_index,
            "last_log_index": core.last_index,
            "first_log_index": core.first_index,
            "snapshot_index": core.first_index - 1,
            "peers": list(core.voters),
            "learners": list(core.learners),
        }

    def _check_leader(self) -> None:
        if self.stopped:
            raise Unavailable("the node is shutting down")
        if self.role != Role.LEADER:
            if self.leader_id is None or self.leader_id == self.node_id:
                raise NoLeader()
            raise NotLeader(self.leader_id)

    # -- the loop ----------------------------------------------------------------

    async def run(self) -> None:
        ticker = asyncio.create_task(self._tick_forever(), name=f"raft-tick-{self.node_id}")
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                self.inbox.start_turn()
                self._feed()
                while self.core.has_ready():
                    await self._handle(self.core.ready())
                self.inbox.answer_turn()
                await self._maybe_compact()
        finally:
            self.stopped = True
            ticker.cancel()
            self.inbox.stop()
            shutting_down = Unavailable("the node is shutting down")
            self.intake.fail_queued(shutting_down)
            self._pending.fail_all(shutting_down)
            self._core_calls.fail_all(shutting_down)
            self._reads.fail_all(shutting_down)
            self._applied_waiters.fail_all(shutting_down)
            self._executor.shutdown(wait=True)
            self.store.close()

    async def _tick_forever(self) -> None:
        while True:
            await self.clock.sleep(self.tick_seconds)
            self._ticks += 1
            self.intake.expire(self.clock.monotonic())
            self._wake.set()

    def _feed(self) -> None:
        core = self.core
        ticks, self._ticks = self._ticks, 0
        for _ in range(min(ticks, 10)):
            core.tick()
        heard_leader = False
        for message in self.inbox.take():
            core.step(message)
            heard_leader = heard_leader or (isinstance(message, LEADER_MESSAGES) and message.term == core.term)
        if heard_leader:  # one clock read per turn, not per message
            self._leader_contact = self.clock.monotonic()
        self._core_calls.run()
        batch = self.intake.take_batch()
        if batch:
            self._propose_batch(batch)
        self._reads.send(core.read_index, self.clock.monotonic() if self._reads.requested else None)

    def _propose_batch(self, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        try:
            term, first = self.core.propose([cmd for cmd, _ in batch])
        except NotLeader as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        now = self.clock.perf()
        for offset, (_, future) in enumerate(batch):
            self._pending.add(term, first + offset, future)
            self._propose_started[first + offset] = now
        self.metrics.proposals.inc(len(batch))

    async def _handle(self, ready: Ready) -> None:
        """Run the effects of one Ready in the order ``rakit.raft.turn.plan`` gives."""
        turn = turn_plan(ready, self._durable_hard_state, self._carried_hard_state)
        self._durable_hard_state, self._carried_hard_state = turn.durable, turn.carried
        self.address_book.appended(ready.entries, ready.conf_state is not None, self.core.conf_state)
        sent_early = False
        for effect in turn.effects:
            if isinstance(effect, Send):
                outgoing = self.inbox.route(effect.messages)
                if outgoing:
                    self.transport.send(outgoing)
                sent_early = sent_early or not effect.after_persist
                continue
            if isinstance(effect, Persist):
                await self._persist(effect, sent_early)
                continue
            if self.inbox.answering:
                # The answers need only what is now on disk: the peers get their acks
                # before this node applies (on a follower, the previous round's commit).
                self.inbox.answer_turn()
            if isinstance(effect, Restore):
                self.machine.restore(effect.snapshot.data)
                self.address_book.restored()
                self._pending.drop_through(effect.snapshot.meta.index)
                self.metrics.snapshots_installed.inc()
            elif isinstance(effect, Apply):
                self._apply(effect.entries)
            elif isinstance(effect, ConfirmReads):
                for read in effect.read_states:
                    self._reads.confirm(read.ctx, read.index)
                if self._reads.requested:
                    self._wake.set()  # reads held while that round was in flight go now
            else:
                if ready.snapshot is not None or any(e.kind == ENTRY_CONF for e in ready.committed_entries):
                    self.address_book.committed()
                if ready.soft_state is not None:
                    self._on_soft_state(ready.soft_state.role, ready.soft_state.leader_id)
                self.core.advance(effect.ready)
        self._reads.release_applied(self.core.applied_index)
        self._applied_waiters.release(self.core.applied_index)

    async def _persist(self, effect: Persist, sent_early: bool) -> None:
        if (
            len(effect.entries) <= INLINE_SAVE_ENTRIES
            and effect.snapshot is None
            and (not sent_early or self._sends_at_once)
        ):
            # Light load: a thread hop would cost more than the write.  (A leader
            # whose transport only queues writes on the thread even then, so that
            # its AppendEntries leave while its own fsync runs.)
            elapsed = self._timed_save(effect.hard_state, effect.entries, None)
        else:
            # Heavier load: the write runs on the disk thread, the event loop
            # keeps serving meanwhile, and what arrives forms the next batch.
            elapsed = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._timed_save, effect.hard_state, effect.entries, effect.snapshot
            )
        self.metrics.persist_seconds.observe(elapsed)
        if effect.entries:
            self.metrics.persist_entries.observe(len(effect.entries))

    def _timed_save(self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None) -> float:
        started = self.clock.perf()
        self.store.save(hard_state, entries, snapshot)
        return self.clock.perf() - started

    def _apply(self, entries: list[Entry]) -> None:
        sample: float | None = None
        for entry in entries:
            result: Any = None
            if entry.kind == ENTRY_NORMAL:
                result = self.machine.apply(entry.index, entry.data)
                for listener in self._listeners:
                    listener(entry, result)
            elif entry.kind == ENTRY_CONF:
                result = self.address_book.apply_conf(entry)
            self._pending.applied(entry.index, entry.term, result)
            started = self._propose_started.pop(entry.index, None)
            if started is not None:
                sample = started
        if sample is not None:  # one sample per applied batch: the newest proposal's latency
            self.metrics.proposal_seconds.observe(self.clock.perf() - sample)

    def _on_soft_state(self, role: Role, leader_id: str | None) -> None:
        if leader_id != self.leader_id:
            self.metrics.leader_changes.inc()
            log.info("%s: leader is now %s (term %d)", self.node_id, leader_id, self.core.term)
        was_leader = self.role == Role.LEADER
        self.role, self.leader_id = role, leader_id
        self.metrics.set_role(role)
        if was_leader and role != Role.LEADER:
            self._reads.fail_unconfirmed(leader_id)
            self.intake.fail_queued(NotLeader(leader_id) if leader_id else NoLeader())
            self._propose_started.clear()
        for listener in self._role_listeners:
            listener(role, leader_id)
        if leader_id is not None:
            waiters, self._role_waiters = self._role_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _maybe_compact(self) -> None:
        core = self.core
        if core.applied_index - (core.first_index - 1) < self.snapshot_entries:
            return
        index = core.applied_index
        snapshot = core.compact(index, self.machine.snapshot())
        await asyncio.get_running_loop().run_in_executor(self._executor, self.store.compact, snapshot)
        log.info("%s: snapshot at %d, log truncated", self.node_id, index)
        self.metrics.snapshots_taken.inc()

    def _watch_metrics(self) -> None:
        """Export the core's indices as gauges read at each scrape: nothing to do per Ready."""
        m, core = self.metrics, self.core
        m.term.set_function(lambda: core.term)
        m.commit_index.set_function(lambda: core.commit_index)
        m.applied_index.set_function(lambda: core.applied_index)
        m.last_log_index.set_function(lambda: core.last_index)
        m.follower_regressions.set_function(lambda: core.follower_regressions)
        m.log_entries.set_function(lambda: core.last_index - core.first_index + 1)
        m.snapshot_index.set_function(lambda: core.first_index - 1)
        m.voters.set_function(lambda: len(core.conf_state.voters))
        m.learners.set_function(lambda: len(core.conf_state.learners))


__all__ = ["RaftDriver", "ProposalDropped"]
