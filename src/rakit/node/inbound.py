"""What a node checks in every Raft message a peer sends it, on every path.

Messages reach the driver two ways: a peer's frames on its own stream (or
``POST /append_entries`` and friends, ``rakit.http.routes.raft_rpc``), and
the answers that come back on this node's outbound streams
(``rakit.transport.http``).  Both go through ``accept``: the sender is a node
this node knows (its address book: the configured peers and every node a
configuration entry added), not itself, and every message is addressed from
that sender to this node and is one a Raft peer can send (``check_message``).
Anything else is refused and changes nothing.

``check_message`` is the last filter: the core trusts its peers' messages to
be well formed (a leader's entries follow its ``prev_index`` one by one, with
terms that never go down and never pass the leader's; a snapshot is one this
node can restore, of this cluster's members), and a malformed one would
break its log's invariants (the node stops: ``LogCorrupt``) or its state
machines.  Terms are bounded twice:

- at most ``MAX_TERM_JUMP`` ahead of this node's own term: terms grow by one
  per election (and pre-vote keeps a partitioned node's from growing), so no
  honest peer is ever near it;
- never above ``MAX_PEER_TERM``, which leaves 2**32 elections of headroom
  below the wire's bound (``MAX_WIRE_INT``), so ``term + 1`` always encodes
  and a node that adopted the highest term it can still elects leaders.

Without them one message with a term near the wire's bound would move the
cluster there, where the next election's term no longer decodes: no leader,
ever again, and a restart would not help (the term is persisted).

Log indexes a peer names (a snapshot's, an append's end, a candidate's last
index, a commit index) are bounded the same way: at most ``MAX_INDEX_JUMP``
ahead of this node's own last index (2**48 entries: nearly 90 years at
100,000 writes a second) and never above ``MAX_PEER_INDEX``.  Without that,
one InstallSnapshot at index 2**62 would move a follower's log there.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import msgspec

from rakit.errors import InvalidRequest
from rakit.raft.messages import (
    ENTRY_NORMAL,
    MAX_WIRE_INT,
    AnyMessage,
    AppendEntries,
    Entry,
    Heartbeat,
    InstallSnapshot,
    RequestVote,
    decode_batch,
)
from rakit.statemachines.registry import Registry

if TYPE_CHECKING:
    from rakit.node.runtime import NodeRuntime

log = logging.getLogger(__name__)

MAX_TERM_JUMP = 2**20
MAX_PEER_TERM = MAX_WIRE_INT - 2**32
MAX_INDEX_JUMP = 2**48
MAX_PEER_INDEX = MAX_WIRE_INT - 2**32
LOG_EVERY = 10.0  # seconds between two warnings about refused replies


def accept_batch(runtime: NodeRuntime, data: bytes) -> tuple[str, list[AnyMessage]]:
    """The sender of an encoded batch and its messages meant for this node; InvalidRequest otherwise."""
    try:
        batch = decode_batch(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidRequest(f"malformed raft batch: {exc}") from None
    return batch.src, accept(runtime, batch.src, batch.messages)


def accept(runtime: NodeRuntime, src: str, messages: list[AnyMessage]) -> list[AnyMessage]:
    """The messages from ``src`` to this node, all checked; InvalidRequest if ``src`` or one is bad."""
    if src not in runtime.driver.addresses or src == runtime.node_id:
        raise InvalidRequest(f"sender {src[:64]!r} is not a peer of {runtime.node_id}")
    mine = [m for m in messages if m.src == src and m.dst == runtime.node_id]
    for message in mine:
        check_message(runtime, message)
    return mine


class ReplyFilter:
    """The transport's ``deliver`` for answers on outbound streams: ``accept``, then the driver."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime
        self.refused = 0
        self._logged_at = float("-inf")

    def __call__(self, peer: str, messages: list[AnyMessage]) -> bool:
        """Hand ``peer``'s answers to the driver; False (nothing handed) when one is refused."""
        try:
            mine = accept(self.runtime, peer, messages)
        except InvalidRequest as exc:
            self.refused += 1
            now = time.monotonic()
            if now - self._logged_at >= LOG_EVERY:
                self._logged_at = now
                log.warning("refused a raft reply from %s: %s (%d refused so far)", peer, exc.detail, self.refused)
            return False
        if mine:
            self.runtime.driver.receive(mine)
        return True


def check_command(entry: Entry) -> None:
    """InvalidRequest if applying ``entry`` would stop the node rather than skip it.

    A command no state machine understands is applied as ``UnknownCommand`` on
    every replica (deterministic), but some decoders raise something other than
    a decode error for some bytes (``UnicodeDecodeError``, ``RecursionError``),
    which the registry lets through: such an entry, once committed, would stop
    every node applying it.  No leader proposes one.
    """
    try:
        msgspec.msgpack.decode(entry.data)
    except msgspec.MsgspecError:
        pass  # applied as an unknown command, the same way on every replica
    except Exception as exc:
        raise InvalidRequest(
            f"AppendEntries: entry {entry.index} cannot be applied: {type(exc).__name__}: {exc}"
        ) from None


def _named_index(m: AnyMessage) -> int | None:
    """The highest log index ``m`` asks this node to take on (None: it names none)."""
    if isinstance(m, AppendEntries):
        return max(m.prev_index + len(m.entries), m.commit)
    if isinstance(m, InstallSnapshot):
        return m.snapshot.meta.index
    if isinstance(m, RequestVote):
        return m.last_index
    if isinstance(m, Heartbeat):
        return m.commit
    return None


def check_message(runtime: NodeRuntime, m: AnyMessage) -> None:
    """InvalidRequest if ``m`` is not a message a Raft peer can send (see the module docstring)."""
    core = runtime.driver.core
    own = core.term
    if m.term > own + MAX_TERM_JUMP or m.term > MAX_PEER_TERM:
        raise InvalidRequest(f"{type(m).__name__}: term {m.term} is implausibly far ahead of {own}")
    index = _named_index(m)
    if index is not None and (index > core.last_index + MAX_INDEX_JUMP or index > MAX_PEER_INDEX):
        raise InvalidRequest(
            f"{type(m).__name__}: log index {index} is implausibly far ahead of this node's {core.last_index}"
        )
    if isinstance(m, AppendEntries):
        if m.prev_term > m.term:
            raise InvalidRequest(f"AppendEntries: prev_term {m.prev_term} is above the term {m.term}")
        previous = m.prev_term
        for offset, entry in enumerate(m.entries):
            if entry.index != m.prev_index + 1 + offset:
                raise InvalidRequest(
                    f"AppendEntries: entry {offset} has index {entry.index}, not {m.prev_index + 1 + offset}"
                )
            if not previous <= entry.term <= m.term:
                raise InvalidRequest(
                    f"AppendEntries: entry {entry.index} has term {entry.term}, outside [{previous}, {m.term}]"
                )
            previous = entry.term
            if entry.kind == ENTRY_NORMAL and entry.data:
                check_command(entry)
    elif isinstance(m, RequestVote):
        if m.last_term > m.term:
            raise InvalidRequest(f"RequestVote: last_term {m.last_term} is above the term {m.term}")
    elif isinstance(m, InstallSnapshot):
        meta = m.snapshot.meta
        if meta.term > m.term:
            raise InvalidRequest(f"InstallSnapshot: snapshot term {meta.term} is above the term {m.term}")
        if not meta.conf_state().is_valid():
            raise InvalidRequest(
                f"InstallSnapshot: voters {meta.voters!r} / learners {meta.learners!r} are not a valid configuration"
            )
        scratch = Registry([type(machine)() for machine in runtime.machines.machines.values()])
        try:
            scratch.restore(m.snapshot.data)
        except Exception as exc:  # whatever a machine's restore raises on bad data
            raise InvalidRequest(
                f"InstallSnapshot: the snapshot does not restore: {type(exc).__name__}: {exc}"
            ) from None
