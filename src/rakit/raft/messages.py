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
``Heartbeat``         leader -> follower: commit = min(match, commit) and a
                      ``ctx`` that ReadIndex rounds use to count acks.
``HeartbeatResp``     follower -> leader, echoing ``ctx``.
``InstallSnapshot``   leader -> follower: the whole snapshot in one message.
``TimeoutNow``        leader -> chosen follower: start an election now
                      (leadership transfer; reserved).
====================  ==========================================================
"""

from __future__ import annotations

from typing import Annotated

import msgspec

# Entry kinds.
ENTRY_NORMAL = 0  # a state-machine command
ENTRY_NOOP = 1  # appended by a new leader to commit its predecessors' entries

# Terms and log indexes a peer may send: never negative, and far enough below
# 2**63 that ``term + 1`` and ``index + len(entries)`` stay within a signed
# 64-bit integer (SQLite's, msgpack's).  A batch outside these bounds does not
# decode (``msgspec.ValidationError``), so it never reaches the core.
MAX_WIRE_INT = 2**62
Term = Annotated[int, msgspec.Meta(ge=0, le=MAX_WIRE_INT)]
Index = Annotated[int, msgspec.Meta(ge=0, le=MAX_WIRE_INT)]
Kind = Annotated[int, msgspec.Meta(ge=ENTRY_NORMAL, le=ENTRY_NOOP)]


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
    index: Index
    term: Term
    voters: list[str]


class Snapshot(msgspec.Struct, frozen=True):
    meta: SnapshotMeta
    data: bytes


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
