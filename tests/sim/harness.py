"""A deterministic cluster simulator for the pure Raft core.

Theory of operation
-------------------
``Cluster`` holds N ``SimNode``s.  Each has a ``RaftCore``, a simulated disk
(``SimDisk``: exactly what the Readies asked to persist, cross-checked against
``MemoryLogStore`` on every restart) and a trivial state machine
(``SimStateMachine``: applied index plus a running hash; its snapshot is the
encoding of both).  Every message travels through one in-memory network
(``Network``).  All randomness -- which event happens next, message loss,
duplication, delay, reordering, partitions, crashes, and every core's election
timer -- comes from one ``random.Random(seed)``, so a seed replays a run
exactly.

One step of the simulation is one event (tick a node, deliver a message,
propose, read_index, partition/heal, crash/restart, ...) followed by
``drain()``: every node's Readies are handled in the driver's order --
persist, send, apply, advance -- and then, if enough entries were applied, the
state machine is snapshotted and the log compacted (``core.compact`` +
``disk.compact``).  A crash can also strike *inside* a Ready, between any two
of those phases, so a node really loses what it had not persisted.

Membership: the cluster can grow and shrink.  ``add_node`` boots a node with
an empty disk (given the *initial* voters, as a driver would: its log or a
snapshot tells it the rest); ``conf_change`` proposes a one-server change on
a leader; ``retire`` stops a node for good once its removal is committed.
With the ``w_add``/``w_promote``/``w_remove``/``w_transfer``/``w_retire``
weights (all 0 by default, so other profiles replay exactly as before) the
chaos phase does these too.  ``self.voters`` is the list of every node not
retired (the name predates membership); the liveness phase looks at the
members of the final leader's configuration.

After every step ``Checker`` verifies the safety invariants (see its
docstring).  A violation raises ``InvariantViolation`` whose message names the
invariant and the nodes involved; ``Cluster.failure_report`` adds the seed and
the last events of the trace.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from rakit.errors import ConfChangeRefused, NotAVoter, NotLeader
from rakit.raft.config import RaftConfig
from rakit.raft.core import EARLY_KINDS, RaftCore
from rakit.raft.messages import (
    ENTRY_CONF,
    ENTRY_NORMAL,
    AnyMessage,
    AppendEntriesResp,
    ConfChange,
    ConfState,
    Entry,
    HardState,
    ReadState,
    RequestVoteResp,
    Snapshot,
    decode_conf_entry,
)
from rakit.raft.ready import Ready
from rakit.raft.turn import Apply, ConfirmReads, Persist, Restore, Send, Turn
from rakit.raft.turn import plan as turn_plan

try:  # the durable store's in-memory twin; the harness works without it
    from rakit.storage.memory import MemoryLogStore
except Exception:  # pragma: no cover - only while storage/memory.py is in flux
    MemoryLogStore = None  # type: ignore[assignment,misc]


class InvariantViolation(AssertionError):
    """A Raft safety or liveness property failed (or the core broke the driver contract)."""


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


_CRASH_REASONS = (
    " (in Ready, before persisting)",
    " (in Ready, after persisting, before sending)",
    " (in Ready, after sending, before applying)",
    " (in Ready, after applying, before advance)",
)


def _phase(effect: object) -> int:
    """The crash_plan phase an effect belongs to (see Cluster._handle_ready)."""
    if isinstance(effect, Persist) or (isinstance(effect, Send) and not effect.after_persist):
        return 0
    if isinstance(effect, Send):
        return 1
    if isinstance(effect, Restore | Apply | ConfirmReads):
        return 2
    return 3


@dataclass(frozen=True)
class SimConfig:
    """One simulation profile.  Rates are per event / per message probabilities."""

    name: str = "default"
    nodes: int = 3
    steps: int = 600  # chaos-phase events per run
    raft: RaftConfig = RaftConfig()
    # Network faults (per message).
    drop: float = 0.05
    duplicate: float = 0.03
    max_delay: int = 6  # a message is deliverable after 0..max_delay events
    # Event weights (relative).
    w_deliver: float = 60.0
    w_tick_all: float = 6.0
    w_tick_one: float = 4.0
    w_propose: float = 6.0
    w_read: float = 2.0
    w_partition: float = 0.6
    w_heal: float = 0.8
    w_crash: float = 0.3
    w_restart: float = 1.0
    w_campaign: float = 0.2
    # Probability that a Ready is interrupted by a crash (only where crashes are on).
    crash_in_ready: float = 0.0
    # Take a snapshot and compact the log every this many applied entries (0: never).
    compact_every: int = 0
    # Keep at most this many nodes down at once (None: a minority).
    max_down: int | None = None
    # Liveness phase bound, in rounds (one round: tick every node, deliver everything).
    liveness_rounds: int = 400
    use_memory_store: bool = True
    # Membership events (0: off).  add: a new node joins as a learner; promote:
    # a learner becomes a voter; remove: a member leaves; transfer: leadership
    # moves to a voter; retire: a node whose removal is committed stops for good.
    w_add: float = 0.0
    w_promote: float = 0.0
    w_remove: float = 0.0
    w_transfer: float = 0.0
    w_retire: float = 0.0
    max_nodes: int = 6  # nodes not retired, at most

    @property
    def voters(self) -> list[str]:
        return [f"n{i}" for i in range(1, self.nodes + 1)]


# ---------------------------------------------------------------------------
# The simulated disk
# ---------------------------------------------------------------------------


class SimDisk:
    """What one node persisted: hard state, snapshot and log (the LogStore contract).

    Deliberately simple and independent of ``MemoryLogStore``; if that twin is
    importable it is fed the same writes and must ``load()`` the same state.
    """

    def __init__(self, use_memory_store: bool, initial_conf: ConfState | None = None) -> None:
        self.hard_state = HardState()
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []  # after the snapshot, contiguous
        self.store = MemoryLogStore() if (use_memory_store and MemoryLogStore is not None) else None
        # Membership, computed independently of the core: the configuration of
        # every conf entry on disk (None: it does not decode), by index.
        self.initial_conf = initial_conf if initial_conf is not None else ConfState()
        self.confs: list[tuple[int, ConfState | None]] = []
        self._conf: ConfState | None = None  # cache of .conf, dropped on every write

    def conf_at(self, index: int) -> ConfState:
        """The configuration in force at ``index`` (>= the snapshot's) by what is on disk."""
        for at, conf in reversed(self.confs):
            if at <= index and conf is not None:
                return conf
        return self.snapshot.meta.conf_state() if self.snapshot else self.initial_conf

    @property
    def conf(self) -> ConfState:
        if self._conf is None:
            self._conf = self.conf_at(self.last_index)
        return self._conf

    @property
    def snapshot_index(self) -> int:
        return self.snapshot.meta.index if self.snapshot else 0

    @property
    def snapshot_term(self) -> int:
        return self.snapshot.meta.term if self.snapshot else 0

    @property
    def last_index(self) -> int:
        return self.entries[-1].index if self.entries else self.snapshot_index

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot_term

    def term_at(self, index: int) -> int | None:
        s = self.snapshot_index
        if index == s:
            return self.snapshot_term
        if index < s or index > self.last_index:
            return None
        return self.entries[index - s - 1].term

    def entry_at(self, index: int) -> Entry | None:
        s = self.snapshot_index
        if index <= s or index > self.last_index:
            return None
        return self.entries[index - s - 1]

    def save(self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None) -> None:
        self._conf = None
        for prev, cur in zip(entries, entries[1:]):
            if cur.index != prev.index + 1:
                raise InvariantViolation(f"Ready.entries not contiguous: {prev.index} then {cur.index}")
        if snapshot is not None:
            s = snapshot.meta.index
            if s < self.snapshot_index:
                raise InvariantViolation(
                    f"Ready.snapshot at {s} is older than the persisted snapshot at {self.snapshot_index}"
                )
            keep = self.term_at(s) == snapshot.meta.term
            self.entries = [e for e in self.entries if e.index > s] if keep else []
            self.confs = [(i, c) for i, c in self.confs if i > s] if keep else []
            self.snapshot = snapshot
        new = [e for e in entries if e.index > self.snapshot_index]
        if new:
            first = new[0].index
            if first > self.last_index + 1:
                raise InvariantViolation(
                    f"Ready.entries start at {first}, leaving a gap after the persisted last index {self.last_index}"
                )
            del self.entries[first - self.snapshot_index - 1 :]
            self.entries.extend(new)
            while self.confs and self.confs[-1][0] >= first:
                self.confs.pop()
            for e in new:
                if e.kind == ENTRY_CONF:
                    decoded = decode_conf_entry(e.data)
                    self.confs.append((e.index, decoded.conf if decoded is not None else None))
        if hard_state is not None:
            self.hard_state = hard_state
        if self.store is not None:
            self.store.save(hard_state, list(entries), snapshot)

    def compact(self, snapshot: Snapshot) -> None:
        self._conf = None
        s = snapshot.meta.index
        if snapshot.meta.conf_state() != self.conf_at(s):
            raise InvariantViolation(
                f"compact at {s}: the snapshot says {snapshot.meta.conf_state()}, "
                f"the log says {self.conf_at(s)} is in force there"
            )
        self.entries = [e for e in self.entries if e.index > s]
        self.confs = [(i, c) for i, c in self.confs if i > s]
        self.snapshot = snapshot
        if self.store is not None:
            self.store.compact(snapshot)

    def load(self) -> tuple[HardState, Snapshot | None, list[Entry]]:
        mine = (self.hard_state, self.snapshot, list(self.entries))
        if self.store is not None:
            loaded = self.store.load()
            theirs = (loaded.hard_state, loaded.snapshot, list(loaded.entries))
            if theirs != mine:
                raise InvariantViolation(
                    "MemoryLogStore.load() differs from what the harness persisted:\n"
                    f"  store:   hs={theirs[0]} snap={_snap_str(theirs[1])} "
                    f"entries={_entries_str(theirs[2])}\n"
                    f"  harness: hs={mine[0]} snap={_snap_str(mine[1])} entries={_entries_str(mine[2])}"
                )
        return mine


def _snap_str(s: Snapshot | None) -> str:
    return "-" if s is None else f"({s.meta.index},t{s.meta.term})"


def _entries_str(entries: list[Entry]) -> str:
    if not entries:
        return "[]"
    return f"[{entries[0].index}..{entries[-1].index}] terms={[e.term for e in entries]}"


# ---------------------------------------------------------------------------
# The state machine
# ---------------------------------------------------------------------------

_HASH0 = b"\0" * 8


def _chain(prev: bytes, entry: Entry) -> bytes:
    h = hashlib.blake2b(prev, digest_size=8)
    h.update(b"%d/%d/%d/" % (entry.index, entry.term, entry.kind))
    h.update(entry.data)
    return h.digest()


class SimStateMachine:
    """Applied index plus a running hash of every applied entry; snapshot = both, msgpack'd."""

    def __init__(self) -> None:
        self.applied = 0
        self.hash = _HASH0

    def encode(self) -> bytes:
        return msgspec.msgpack.encode([self.applied, self.hash])

    @staticmethod
    def decode(data: bytes) -> tuple[int, bytes]:
        # A subclass may append its own state after these two (see Checker.new_state_machine).
        index, digest = msgspec.msgpack.decode(data)[:2]
        return int(index), bytes(digest)


# ---------------------------------------------------------------------------
# Nodes and network
# ---------------------------------------------------------------------------


@dataclass
class SimNode:
    id: str
    disk: SimDisk
    core: RaftCore | None = None
    sm: SimStateMachine | None = None
    incarnation: int = 0
    # Confirmed reads waiting for the state machine: (ctx, index).
    reads: list[tuple[int, int]] = field(default_factory=list)
    down_since: int = 0
    # A commit-only hard state the plan has not written yet (lost in a crash).
    carried: HardState | None = None

    @property
    def up(self) -> bool:
        return self.core is not None


@dataclass(slots=True)
class InFlight:
    deliver_at: int
    seq: int
    msg: Any


class Network:
    """Messages in flight between nodes, with loss, duplication, delay, reordering and cuts."""

    def __init__(self, rng: random.Random, cfg: SimConfig) -> None:
        self.rng = rng
        self.drop = cfg.drop
        self.duplicate = cfg.duplicate
        self.max_delay = cfg.max_delay
        self.queue: list[InFlight] = []
        self.cut: set[tuple[str, str]] = set()  # directed (src, dst) links that lose everything
        self.seq = 0
        self.sent = self.dropped = self.delivered = 0

    def send(self, msg: Any, now: int) -> None:
        self.sent += 1
        if (msg.src, msg.dst) in self.cut or (self.drop and self.rng.random() < self.drop):
            self.dropped += 1
            return
        copies = 2 if (self.duplicate and self.rng.random() < self.duplicate) else 1
        for _ in range(copies):
            delay = self.rng.randint(0, self.max_delay) if self.max_delay else 0
            self.seq += 1
            self.queue.append(InFlight(now + delay, self.seq, msg))

    def deliverable(self, now: int) -> list[int]:
        return [i for i, m in enumerate(self.queue) if m.deliver_at <= now]

    def take(self, i: int) -> Any:
        q = self.queue
        item = q[i]
        q[i] = q[-1]
        q.pop()
        return item.msg

    def take_oldest(self) -> Any:
        i = min(range(len(self.queue)), key=lambda j: self.queue[j].seq)
        return self.take(i)

    def severed(self, src: str, dst: str) -> bool:
        return (src, dst) in self.cut


# ---------------------------------------------------------------------------
# Invariant checker
# ---------------------------------------------------------------------------


class Checker:
    """Safety invariants, checked incrementally after every step.

    * Election safety: at most one leader per term, over the whole run.
    * Log matching, two ways: globally, an (index, term) pair always names the
      same entry with the same predecessor term (checked on every persisted
      write); and pairwise, two current logs that agree on the term at index
      i are identical up to i (over their overlapping, uncompacted range).
    * Leader completeness: a node seen as leader of a new term holds every
      entry committed so far (max commit index seen on any node) with its term.
    * Commit agreement: every node's committed prefix names the same terms.
    * State machine safety: no two nodes ever apply different entries at the
      same index; the running hash after index i is the same everywhere,
      including after snapshot restores and crashes; a proposal is applied
      exactly at the (term, index) ``propose`` returned.
    * Monotonicity: a live node's commit index never decreases; a node's
      persisted term never decreases; a node never persists votes for two
      candidates in one term.
    * Persist before send: a granted vote and a successful append ack are
      only sent once the vote / the acked entries are on disk.
    * Driver contract: after the Readies are drained, the core's log ends
      where the disk's does, and the state machine applied what the core
      thinks it applied.
    * ReadIndex: a ReadState(ctx, index) has index >= the max commit index
      of the cluster when read_index(ctx) was called; the read is served only
      once applied >= index.
    * Membership, one change at a time: every conf entry written to any log
      holds a valid configuration that is exactly its change applied to the
      configuration in force before it in that log; the committed
      configurations (in apply order) follow each other the same way; a
      snapshot's configuration is the committed one at its index; a leader's
      log holds at most one uncommitted conf entry; a node is a voter of its
      own configuration when first seen leading a term (or, core.py rule 15,
      of the one before its own uncommitted removal); and after every
      step each live core's configuration is the one its disk implies (conf
      entries take effect when written and are undone when truncated).
    """

    def __init__(self) -> None:
        self.leaders: dict[int, str] = {}
        self.committed_terms: dict[int, int] = {}  # index -> term of every committed entry seen
        self.max_commit = 0
        self.applied: dict[int, Entry] = {}
        self.hash_at: dict[int, bytes] = {0: _HASH0}
        self.entry_keys: dict[tuple[int, int], tuple[int, bytes, int | None]] = {}
        self.votes: dict[tuple[str, int], str] = {}
        self.persisted_term: dict[str, int] = {}
        self.live_commit: dict[str, int] = {}
        self.checked_commit: dict[str, int] = {}
        self.proposals: dict[bytes, tuple[int, int]] = {}
        self.reads: dict[int, tuple[str, int]] = {}  # ctx -> (node, required index)
        self.reads_served = 0
        self.reads_confirmed = 0
        # Membership: set by the Cluster; committed configurations by index (first apply).
        self.initial_conf = ConfState()
        self.committed_confs: list[tuple[int, ConfState]] = []
        self.committed_conf_indexes: set[int] = set()
        self.ever_members: set[str] = set()

    @property
    def committed_conf(self) -> ConfState:
        return self.committed_confs[-1][1] if self.committed_confs else self.initial_conf

    def committed_conf_at(self, index: int) -> ConfState:
        conf = self.initial_conf
        for at, c in self.committed_confs:
            if at > index:
                break
            conf = c
        return conf

    # -- persistence -------------------------------------------------------------

    def on_persist(self, node: str, disk: SimDisk, hs: HardState | None, entries: list[Entry]) -> None:
        if hs is not None:
            prev = self.persisted_term.get(node, 0)
            if hs.term < prev:
                raise InvariantViolation(f"{node}: persisted term went back from {prev} to {hs.term}")
            self.persisted_term[node] = hs.term
            if hs.vote is not None:
                before = self.votes.setdefault((node, hs.term), hs.vote)
                if before != hs.vote:
                    raise InvariantViolation(f"{node}: voted for {before} and then for {hs.vote} in term {hs.term}")
        for e in entries:
            if e.index <= disk.snapshot_index:
                continue
            if e.kind == ENTRY_CONF:
                self.check_conf_entry(node, disk, e)
            key = (e.index, e.term)
            value = (e.kind, e.data, disk.term_at(e.index - 1))
            seen = self.entry_keys.setdefault(key, value)
            if seen != value:
                raise InvariantViolation(
                    f"log matching: {node} persisted entry (index {e.index}, term {e.term}) as "
                    f"kind={value[0]} data={value[1]!r} prev_term={value[2]}, but another log has "
                    f"kind={seen[0]} data={seen[1]!r} prev_term={seen[2]}"
                )

    def check_conf_entry(self, node: str, disk: SimDisk, e: Entry) -> None:
        decoded = decode_conf_entry(e.data)
        if decoded is None:
            raise InvariantViolation(f"{node} persisted a conf entry that does not decode: {e!r}")
        before = disk.conf_at(e.index - 1)
        try:
            after = before.apply(decoded.change)
        except ValueError as exc:
            raise InvariantViolation(
                f"membership: {node}'s conf entry {e.index} ({decoded.change}) does not apply to {before}: {exc}"
            ) from None
        if after != decoded.conf:
            raise InvariantViolation(
                f"membership: {node}'s conf entry {e.index} says {decoded.conf}, "
                f"but {decoded.change} on {before} gives {after}"
            )

    def on_send(self, node: SimNode, msg: Any, after_persist: bool = True) -> None:
        if msg.src != node.id:
            raise InvariantViolation(f"{node.id} sent a message with src={msg.src}: {msg!r}")
        disk = node.disk
        if not after_persist:
            # Core rule 18: only a leader's replication, at a term already on disk, leaves early.
            role = node.core.role if node.core is not None else None
            if not isinstance(msg, EARLY_KINDS) or role != "leader" or msg.term != disk.hard_state.term:
                raise InvariantViolation(
                    f"{node.id} ({role}) sent {type(msg).__name__} (term {msg.term}) before persisting its Ready "
                    f"(disk hard state: {disk.hard_state})"
                )
        if isinstance(msg, RequestVoteResp) and msg.granted and not msg.pre_vote:
            hs = disk.hard_state
            if hs.term != msg.term or hs.vote != msg.dst:
                raise InvariantViolation(
                    f"{node.id} granted its term-{msg.term} vote to {msg.dst} before persisting it "
                    f"(disk hard state: {hs})"
                )
        if isinstance(msg, AppendEntriesResp) and msg.success:
            if msg.index > disk.last_index:
                raise InvariantViolation(
                    f"{node.id} acked index {msg.index} to {msg.dst} but its disk ends at {disk.last_index}"
                )

    # -- state machine -------------------------------------------------------------

    def on_apply(self, node: str, sm: SimStateMachine, e: Entry) -> None:
        if e.index != sm.applied + 1:
            raise InvariantViolation(f"{node}: applied index {e.index} right after {sm.applied}")
        seen = self.applied.setdefault(e.index, e)
        if seen != e:
            raise InvariantViolation(
                f"state machine safety: {node} applied {e!r} at index {e.index}, another node applied {seen!r}"
            )
        if e.kind == ENTRY_NORMAL:
            self.check_proposal(node, e)
        elif e.kind == ENTRY_CONF and e.index not in self.committed_conf_indexes:
            self.on_commit_conf(node, e)
        sm.applied = e.index
        sm.hash = _chain(sm.hash, e)
        seen_hash = self.hash_at.setdefault(e.index, sm.hash)
        if seen_hash != sm.hash:
            raise InvariantViolation(f"state machine safety: {node} state hash after index {e.index} differs")

    def on_commit_conf(self, node: str, e: Entry) -> None:
        """The first application of a conf entry: it follows the previous committed configuration."""
        decoded = decode_conf_entry(e.data)
        last = self.committed_confs[-1][0] if self.committed_confs else 0
        if decoded is None or e.index <= last:
            raise InvariantViolation(f"membership: {node} applied conf entry {e.index} out of order (last {last})")
        before = self.committed_conf
        try:
            after = before.apply(decoded.change)
        except ValueError:
            after = None
        if after != decoded.conf:
            raise InvariantViolation(
                f"membership: committed conf entry {e.index} ({decoded.change} -> {decoded.conf}) "
                f"does not follow the committed configuration {before}"
            )
        self.committed_confs.append((e.index, decoded.conf))
        self.committed_conf_indexes.add(e.index)
        self.ever_members.update(decoded.conf.members)

    # Hooks for a checker subclass that drives a real state machine (see
    # tests/sim/test_lock_table_sim.py): proposals whose data may repeat, and a
    # SimStateMachine subclass whose snapshot carries more than (index, hash).

    def new_state_machine(self) -> SimStateMachine:
        """The state machine of a node booting without a snapshot."""
        return SimStateMachine()

    def on_propose(self, node: str, data: bytes, term: int, index: int) -> None:
        self.proposals[data] = (term, index)

    def check_proposal(self, node: str, e: Entry) -> None:
        """A normal entry about to be applied was proposed exactly at its (term, index)."""
        where = self.proposals.get(e.data)
        if where is None:
            raise InvariantViolation(f"{node} applied data nobody proposed: {e!r}")
        if where != (e.term, e.index):
            raise InvariantViolation(
                f"{node} applied {e.data!r} at (term {e.term}, index {e.index}) "
                f"but propose() returned (term {where[0]}, index {where[1]})"
            )

    def on_restore(self, node: str, snap: Snapshot) -> SimStateMachine:
        index, digest = SimStateMachine.decode(snap.data)
        if index != snap.meta.index:
            raise InvariantViolation(f"{node}: snapshot meta index {snap.meta.index} but state at {index}")
        known = self.hash_at.get(index)
        if known is None:
            raise InvariantViolation(f"{node}: snapshot at {index} that no state machine ever applied")
        if known != digest:
            raise InvariantViolation(
                f"state machine safety: {node} restored a snapshot at {index} with a different state"
            )
        term = self.committed_terms.get(index)
        if term is not None and term != snap.meta.term:
            raise InvariantViolation(
                f"{node}: snapshot at {index} says term {snap.meta.term}, committed entry has term {term}"
            )
        if snap.meta.conf_state() != self.committed_conf_at(index):
            raise InvariantViolation(
                f"membership: {node}'s snapshot at {index} says {snap.meta.conf_state()}, "
                f"the committed configuration there is {self.committed_conf_at(index)}"
            )
        sm = SimStateMachine()
        sm.applied, sm.hash = index, digest
        return sm

    # -- reads ---------------------------------------------------------------------

    def on_read_request(self, node: str, ctx: int) -> None:
        self.reads[ctx] = (node, self.max_commit)

    def on_read_state(self, node: str, rs: ReadState) -> None:
        req = self.reads.pop(rs.ctx, None)
        if req is None:
            raise InvariantViolation(f"{node} emitted ReadState for unknown or already confirmed ctx {rs.ctx}")
        who, required = req
        if who != node:
            raise InvariantViolation(f"{node} confirmed read {rs.ctx} that was requested on {who}")
        if rs.index < required:
            raise InvariantViolation(
                f"ReadIndex linearizability: {node} confirmed read {rs.ctx} at index {rs.index}, "
                f"but index {required} was already committed when the read was requested"
            )
        self.reads_confirmed += 1

    # -- per-step checks -----------------------------------------------------------------

    def check_step(self, nodes: list[SimNode]) -> None:
        up = [n for n in nodes if n.core is not None]
        # Driver contract: after draining, the in-memory log is exactly what is persisted.
        for n in up:
            core, disk = n.core, n.disk
            assert core is not None and n.sm is not None
            if (core.last_index, core.last_term) != (disk.last_index, disk.last_term):
                raise InvariantViolation(
                    f"{n.id}: core log ends at ({core.last_index}, t{core.last_term}) but its disk at "
                    f"({disk.last_index}, t{disk.last_term}) after all Readies were handled"
                )
            if core.applied_index != n.sm.applied:
                raise InvariantViolation(
                    f"{n.id}: core applied_index {core.applied_index} but state machine applied {n.sm.applied}"
                )
            if core.commit_index > core.last_index:
                raise InvariantViolation(f"{n.id}: commit {core.commit_index} past last index {core.last_index}")
            if core.conf_state != disk.conf:
                raise InvariantViolation(
                    f"membership: {n.id}'s core is in configuration {core.conf_state}, its log implies {disk.conf}"
                )
        # Commit monotonic per live node; commit agreement; record committed terms.
        for n in up:
            core = n.core
            assert core is not None
            c = core.commit_index
            prev = self.live_commit.get(n.id, 0)
            if c < prev:
                raise InvariantViolation(f"{n.id}: commit index went back from {prev} to {c} while up")
            self.live_commit[n.id] = c
            lo = self.checked_commit.get(n.id, 0)
            if c > lo:
                for i in range(max(lo, core.first_index - 1) + 1, c + 1):
                    t = n.disk.term_at(i)
                    if t is None:
                        raise InvariantViolation(f"{n.id}: committed index {i} is not on disk")
                    known = self.committed_terms.setdefault(i, t)
                    if known != t:
                        raise InvariantViolation(
                            f"{n.id} committed index {i} with term {t}, another node committed it with term {known}"
                        )
                self.checked_commit[n.id] = c
            if c > self.max_commit:
                self.max_commit = c
        # Election safety and leader completeness.
        for n in up:
            core = n.core
            assert core is not None
            if core.role != "leader":
                continue
            term = core.term
            known = self.leaders.get(term)
            if known is None:
                self.leaders[term] = n.id
                self._check_complete(n)
                if not self._may_lead(n):
                    raise InvariantViolation(
                        f"membership: {n.id} leads term {term} but is no voter of {core.conf_state}"
                    )
            elif known != n.id:
                raise InvariantViolation(f"election safety: both {known} and {n.id} were leader of term {term}")
            uncommitted = [i for i, _ in n.disk.confs if i > core.commit_index]
            if len(uncommitted) > 1:
                raise InvariantViolation(
                    f"membership: leader {n.id} holds {len(uncommitted)} uncommitted conf entries {uncommitted} "
                    f"(commit {core.commit_index})"
                )

    @staticmethod
    def _may_lead(n: SimNode) -> bool:
        """A voter of its configuration -- or of the one before, if the latest (uncommitted) removed it."""
        assert n.core is not None
        if n.id in n.core.conf_state.voters:
            return True
        latest = n.disk.confs[-1][0] if n.disk.confs else 0
        return latest > n.core.commit_index and n.id in n.disk.conf_at(latest - 1).voters

    def _check_complete(self, n: SimNode) -> None:
        disk = n.disk
        if disk.snapshot_index > 0:
            term = self.committed_terms.get(disk.snapshot_index)
            if term is not None and term != disk.snapshot_term:
                raise InvariantViolation(f"leader completeness: {n.id}'s snapshot has the wrong term")
        for i in range(disk.snapshot_index + 1, self.max_commit + 1):
            t = disk.term_at(i)
            want = self.committed_terms.get(i)
            if want is not None and t != want:
                raise InvariantViolation(
                    f"leader completeness: {n.id} became leader of term {n.core.term if n.core else '?'} "
                    f"with term {t} at index {i}, but index {i} was committed with term {want}"
                )

    def check_log_matching(self, a: SimNode, b: SimNode) -> None:
        da, db = a.disk, b.disk
        lo = max(da.snapshot_index, db.snapshot_index) + 1
        hi = min(da.last_index, db.last_index)
        k = 0
        for i in range(hi, lo - 1, -1):
            if da.term_at(i) == db.term_at(i):
                k = i
                break
        for i in range(lo, k + 1):
            ea, eb = da.entry_at(i), db.entry_at(i)
            if ea != eb:
                raise InvariantViolation(
                    f"log matching: {a.id} and {b.id} agree on the term at index {k} "
                    f"but differ at index {i}: {ea!r} vs {eb!r}"
                )


# ---------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------


class Cluster:
    # The core under test; the harness self-tests swap in deliberately broken subclasses.
    core_cls: type[RaftCore] = RaftCore
    # The per-turn plan the driver runs (a selftest swaps in a broken one).
    plan_fn: Callable[[Ready, HardState, HardState | None], Turn] = staticmethod(turn_plan)
    # The checker (and, through its hooks, the state machine the nodes apply to).
    checker_cls: type[Checker] = Checker
    # The simulated disk (tests/sim/corruption.py's WalDisk also keeps the node's WAL records).
    disk_cls: type[SimDisk] = SimDisk

    def __init__(self, cfg: SimConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed
        self.rng = random.Random(seed)
        self.initial_voters = list(cfg.voters)
        self.voters = list(cfg.voters)  # every node not retired (see the module docstring)
        self.initial_conf = ConfState.of(self.initial_voters)
        self.retired: set[str] = set()
        self._next_node = cfg.nodes + 1
        self.net = Network(self.rng, cfg)
        self.check = self.checker_cls()
        self.check.initial_conf = self.initial_conf
        self.check.ever_members.update(self.initial_voters)
        self.now = 0
        self.trace: deque[str] = deque(maxlen=400)
        self.nodes: dict[str, SimNode] = {}
        self.stats: dict[str, int] = {
            "elections": 0,
            "crashes": 0,
            "crashes_after_early_sends": 0,
            "snapshots_sent": 0,
            "compactions": 0,
            "proposals": 0,
            "reads": 0,
            "partitions": 0,
        }
        self._proposal_seq = 0
        self._read_ctx = 0
        self._dirty: set[str] = set()
        self.crashes_enabled = True
        # node -> phase (0..3) at which its next Ready is interrupted by a crash
        # (0: before persisting, 1: before sending, 2: before applying, 3: before advance).
        self.crash_plan: dict[str, int] = {}
        # Called with every message a node sends (after it was persisted, before the network).
        self.send_hooks: list[Callable[[Any], None]] = []
        for nid in self.voters:
            node = SimNode(nid, self.disk_cls(cfg.use_memory_store, self.initial_conf))
            self.nodes[nid] = node
            self._boot(node)
        self._build_event_table()

    # -- lifecycle ---------------------------------------------------------------

    def _boot(self, node: SimNode) -> None:
        hs, snap, entries = node.disk.load()
        node.incarnation += 1
        rng = random.Random(self.rng.getrandbits(64))
        node.core = self.core_cls(
            node.id,
            list(self.initial_voters),
            config=self.cfg.raft,
            rng=rng,
            hard_state=hs,
            snapshot=snap,
            entries=entries,
        )
        node.sm = self.check.on_restore(node.id, snap) if snap is not None else self.check.new_state_machine()
        node.reads = []
        self.check.live_commit[node.id] = node.core.commit_index
        self.check.checked_commit[node.id] = 0
        self._dirty.add(node.id)

    def crash(self, nid: str, why: str = "") -> None:
        node = self.nodes[nid]
        if node.core is None:
            return
        node.core = None
        node.sm = None
        node.reads = []
        node.carried = None
        node.down_since = self.now
        self.crash_plan.pop(nid, None)
        self.stats["crashes"] += 1
        self.log(f"crash {nid}{why}")

    def restart(self, nid: str) -> None:
        node = self.nodes[nid]
        if node.core is not None:
            return
        self._boot(node)
        core = node.core
        assert core is not None
        self.log(
            f"restart {nid} (term {core.term}, commit {core.commit_index}, "
            f"log {core.first_index - 1}..{core.last_index})"
        )

    # -- membership ----------------------------------------------------------------------

    def add_node(self, nid: str | None = None) -> str:
        """Boot a new node with an empty disk (it joins once a leader adds it as a learner)."""
        if nid is None:
            nid = f"n{self._next_node}"
            self._next_node += 1
        if nid in self.nodes:
            raise ValueError(f"{nid} exists")
        node = SimNode(nid, self.disk_cls(self.cfg.use_memory_store, self.initial_conf))
        self.nodes[nid] = node
        self.voters.append(nid)
        self._boot(node)
        self.log(f"new node {nid}")
        return nid

    def conf_change(self, nid: str, change: ConfChange) -> tuple[int, int] | None:
        """Propose ``change`` on ``nid``; None if refused (not leader, or a ConfChangeRefused)."""
        try:
            term, index = self.core(nid).propose_conf_change(change)
        except (NotLeader, ConfChangeRefused) as exc:
            self.stats[f"conf_refused_{getattr(exc, 'code', 'other')}"] = (
                self.stats.get(f"conf_refused_{getattr(exc, 'code', 'other')}", 0) + 1
            )
            self.log(f"{change.op} {change.node} on {nid}: refused ({type(exc).__name__})")
            return None
        self.stats[f"conf_{change.op}"] = self.stats.get(f"conf_{change.op}", 0) + 1
        self.log(f"{change.op} {change.node} on {nid}: at {index} (term {term})")
        return term, index

    def transfer(self, nid: str, target: str) -> bool:
        try:
            self.core(nid).transfer_leader(target)
        except (NotLeader, NotAVoter) as exc:
            self.log(f"transfer {nid} -> {target}: refused ({type(exc).__name__})")
            return False
        self.stats["transfers"] = self.stats.get("transfers", 0) + 1
        self.log(f"transfer {nid} -> {target}")
        return True

    def retire(self, nid: str) -> None:
        """Stop ``nid`` for good (decommissioned): only once its removal is committed."""
        if nid in self.check.committed_conf.members:
            raise InvariantViolation(f"retiring {nid}, a member of the committed {self.check.committed_conf}")
        self.crash(nid, " (retired)")
        self.retired.add(nid)
        self.voters.remove(nid)
        self.log(f"retire {nid}")

    def members(self, lead: SimNode | None = None) -> list[SimNode]:
        """The nodes that must follow and converge: the leader's configuration, else all not retired."""
        if lead is not None and lead.core is not None:
            ids = lead.core.conf_state.members
            return [self.nodes[i] for i in ids if i in self.nodes]
        return [n for n in self.nodes.values() if n.id not in self.retired]

    def log(self, what: str) -> None:
        self.trace.append(f"[{self.now}] {what}")

    def up(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.core is not None]

    def leaders(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.core is not None and n.core.role == "leader"]

    def core(self, nid: str) -> RaftCore:
        c = self.nodes[nid].core
        assert c is not None, f"{nid} is down"
        return c

    # -- the driver ------------------------------------------------------------------

    def drain(self) -> None:
        for node in self.nodes.values():
            rounds = 0
            while node.core is not None and node.core.has_ready():
                rounds += 1
                if rounds > 1000:
                    raise InvariantViolation(f"{node.id}: has_ready() stays true after 1000 Readies")
                self._handle_ready(node)
            if node.core is not None:
                self._maybe_compact(node)

    def _handle_ready(self, node: SimNode) -> None:
        """Run one Ready's effects in the order ``rakit.raft.turn.plan`` gives (the driver's order).

        A crash can strike before any effect: ``crash_plan`` names a phase (0: before
        persisting, 1: before sending what needs the disk, 2: before applying, 3: before
        advance; a crash strikes before the first effect of that phase or later), and
        ``crash_in_ready`` picks any effect at random -- including the gap between a
        leader's early appends and its own fsync.
        """
        core = node.core
        assert core is not None and node.sm is not None
        rd: Ready = core.ready()
        turn = self.plan_fn(rd, node.disk.hard_state, node.carried)
        effects = turn.effects
        crash_before = len(effects)  # no crash
        phase = self.crash_plan.pop(node.id, -1)
        if phase >= 0:
            crash_before = next((i for i, e in enumerate(effects) if _phase(e) >= phase), len(effects) - 1)
        elif self.cfg.crash_in_ready and self._may_crash() and self.rng.random() < self.cfg.crash_in_ready:
            crash_before = self.rng.randrange(len(effects))
        if rd.soft_state is not None:
            if rd.soft_state.role == "leader":
                self.stats["elections"] += 1
            self.log(f"{node.id}: {rd.soft_state.role} term {rd.soft_state.term} leader={rd.soft_state.leader_id}")
        sm = node.sm
        for i, effect in enumerate(effects):
            if i == crash_before:
                early_sent = i > 0 and isinstance(effects[0], Send) and not effects[0].after_persist
                why = _CRASH_REASONS[phase if phase >= 0 else _phase(effect)]
                if early_sent and phase <= 0 and _phase(effect) == 0:
                    why = " (in Ready, after a leader's early sends, before persisting)"
                    self.stats["crashes_after_early_sends"] += 1
                return self.crash(node.id, why)
            if isinstance(effect, Send):
                for msg in effect.messages:
                    self.check.on_send(node, msg, after_persist=effect.after_persist)
                    if type(msg).__name__ == "InstallSnapshot":
                        self.stats["snapshots_sent"] += 1
                    for hook in self.send_hooks:
                        hook(msg)
                    self.net.send(msg, self.now)
            elif isinstance(effect, Persist):
                node.disk.save(effect.hard_state, list(effect.entries), effect.snapshot)
                self.check.on_persist(node.id, node.disk, effect.hard_state, effect.entries)
                self._dirty.add(node.id)
            elif isinstance(effect, Restore):
                node.sm = sm = self.check.on_restore(node.id, effect.snapshot)
                self.log(f"{node.id}: restored snapshot at {effect.snapshot.meta.index}")
            elif isinstance(effect, Apply):
                for e in effect.entries:
                    t = node.disk.term_at(e.index)
                    if t != e.term:
                        raise InvariantViolation(
                            f"{node.id}: Ready.committed_entries has {e!r} but the disk has term {t} there"
                        )
                    self.check.on_apply(node.id, sm, e)
            elif isinstance(effect, ConfirmReads):
                for rs in effect.read_states:
                    self.check.on_read_state(node.id, rs)
                    node.reads.append((rs.ctx, rs.index))
            else:
                self._check_durable_before_advance(node, rd)
                core.advance(effect.ready)
        node.carried = turn.carried
        if node.reads:
            keep = []
            for ctx, index in node.reads:
                if sm.applied >= index:
                    self.check.reads_served += 1
                else:
                    keep.append((ctx, index))
            node.reads = keep

    def _check_durable_before_advance(self, node: SimNode, rd: Ready) -> None:
        """advance() tells the core its Ready is stable: the disk must hold it by then."""
        disk = node.disk
        if rd.entries and disk.term_at(rd.entries[-1].index) != rd.entries[-1].term:
            raise InvariantViolation(f"{node.id}: advance() before entries up to {rd.entries[-1].index} were persisted")
        hs = rd.hard_state
        if hs is not None and (hs.term, hs.vote) != (disk.hard_state.term, disk.hard_state.vote):
            raise InvariantViolation(f"{node.id}: advance() before its hard state {hs} was persisted")

    def _maybe_compact(self, node: SimNode, force: bool = False) -> None:
        k = self.cfg.compact_every
        core = node.core
        assert core is not None and node.sm is not None
        applied = core.applied_index
        snap_index = core.first_index - 1
        if applied > snap_index and (force or (k and applied - snap_index >= k)):
            snap = core.compact(applied, node.sm.encode())
            node.disk.compact(snap)
            self.stats["compactions"] += 1
            self._dirty.add(node.id)

    def compact(self, nid: str) -> None:
        node = self.nodes[nid]
        if node.core is not None:
            self._maybe_compact(node, force=True)
            self.log(f"compact {nid} at {node.core.first_index - 1}")

    # -- primitive events --------------------------------------------------------------

    def tick(self, nid: str) -> None:
        node = self.nodes[nid]
        if node.core is not None:
            node.core.tick()

    def tick_all(self) -> None:
        for node in self.nodes.values():
            if node.core is not None:
                node.core.tick()

    def deliver(self, msg: Any) -> None:
        node = self.nodes.get(msg.dst)
        if node is None or node.core is None or self.net.severed(msg.src, msg.dst):
            return
        self.net.delivered += 1
        node.core.step(msg)

    def propose(self, nid: str, count: int = 1) -> tuple[int, int] | None:
        core = self.core(nid)
        datas = []
        for _ in range(count):
            self._proposal_seq += 1
            datas.append(self.proposal_data(nid))
        try:
            term, first = core.propose(datas)
        except NotLeader:
            return None
        for i, d in enumerate(datas):
            self.check.on_propose(nid, d, term, first + i)
        self.stats["proposals"] += count
        self.log(f"propose on {nid}: {count} at {first} (term {term})")
        return term, first

    def proposal_data(self, nid: str) -> bytes:
        """The data of the next proposal on ``nid`` (unique per run unless a subclass says otherwise)."""
        return b"%d:%d" % (self.seed, self._proposal_seq)

    def read_index(self, nid: str) -> int | None:
        core = self.core(nid)
        self._read_ctx += 1
        ctx = self._read_ctx
        self.check.on_read_request(nid, ctx)
        try:
            core.read_index(ctx)
        except NotLeader:
            self.check.reads.pop(ctx, None)
            return None
        self.stats["reads"] += 1
        self.log(f"read_index on {nid}: ctx {ctx} (cluster commit {self.check.max_commit})")
        return ctx

    def isolate(self, nid: str) -> None:
        for other in self.voters:
            if other != nid:
                self.net.cut.add((nid, other))
                self.net.cut.add((other, nid))
        self.log(f"isolate {nid}")

    def cut(self, src: str, dst: str, both: bool = True) -> None:
        self.net.cut.add((src, dst))
        if both:
            self.net.cut.add((dst, src))

    def partition(self, *groups: Iterable[str]) -> None:
        groups_l = [sorted(g) for g in groups]
        for i, g in enumerate(groups_l):
            for h in groups_l[i + 1 :]:
                for a in g:
                    for b in h:
                        self.cut(a, b)
        self.log(f"partition {groups_l}")

    def heal(self) -> None:
        self.net.cut.clear()
        self.log("heal")

    # -- checks --------------------------------------------------------------------------

    def check_invariants(self) -> None:
        nodes = list(self.nodes.values())
        self.check.check_step(nodes)
        if self._dirty:
            dirty = sorted(self._dirty)
            self._dirty.clear()
            for a in dirty:
                for b in nodes:
                    if b.id != a and (b.id not in dirty or b.id > a):
                        self.check.check_log_matching(self.nodes[a], b)

    def after_event(self) -> None:
        self.drain()
        self.check_invariants()

    # -- the randomized chaos phase ---------------------------------------------------------

    def _build_event_table(self) -> None:
        c = self.cfg
        events: list[tuple[float, Callable[[], None]]] = [
            (c.w_deliver, self._ev_deliver),
            (c.w_tick_all, self._ev_tick_all),
            (c.w_tick_one, self._ev_tick_one),
            (c.w_propose, self._ev_propose),
            (c.w_read, self._ev_read),
            (c.w_partition, self._ev_partition),
            (c.w_heal, self._ev_heal),
            (c.w_crash, self._ev_crash),
            (c.w_restart, self._ev_restart),
            (c.w_campaign, self._ev_campaign),
            (c.w_add, self._ev_add),
            (c.w_promote, self._ev_promote),
            (c.w_remove, self._ev_remove),
            (c.w_transfer, self._ev_transfer),
            (c.w_retire, self._ev_retire),
        ]
        events = [(w, f) for w, f in events if w > 0]
        total = 0.0
        self._cum: list[float] = []
        self._events: list[Callable[[], None]] = []
        for w, f in events:
            total += w
            self._cum.append(total)
            self._events.append(f)
        self._total_weight = total

    def random_step(self) -> None:
        self.now += 1
        i = bisect.bisect_right(self._cum, self.rng.random() * self._total_weight)
        self._events[min(i, len(self._events) - 1)]()
        self.after_event()

    def _max_down(self) -> int:
        return self.cfg.max_down if self.cfg.max_down is not None else (self.cfg.nodes - 1) // 2

    def _may_crash(self) -> bool:
        down = sum(1 for n in self.nodes.values() if n.core is None and n.id not in self.retired)
        return self.crashes_enabled and self.cfg.w_crash > 0 and down < self._max_down()

    def _ev_deliver(self) -> None:
        q = self.net.queue
        if not q:
            return self._ev_tick_all()
        ready = self.net.deliverable(self.now)
        if not ready:
            return self._ev_tick_all()
        msg = self.net.take(ready[self.rng.randrange(len(ready))])
        self.log(f"deliver {_msg_str(msg)}")
        self.deliver(msg)

    def _ev_tick_all(self) -> None:
        self.log("tick all")
        self.tick_all()

    def _ev_tick_one(self) -> None:
        nid = self.rng.choice(self.voters)
        self.log(f"tick {nid}")
        self.tick(nid)

    def _ev_propose(self) -> None:
        leaders = self.leaders()
        if not leaders:
            return
        for node in leaders:
            self.propose(node.id, self.rng.randint(1, 3))

    def _ev_read(self) -> None:
        leaders = self.leaders()
        if leaders:
            self.read_index(self.rng.choice(leaders).id)

    def _ev_partition(self) -> None:
        if len(self.voters) < 2:
            return
        self.stats["partitions"] += 1
        kind = self.rng.randrange(3)
        if kind == 0:
            ids = list(self.voters)
            self.rng.shuffle(ids)
            k = self.rng.randint(1, len(ids) - 1)
            self.partition(ids[:k], ids[k:])
        elif kind == 1:
            self.isolate(self.rng.choice(self.voters))
        else:
            a, b = self.rng.sample(self.voters, 2)
            self.cut(a, b, both=False)
            self.log(f"cut {a} -> {b}")

    def _ev_heal(self) -> None:
        if self.net.cut:
            self.heal()

    def _ev_crash(self) -> None:
        if self._may_crash():
            up = [n.id for n in self.up()]
            if up:
                self.crash(self.rng.choice(up))

    def _ev_restart(self) -> None:
        down = [
            n.id
            for n in self.nodes.values()
            if n.core is None and self.now - n.down_since >= 20 and n.id not in self.retired
        ]
        if down:
            self.restart(self.rng.choice(down))

    def _ev_campaign(self) -> None:
        up = [n for n in self.up() if n.core is not None and n.core.role != "leader"]
        if up:
            node = self.rng.choice(up)
            self.log(f"campaign {node.id}")
            assert node.core is not None
            node.core.campaign()

    def _ev_add(self) -> None:
        leaders = self.leaders()
        if not leaders or len(self.voters) >= self.cfg.max_nodes:
            return
        lead = self.rng.choice(leaders)
        nid = f"n{self._next_node}"
        if self.conf_change(lead.id, ConfChange.add_learner(nid)) is not None:
            self._next_node += 1
            self.add_node(nid)

    def _ev_promote(self) -> None:
        leaders = self.leaders()
        if leaders:
            lead = self.rng.choice(leaders)
            assert lead.core is not None
            learners = lead.core.learners
            if learners:
                # Mostly as an operator would: a learner that caught up; sometimes any.
                ready = [x for x in learners if lead.core.is_caught_up(x)]
                pool = ready if ready and self.rng.random() < 0.8 else learners
                self.conf_change(lead.id, ConfChange.promote(self.rng.choice(pool)))

    def _ev_remove(self) -> None:
        leaders = self.leaders()
        if leaders:
            lead = self.rng.choice(leaders)
            assert lead.core is not None
            self.conf_change(lead.id, ConfChange.remove(self.rng.choice(lead.core.conf_state.members)))

    def _ev_transfer(self) -> None:
        leaders = self.leaders()
        if leaders:
            lead = self.rng.choice(leaders)
            assert lead.core is not None
            others = [v for v in lead.core.voters if v != lead.id]
            if others:
                self.transfer(lead.id, self.rng.choice(others))

    def _ev_retire(self) -> None:
        gone = sorted(self.check.ever_members - set(self.check.committed_conf.members) - self.retired)
        if gone:
            self.retire(self.rng.choice(gone))

    def run_chaos(self, steps: int | None = None) -> None:
        for _ in range(steps if steps is not None else self.cfg.steps):
            self.random_step()

    # -- synchronous helpers (scenarios and the liveness phase) -----------------------------

    def deliver_all(self, drop: Callable[[Any], bool] | None = None, limit: int = 100_000) -> int:
        """Deliver every message in flight, oldest first, including the ones this produces.

        ``drop(msg)`` true: lose that message instead (etcd's ``network.drop``).
        """
        n = 0
        self.drain()
        self.check_invariants()
        while self.net.queue:
            n += 1
            if n > limit:
                raise InvariantViolation(f"deliver_all: still messages in flight after {limit} deliveries")
            self.now += 1
            msg = self.net.take_oldest()
            if drop is not None and drop(msg):
                self.log(f"drop {_msg_str(msg)}")
                continue
            self.log(f"deliver {_msg_str(msg)}")
            self.deliver(msg)
            self.after_event()
        return n

    def round(self) -> None:
        """One synchronous round: tick every node, then deliver everything."""
        self.now += 1
        self.tick_all()
        self.after_event()
        self.deliver_all()

    def stable_leader(self) -> SimNode | None:
        """The single leader every live member of its configuration follows at its term, or None.

        (Without membership changes every node is a member: the single leader
        every live node follows.  A node outside the leader's configuration --
        removed, or added by an entry that was truncated -- is not waited for,
        but it may not be a leader either unless it is out of the picture.)
        """
        leaders = self.leaders()
        if not leaders:
            return None
        lead = max(leaders, key=lambda n: n.core.term if n.core is not None else -1)
        assert lead.core is not None
        members = set(lead.core.conf_state.members)
        if any(other is not lead and other.id in members for other in leaders):
            return None
        for n in self.up():
            assert n.core is not None
            if n.id in members and (n.core.term != lead.core.term or n.core.leader_id != lead.id):
                return None
        return lead

    def run_until(self, pred: Callable[[], Any], rounds: int, what: str) -> Any:
        for _ in range(rounds):
            got = pred()
            if got:
                return got
            self.round()
        got = pred()
        if not got:
            raise InvariantViolation(f"liveness: {what} did not happen within {rounds} rounds\n{self.describe()}")
        return got

    def converged(self) -> bool:
        members = self.members(self.stable_leader())
        nodes = [n for n in members if n.core is not None]
        if not nodes or len(nodes) != len(members):
            return False
        sms = [n.sm for n in nodes]
        assert all(sm is not None for sm in sms)
        first = sms[0]
        assert first is not None
        return all(sm is not None and (sm.applied, sm.hash) == (first.applied, first.hash) for sm in sms)

    def heal_everything(self) -> None:
        self.net.cut.clear()
        self.net.drop = 0.0
        self.net.duplicate = 0.0
        self.net.max_delay = 0
        self.crashes_enabled = False
        for n in self.nodes.values():
            if n.core is None and n.id not in self.retired:
                self.restart(n.id)
        self.log("liveness phase: healed, no loss, every node up")
        self.after_event()

    def check_liveness(self) -> None:
        """Heal everything; then a single leader emerges, commits a fresh proposal, and all converge."""
        self.heal_everything()
        rounds = self.cfg.liveness_rounds
        marker: dict[str, Any] = {}

        def proposal_applied() -> bool:
            lead = self.stable_leader()
            if lead is None:
                return False
            if "at" not in marker or marker["term"] != lead.core.term:  # type: ignore[union-attr]
                got = self.propose(lead.id)
                if got is None:
                    return False
                marker["term"], marker["at"] = got
            idx = marker["at"]
            return all(n.sm is not None and n.sm.applied >= idx for n in self.members(lead))

        self.run_until(lambda: self.stable_leader(), rounds, "electing a single leader")
        self.run_until(proposal_applied, rounds, "committing and applying a fresh proposal everywhere")
        self.run_until(self.converged, rounds, "all nodes converging to the same applied index and state")

    # -- reporting ------------------------------------------------------------------------------

    def describe(self) -> str:
        lines = []
        for n in self.nodes.values():
            if n.core is None:
                lines.append(
                    f"  {n.id}: DOWN  disk hs={n.disk.hard_state} snap={_snap_str(n.disk.snapshot)} "
                    f"last={n.disk.last_index}"
                )
                continue
            c = n.core
            assert n.sm is not None
            lines.append(
                f"  {n.id}: {c.role:13} term={c.term} leader={c.leader_id} commit={c.commit_index} "
                f"applied={c.applied_index} log=({c.first_index - 1}..{c.last_index}, last term {c.last_term})"
            )
        lines.append(f"  network: {len(self.net.queue)} in flight, cut={sorted(self.net.cut)}")
        return "\n".join(lines)

    def failure_report(self, err: BaseException, replay: str, last: int = 40) -> str:
        trace = list(self.trace)[-last:]
        return (
            f"simulation failed: config={self.cfg.name} seed={self.seed} at event {self.now}\n"
            f"{type(err).__name__}: {err}\n"
            f"replay: {replay}\n"
            f"cluster:\n{self.describe()}\n"
            f"last {len(trace)} events:\n  " + "\n  ".join(trace)
        )


def _msg_str(msg: AnyMessage) -> str:
    name = type(msg).__name__
    parts = []
    for f in msg.__struct_fields__:
        if f in ("src", "dst", "term"):
            continue
        v = getattr(msg, f)
        if f == "entries":
            v = f"[{v[0].index}..{v[-1].index}]" if v else "[]"
        elif f == "snapshot":
            v = _snap_str(v)
        parts.append(f"{f}={v}")
    extra = " ".join(parts)
    return f"{name} {msg.src}->{msg.dst} t{msg.term} {extra}"


def run_simulation(cfg: SimConfig, seed: int, *, liveness: bool = True) -> Cluster:
    """One seeded run: chaos, then (optionally) the liveness phase.  Raises on a violation."""
    cluster = Cluster(cfg, seed)
    cluster.after_event()
    cluster.run_chaos()
    if liveness:
        cluster.check_liveness()
    return cluster


def with_raft(cfg: SimConfig, **raft: Any) -> SimConfig:
    return replace(cfg, raft=replace(cfg.raft, **raft))
