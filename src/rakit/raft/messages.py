"""Raft wire types: log entries, snapshots, hard state and the RPC messages.

Everything here is a plain ``msgspec.Struct``: the pure core builds and reads
them, the storage layer persists them and the transport encodes them with
msgpack.  Messages are one-way (etcd style): a response is a message of its
own, addressed back to the sender, so the core never waits on anything.

Message kinds (tag ``t``):

====================  ==========================================================
``RequestVote``       candidate -> voter; ``pre_vote`` marks the Pre-Vote phase
                      (thesis 9.6), whose ``term`` is the term the candidate
                      *would* use and which changes no state on the voter.
``RequestVoteResp``   voter -> candidate.
``AppendEntries``     leader -> follower: entries after (prev_index, prev_term)
                      and the leader's commit index.
``AppendEntriesResp`` follower -> leader.  Success: ``index`` is the last index
                      now known to match.  Rejection: ``index`` is the
                      rejected ``prev_index`` and ``hint_index``/``hint_term``
                      let the leader skip back a whole term at once.
``Heartbeat``         leader -> follower: commit = min(match, commit), the
                      term of the leader's entry there, and a
                      ``ctx`` that ReadIndex rounds use to count acks.
``HeartbeatResp``     follower -> leader, echoing ``ctx``.
``InstallSnapshot``   leader -> follower: the whole snapshot in one message.
``TimeoutNow``        leader -> chosen follower: start an election now
                      (leadership transfer, thesis 3.10).
====================  ==========================================================

Membership (thesis 4.1): an ``ENTRY_CONF`` entry's data is an encoded
:class:`ConfEntry` -- the one-server :class:`ConfChange` and the
:class:`ConfState` it yields.  Carrying the resulting configuration makes
every conf entry self-contained: a node's configuration is that of the latest
conf entry in its log (else its snapshot's, else the initial voters), so a
node that joins with a stale idea of the cluster is right as soon as it holds
one conf entry.  ``SnapshotMeta.learners`` defaults to empty, so snapshots
stored (or sent) before learners existed still load: their ``voters`` are the
configuration.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

import msgspec

# Entry kinds.
ENTRY_NORMAL = 0  # a state-machine command
ENTRY_NOOP = 1  # appended by a new leader to commit its predecessors' entries
ENTRY_CONF = 2  # a membership change: data is an encoded ConfEntry

# Terms and log indexes a peer may send: never negative, and far enough below
# 2**63 that ``term + 1`` and ``index + len(entries)`` stay within a signed
# 64-bit integer (SQLite's, msgpack's).  A batch outside these bounds does not
# decode (``msgspec.ValidationError``), so it never reaches the core.
MAX_WIRE_INT = 2**62
Term = Annotated[int, msgspec.Meta(ge=0, le=MAX_WIRE_INT)]
Index = Annotated[int, msgspec.Meta(ge=0, le=MAX_WIRE_INT)]
Kind = Annotated[int, msgspec.Meta(ge=ENTRY_NORMAL, le=ENTRY_CONF)]
NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class Entry(msgspec.Struct, array_like=True, frozen=True):
    term: Term
    index: Index
    kind: Kind = ENTRY_NORMAL
    data: bytes = b""


class HardState(msgspec.Struct, frozen=True):
    """What must be on disk before the node answers a vote or acks entries."""

    term: Term = 0
    vote: str | None = None
    commit: Index = 0


class SnapshotMeta(msgspec.Struct, frozen=True):
    """The snapshot's last entry and the configuration in force at it."""

    index: Index
    term: Term
    voters: list[str]
    learners: list[str] = []

    def conf_state(self) -> ConfState:
        return ConfState.of(self.voters, self.learners)


class Snapshot(msgspec.Struct, frozen=True):
    meta: SnapshotMeta
    data: bytes


# -- membership -------------------------------------------------------------------

ConfOp = Literal["add_learner", "promote", "remove"]


class ConfState(msgspec.Struct, frozen=True, array_like=True):
    """A configuration: voters and learners, each a sorted tuple, disjoint."""

    voters: tuple[NodeId, ...] = ()
    learners: tuple[NodeId, ...] = ()

    @classmethod
    def of(cls, voters: Iterable[str], learners: Iterable[str] = ()) -> ConfState:
        return cls(tuple(sorted(voters)), tuple(sorted(learners)))

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(sorted((*self.voters, *self.learners)))

    def is_valid(self) -> bool:
        """Sorted, no duplicates, voters and learners disjoint, at least one voter."""
        v, lrn = self.voters, self.learners
        return bool(v) and list(v) == sorted(set(v)) and list(lrn) == sorted(set(lrn)) and not set(v) & set(lrn)

    def apply(self, change: ConfChange) -> ConfState:
        """The configuration after ``change``; ValueError if it does not apply."""
        node = change.node
        if change.op == "add_learner":
            if node in self.voters or node in self.learners:
                raise ValueError(f"{node} is already a member")
            return ConfState.of(self.voters, (*self.learners, node))
        if change.op == "promote":
            if node not in self.learners:
                raise ValueError(f"{node} is not a learner")
            return ConfState.of((*self.voters, node), (x for x in self.learners if x != node))
        if change.op == "remove":
            if node not in self.voters and node not in self.learners:
                raise ValueError(f"{node} is not a member")
            if self.voters == (node,):
                raise ValueError(f"{node} is the last voter")
            return ConfState.of((x for x in self.voters if x != node), (x for x in self.learners if x != node))
        raise ValueError(f"unknown conf change {change.op!r}")  # pragma: no cover - Literal


class ConfChange(msgspec.Struct, frozen=True, array_like=True):
    """One server changes (thesis 4.1): joins as a learner, becomes a voter, or leaves.

    ``url`` (with ``add_learner``) is where the node serves; the core ignores
    it, the driver keeps it in its address book (``rakit.statemachines.members``).
    """

    op: ConfOp
    node: NodeId
    url: str = ""

    @classmethod
    def add_learner(cls, node: str, url: str = "") -> ConfChange:
        return cls("add_learner", node, url)

    @classmethod
    def promote(cls, node: str) -> ConfChange:
        return cls("promote", node)

    @classmethod
    def remove(cls, node: str) -> ConfChange:
        return cls("remove", node)


class ConfEntry(msgspec.Struct, frozen=True, array_like=True):
    """The data of an ENTRY_CONF entry: the change and the configuration it yields."""

    change: ConfChange
    conf: ConfState


_conf_encoder = msgspec.msgpack.Encoder()
_conf_decoder = msgspec.msgpack.Decoder(ConfEntry)


def encode_conf_entry(conf_entry: ConfEntry) -> bytes:
    return _conf_encoder.encode(conf_entry)


def decode_conf_entry(data: bytes) -> ConfEntry | None:
    """The ConfEntry in ``data``; None if it does not decode or names an invalid configuration.

    Every node decodes the same bytes the same way, so treating a bad conf
    entry as "no change" keeps all nodes' configurations in agreement.
    """
    try:
        decoded = _conf_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return None
    return decoded if decoded.conf.is_valid() else None


# -- messages -------------------------------------------------------------------------


class Message(msgspec.Struct, tag_field="t", kw_only=True, frozen=True):
    term: Term
    src: str
    dst: str


class RequestVote(Message, tag=True, frozen=True):
    last_index: Index
    last_term: Term
    pre_vote: bool = False
    # Set by a TimeoutNow-triggered election: voters skip the leader-lease check.
    transfer: bool = False


class RequestVoteResp(Message, tag=True, frozen=True):
    granted: bool
    pre_vote: bool = False


class AppendEntries(Message, tag=True, frozen=True):
    prev_index: Index
    prev_term: Term
    entries: list[Entry]
    commit: Index


class AppendEntriesResp(Message, tag=True, frozen=True):
    success: bool
    index: Index
    hint_index: Index = 0
    hint_term: Term = 0


class Heartbeat(Message, tag=True, frozen=True):
    commit: Index
    ctx: int = 0
    commit_term: Term = 0  # the term of the leader's entry at ``commit`` (0: not sent)


class HeartbeatResp(Message, tag=True, frozen=True):
    ctx: int = 0


class InstallSnapshot(Message, tag=True, frozen=True):
    snapshot: Snapshot


class TimeoutNow(Message, tag=True, frozen=True):
    pass


AnyMessage = (
    RequestVote
    | RequestVoteResp
    | AppendEntries
    | AppendEntriesResp
    | Heartbeat
    | HeartbeatResp
    | InstallSnapshot
    | TimeoutNow
)


class ReadState(msgspec.Struct, frozen=True):
    """A confirmed ReadIndex request: serve read ``ctx`` once applied >= index."""

    ctx: int
    index: int


class Batch(msgspec.Struct, frozen=True):
    """What one node-to-node POST (or its answer) carries: messages from one sender, in order.

    ``epoch`` names the sending process's lifetime and ``seq`` numbers its
    batches to one peer, so the receiver can put pipelined batches back in
    order; answers carry 0 for both.
    """

    src: str
    messages: list[AnyMessage]
    epoch: int = 0
    seq: int = 0


_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(Batch)


def encode_batch(batch: Batch) -> bytes:
    return _batch_encoder.encode(batch)


def decode_batch(data: bytes) -> Batch:
    """Decode a peer's batch; raises ``msgspec.DecodeError`` / ``ValidationError`` and
    nothing else, whatever the bytes (msgspec itself raises ``UnicodeDecodeError`` for
    invalid UTF-8 in a string, ``RecursionError`` for deep nesting: both become
    ``DecodeError`` here)."""
    try:
        return _batch_decoder.decode(data)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise msgspec.DecodeError(f"malformed batch: {exc}") from None
